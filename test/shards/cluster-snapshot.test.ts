/**
 * Snapshots over the wire between real ClusterNodes: a follower whose log fell behind the
 * leader's compacted prefix catches up from a streamed snapshot, restarts cleanly from it, and
 * recovers when the stream breaks midway.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ClusterNode } from '../../shards/cluster-node.js';
import {
  BreakingProxy,
  clusterJson,
  fastTuning,
  freePorts,
  TempDirs,
  TestCluster,
  waitFor,
  writeCluster,
} from './cluster-support.js';

/** Compacts all but two entries below the durable applied index, twenty times a second. */
const compactingTuning = { ...fastTuning, compactionSlackEntries: 2, checkpointMs: 50 };

const dirs = new TempDirs();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  dirs.cleanup();
});

/** Writes `count` values of `bytes` bytes to `shard`; returns the last version. */
async function fill(cluster: TestCluster, shard: number, count: number, prefix: string, bytes = 8) {
  let last = 0;
  for (const key of cluster.keysOf(shard, count, prefix)) {
    last = Math.max(last, await cluster.put(key, prefix.repeat(bytes)));
  }
  return last;
}

/** Writes `count` values to each of `shards`; returns the last version per shard. */
async function fillAll(cluster: TestCluster, shards: number[], count: number, prefix: string) {
  const last = await Promise.all(shards.map((s) => fill(cluster, s, count, prefix)));
  return new Map(shards.map((s, i) => [s, last[i]!]));
}

/** Waits until every other node compacted `shard` beyond the index `behind` holds. */
async function compactedPast(cluster: TestCluster, shard: number, behind: number) {
  const others = () => [...cluster.nodes.values()];
  await waitFor(
    () => others().every((n: ClusterNode) => n.shardStatus(shard).logFirstIndex > behind + 1),
    'the log to be compacted past the stopped follower',
  );
}

describe('snapshots over the wire', () => {
  it('catch up a follower whose log fell behind the compacted prefix', async () => {
    // Four shards, at most one stream per sending node: streams wait for each other.
    const tuning = { ...compactingTuning, snapshot: { sendsMax: 1 } };
    const cluster = await TestCluster.start(dirs, 4, tuning);
    cleanups.push(() => cluster.close());
    const shards = [1, 2, 3, 4];
    await cluster.waitForLeaders();
    const first = await fillAll(cluster, shards, 5, 'a');
    await cluster.waitConverged(first);
    const behind = shards.map((s) => cluster.nodes.get(3)!.shardStatus(s).logLastIndex);
    await cluster.stopNode(3);
    const written = await fillAll(cluster, shards, 30, 'b');
    for (const s of shards) await compactedPast(cluster, s, behind[s - 1]!);
    const node3 = await cluster.startNode(3);
    await cluster.waitConverged(written);
    expect(node3.snapshotStats().installed).toBe(4);
    // A leader counts a stream as sent once the follower's answer ends it (on its next tick).
    const leaders = [1, 2].map((id) => cluster.nodes.get(id)!);
    await waitFor(() => leaders.every((n) => n.snapshotStats().sending === 0), 'streams to end');
    const sent = leaders.map((n) => n.snapshotStats().sent);
    expect(sent[0]! + sent[1]!).toBe(4);
    for (const s of shards) {
      expect(node3.shardStatus(s).logFirstIndex).toBeGreaterThan(behind[s - 1]! + 1);
    }
    // Replication continues by log after the snapshot.
    await cluster.waitConverged(await fillAll(cluster, shards, 5, 'c'));
    // The installed snapshot (log marker, state, membership) survives a restart.
    await cluster.stopNode(3);
    await cluster.startNode(3);
    await cluster.waitForLeaders();
    await cluster.waitConverged(await fillAll(cluster, shards, 5, 'd'));
  });

  it('recover from a broken stream: the partial install is dropped, then resent', async () => {
    const root = dirs.make();
    const ports = await freePorts(7);
    const raw = clusterJson(ports, 1);
    const { config } = writeCluster(root, raw);
    // Node 3 listens on a port of its own; the address its peers dial is the proxy's.
    const node3Listen = `127.0.0.1:${ports[6]}`;
    const proxy = await BreakingProxy.start(ports[2]!, ports[6]!);
    cleanups.push(() => proxy.close());
    const cluster = new TestCluster(config, root, compactingTuning, new Map([[3, node3Listen]]));
    cleanups.push(() => cluster.close());
    await Promise.all([1, 2, 3].map((id) => cluster.startNode(id)));
    await cluster.waitForLeaders();
    await cluster.waitConverged(new Map([[1, await fill(cluster, 1, 3, 'a')]]));
    const behind = cluster.nodes.get(3)!.shardStatus(1).logLastIndex;
    await cluster.stopNode(3);
    // About 1 MB in 40 values: the snapshot takes several chunks.
    const written = new Map([[1, await fill(cluster, 1, 40, 'v', 24 * 1024)]]);
    await compactedPast(cluster, 1, behind);
    proxy.breakAfter(300 * 1024);
    const node3 = await cluster.startNode(3);
    await cluster.waitConverged(written);
    expect(proxy.broken).toBe(1);
    const leader = cluster.nodes.get(cluster.agreedLeader(1))!;
    // Both ends saw the connection go: the follower dropped its partial install, the leader
    // abandoned the stream; then a second stream went through.
    expect(node3.snapshotStats().receiveAborted).toBeGreaterThanOrEqual(1);
    expect(leader.snapshotStats().sendFailed).toBeGreaterThanOrEqual(1);
    expect(node3.snapshotStats().installed).toBe(1);
    expect(node3.snapshotStats().receiving).toBe(0);
    await waitFor(() => leader.snapshotStats().sent === 1, 'the second stream to be answered');
    expect(join(root, 'node-3')).toBe(node3.dataDir);
  });
});
