/**
 * Three ClusterNodes in one process on real loopback TCP: elections, replication, failover and
 * catching up from the log after a restart.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeCommand } from '../../engine/state/commands.js';
import { Flotilla } from '../../shards/index.js';
import { keyHash } from '../../shards/partition.js';
import {
  clusterJson,
  fastTuning,
  freePorts,
  TempDirs,
  TestCluster,
  testSecret,
  waitFor,
  writeCluster,
} from './cluster-support.js';

const dirs = new TempDirs();
const clusters: TestCluster[] = [];
afterEach(async () => {
  await Promise.all(clusters.splice(0).map((c) => c.close()));
  dirs.cleanup();
});

async function startCluster(shards: number): Promise<TestCluster> {
  const cluster = await TestCluster.start(dirs, shards);
  clusters.push(cluster);
  return cluster;
}

/** Writes `count` keys to every shard; returns the highest version written per shard. */
async function writeEach(cluster: TestCluster, count: number, prefix: string) {
  const versions = new Map<number, number>();
  for (let shard = 1; shard <= cluster.config.shards; shard++) {
    const keys = cluster.keysOf(shard, count, prefix);
    const written = await Promise.all(keys.map((k) => cluster.put(k, { k, shard })));
    versions.set(shard, Math.max(...written));
  }
  return versions;
}

describe('a cluster of three nodes', () => {
  it('elects a leader for every shard and publishes it in the shard map', async () => {
    const cluster = await startCluster(6);
    await cluster.waitForLeaders();
    const leaders = Array.from({ length: 6 }, (_, i) => cluster.agreedLeader(i + 1));
    const map = cluster.nodes.get(2)!.service.shardMap();
    expect(map.shards.map((s) => s.leader)).toEqual(leaders);
    // Placement rotates the first (preferred) replica over the nodes.
    expect(map.shards.map((s) => s.replicas[0])).toEqual([1, 2, 3, 1, 2, 3]);
    expect(map.nodes.map((n) => n.client)).toEqual(cluster.config.nodes.map((n) => n.client));
    expect(map.shards[0]!.hashLow).toBe(0);
    expect(map.shards[5]!.hashHigh).toBe(2 ** 32);
  });

  it('commits writes made at the leader on every replica, with equal content', async () => {
    const cluster = await startCluster(4);
    await cluster.waitForLeaders();
    const versions = await writeEach(cluster, 25, 'a');
    await cluster.waitConverged(versions);
    const key = cluster.keysOf(3, 1, 'a')[0]!;
    for (const node of cluster.nodes.values()) {
      const stored = await node.service.read(3, Buffer.from(key), 'stale');
      expect(stored?.value).toEqual({ k: key, shard: 3 });
    }
  });

  it('gives each shard its hash range: a key of another shard is refused', async () => {
    const cluster = await startCluster(2);
    await cluster.waitForLeaders();
    const leader = cluster.nodes.get(cluster.agreedLeader(1))!;
    // The leader proposes the range once elected; wait until it is applied.
    await cluster.put(cluster.keysOf(1, 1)[0]!, 'first');
    const foreign = Buffer.from(cluster.keysOf(2, 1)[0]!);
    const command = encodeCommand({ type: 'put', key: foreign, value: 'misrouted' });
    await expect(leader.service.propose(1, command)).rejects.toMatchObject({
      code: 'STALE_EPOCH',
    });
  });

  it('fails over when a node leading shards stops, and catches it up from the log', async () => {
    const cluster = await startCluster(3);
    await cluster.waitForLeaders();
    const before = await writeEach(cluster, 10, 'b');
    await cluster.waitConverged(before);
    // Stop the node leading shard 1.
    const stopped = cluster.agreedLeader(1);
    await cluster.stopNode(stopped);
    await cluster.waitForLeaders();
    expect(cluster.agreedLeader(1)).not.toBe(stopped);
    const during = await writeEach(cluster, 10, 'c');
    await cluster.waitConverged(during);
    // Back from its directory, the node receives what it missed as log entries.
    const back = await cluster.startNode(stopped);
    await cluster.waitConverged(during);
    expect(back.snapshotStats().installed).toBe(0);
    await cluster.waitForLeaders();
    const after = await writeEach(cluster, 5, 'd');
    await cluster.waitConverged(after);
    await waitFor(() => back.shardStatus(2).applied >= after.get(2)!, 'the node applies');
  });
});

describe('Flotilla.start', () => {
  it('starts a node from a cluster.json path, reading the secret file beside it', async () => {
    const root = dirs.make();
    const [raft, client] = await freePorts(2);
    // Addresses given as ports alone mean the loopback host.
    const raw = { ...clusterJson([raft!, client!], 2, 1, 1) };
    raw.nodes = [{ id: 1, raft: String(raft), client: `:${client}` }];
    const { path } = writeCluster(root, raw);
    const dataDir = join(root, 'node-1');
    const node = await Flotilla.start({ config: path, nodeId: 1, dataDir, logger: () => {} });
    try {
      expect(node.raftAddress).toBe(`127.0.0.1:${raft}`);
      expect(node.service.shardMap().nodes).toEqual([{ id: 1, client: `127.0.0.1:${client}` }]);
      // A single replica elects itself at once; its writes commit alone.
      await waitFor(
        () => node.shards().every((s) => node.shardStatus(s).role === 'leader'),
        'lead',
      );
      const key = Buffer.from('k');
      const put = encodeCommand({ type: 'put', key, value: 'v' });
      const hash = keyHash(key);
      const owner = node.service
        .shardMap()
        .shards.find((s) => s.hashLow <= hash && hash < s.hashHigh);
      const shard = owner!.id;
      await expect(node.service.propose(shard, put)).resolves.toMatchObject({ type: 'put' });
      expect((await node.service.read(shard, key, 'linearizable'))?.value).toBe('v');
      expect(node.service.shardMap().shards.map((s) => s.leader)).toEqual([1, 1]);
      // It serves Flotilla.connect clients on its client address, with the file's secret.
      const db = await Flotilla.connect([`127.0.0.1:${client}`], { secret: testSecret });
      try {
        await db.put('remote', 'r');
        expect(await db.get('remote')).toBe('r');
        expect(await db.get('k')).toBe('v');
      } finally {
        await db.close();
      }
    } finally {
      await node.close();
    }
  });

  it('refuses a client port in use before writing anything', async () => {
    const root = dirs.make();
    const ports = await freePorts(6);
    const { config } = writeCluster(root, clusterJson(ports, 2));
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(ports[3], '127.0.0.1', r));
    try {
      const dataDir = join(root, 'node-1');
      await expect(Flotilla.start({ config, nodeId: 1, dataDir })).rejects.toMatchObject({
        code: 'CONFIG',
        message: `node 1 cannot serve clients on 127.0.0.1:${ports[3]}: the address is in use`,
      });
      expect(existsSync(dataDir)).toBe(false);
      // The Raft port was released: the node starts once the client port is free.
      await new Promise((r) => squatter.close(r));
      const node = await Flotilla.start({ config, nodeId: 1, dataDir, logger: () => {} });
      await node.close();
    } finally {
      if (squatter.listening) squatter.close();
    }
  });

  it('refuses a directory of another node before writing anything', async () => {
    const root = dirs.make();
    const { config } = writeCluster(root, clusterJson(await freePorts(6), 2));
    const dataDir = join(root, 'node-2');
    const node2 = await Flotilla.start({ config, nodeId: 2, dataDir, logger: () => {} });
    await node2.close();
    const before = readdirSync(dataDir, { recursive: true }).sort();
    await expect(Flotilla.start({ config, nodeId: 1, dataDir })).rejects.toMatchObject({
      code: 'CONFIG',
      message: expect.stringMatching(/belongs to node 2, not node 1/),
    });
    await expect(Flotilla.start({ config, nodeId: 7, dataDir })).rejects.toMatchObject({
      code: 'CONFIG',
      message: expect.stringMatching(/node 7 is not in the cluster config/),
    });
    expect(readdirSync(dataDir, { recursive: true }).sort()).toEqual(before);
  });
});

describe('a request for a shard that is electing a leader', () => {
  it('is held until the election ends, then served or sent to the winner', async () => {
    const cluster = await TestCluster.start(dirs, 1, { ...fastTuning, electionWaitMs: 60_000 });
    clusters.push(cluster);
    await waitFor(() => cluster.agreedLeader(1) !== 0, 'a leader');
    // Alone, node 1 cannot elect anybody: the shard has no leader.
    await cluster.stopNode(2);
    await cluster.stopNode(3);
    const node = cluster.nodes.get(1)!;
    await waitFor(() => node.shardStatus(1).leader === 0, 'node 1 knows no leader');
    const put = encodeCommand({ type: 'put', key: Buffer.from('held'), value: 'h' });
    const outcome = node.service.propose(1, put).then(
      (result) => ({ result }),
      (error: unknown) => ({ error }),
    );
    // Without the hold, the proposal would have been refused already, with no leader to name.
    await cluster.startNode(2);
    const settled = await outcome;
    if ('result' in settled) {
      expect(settled.result).toMatchObject({ type: 'put' });
    } else {
      expect(settled.error).toMatchObject({ code: 'NOT_LEADER', details: { leaderHint: 2 } });
    }
  });
});
