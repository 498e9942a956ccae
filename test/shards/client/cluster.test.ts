/**
 * Flotilla.connect against three in-process ClusterNodes on loopback TCP, each serving clients
 * through its own client server: routing by NOT_LEADER hints, failover when a leader node
 * closes, and exactly-once writes when an answer is lost after the commit.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FlotillaError } from '../../../engine/errors.js';
import type { RemoteStore } from '../../../shards/client/remote.js';
import {
  type ClientServer,
  type ClientServerFaults,
  serveNodeClients,
} from '../../../shards/client/server.js';
import { Flotilla } from '../../../shards/index.js';
import type { NodeService, ShardMap } from '../../../shards/node-service.js';
import { sleep, TempDirs, TestCluster, testSecret, waitFor } from '../cluster-support.js';

/** What each node's client server saw: NOT_LEADER answers and proposals it served. */
interface Seen {
  notLeader: number;
  proposed: number;
}

/** A cluster whose nodes each serve clients on their configured client address. */
class ServedCluster {
  readonly servers = new Map<number, ClientServer>();
  readonly seen = new Map<number, Seen>();
  readonly clients: RemoteStore[] = [];

  constructor(readonly cluster: TestCluster) {}

  /** Starts node `id`'s client server over its service, as seen through `wrap`. */
  async serve(
    id: number,
    options: { faults?: ClientServerFaults; wrap?: (s: NodeService) => NodeService } = {},
  ): Promise<void> {
    const node = this.cluster.nodes.get(id)!;
    const seen: Seen = { notLeader: 0, proposed: 0 };
    this.seen.set(id, seen);
    const service = counting(options.wrap?.(node.service) ?? node.service, seen);
    const servable = { service, clusterId: node.clusterId, clientAddress: node.clientAddress };
    const server = await serveNodeClients(servable, {
      secret: testSecret,
      logger: () => {},
      ...(options.faults === undefined ? {} : { faults: options.faults }),
    });
    this.servers.set(id, server);
  }

  /** A client connected through node `id`'s endpoint only. */
  async connect(id: number): Promise<RemoteStore> {
    const endpoint = this.cluster.config.nodes.find((n) => n.id === id)!.client;
    const db = await Flotilla.connect([endpoint], { secret: testSecret, timeoutMs: 20_000 });
    this.clients.push(db);
    return db;
  }

  /** Stops node `id` and its client server, as a crash would. */
  async stop(id: number): Promise<void> {
    await this.servers.get(id)?.close();
    this.servers.delete(id);
    await this.cluster.stopNode(id);
  }

  async close(): Promise<void> {
    for (const c of this.clients.splice(0)) await c.close();
    for (const s of this.servers.values()) await s.close();
    await this.cluster.close();
  }
}

/** `service` with its proposals and NOT_LEADER refusals counted into `seen`. */
function counting(service: NodeService, seen: Seen): NodeService {
  const count = <T>(p: Promise<T>): Promise<T> =>
    p.catch((err: unknown) => {
      if (err instanceof FlotillaError && err.code === 'NOT_LEADER') seen.notLeader++;
      throw err;
    });
  return Object.create(service, {
    propose: {
      value: (shard: number, command: Uint8Array) => {
        seen.proposed++;
        return count(Promise.resolve().then(() => service.propose(shard, command)));
      },
    },
    read: {
      value: (...args: Parameters<NodeService['read']>) =>
        count(Promise.resolve().then(() => service.read(...args))),
    },
  }) as NodeService;
}

const dirs = new TempDirs();
let served: ServedCluster | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
  dirs.cleanup();
});

async function startServed(
  shards: number,
  options: Parameters<ServedCluster['serve']>[1] = {},
): Promise<ServedCluster> {
  const cluster = await TestCluster.start(dirs, shards);
  served = new ServedCluster(cluster);
  for (const id of cluster.nodes.keys()) await served.serve(id, options);
  await cluster.waitForLeaders();
  return served;
}

/** One key of every shard. */
function keyPerShard(cluster: TestCluster, prefix: string): string[] {
  return Array.from(
    { length: cluster.config.shards },
    (_, i) => cluster.keysOf(i + 1, 1, prefix)[0]!,
  );
}

function total(s: ServedCluster, field: keyof Seen): number {
  return [...s.seen.values()].reduce((sum, seen) => sum + seen[field], 0);
}

describe('a remote client of a three-node cluster', () => {
  it('follows NOT_LEADER hints from a node with an out-of-date shard map', async () => {
    // Node 1 hands out a map naming itself leader of every shard, as a node that has not yet
    // heard of the elections would: the client's first try of most shards lands on a follower.
    const s = await startServed(6, {
      wrap: (service) =>
        Object.create(service, {
          shardMap: {
            value: (): ShardMap => {
              const map = service.shardMap();
              return { ...map, shards: map.shards.map((sh) => ({ ...sh, leader: 1 })) };
            },
          },
        }) as NodeService,
    });
    const cluster = s.cluster;
    const led = Array.from({ length: 6 }, (_, i) => cluster.agreedLeader(i + 1));
    const elsewhere = led.filter((l) => l !== 1).length;
    expect(elsewhere).toBeGreaterThan(0);
    const db = await s.connect(1);
    const keys = keyPerShard(cluster, 'hint');
    for (const key of keys) await db.put(key, key);
    // One refusal per shard led elsewhere, each with the leader's id: one hop, then no more.
    expect(s.seen.get(1)!.notLeader).toBe(elsewhere);
    expect(total(s, 'notLeader')).toBe(elsewhere);
    for (const key of keys) await db.put(key, `${key}!`);
    expect(total(s, 'notLeader')).toBe(elsewhere);
    expect(db.shardMap().shards.map((sh) => sh.leader)).toEqual(led);
    for (const key of keys) expect(await db.get(key)).toBe(`${key}!`);
  });

  it('keeps writing through the loss of the node leading the most shards', async () => {
    const s = await startServed(6);
    const cluster = s.cluster;
    const db = await s.connect(1);
    const keys = Array.from({ length: 60 }, (_, i) => `failover${i}`);
    await Promise.all(keys.map((k) => db.put(k, 0)));
    const counts = new Map<number, number>();
    for (let shard = 1; shard <= 6; shard++) {
      const leader = cluster.agreedLeader(shard);
      counts.set(leader, (counts.get(leader) ?? 0) + 1);
    }
    const victim = [...counts].sort((a, b) => b[1] - a[1])[0]![0];
    // Writes in flight while the node goes away, and writes after it is gone.
    const during = Promise.all(keys.map((k) => db.put(k, 1)));
    await s.stop(victim);
    await during;
    await Promise.all(keys.map((k) => db.put(k, 2)));
    await waitFor(
      () => Array.from({ length: 6 }, (_, i) => cluster.agreedLeader(i + 1)).every((l) => l > 0),
      'new leaders',
    );
    for (const k of keys) expect(await db.get(k)).toBe(2);
    const leaders = db.shardMap().shards.map((sh) => sh.leader);
    expect(leaders).not.toContain(victim);
  });

  it('applies an increment once when the leader answers TIMEOUT after the commit', async () => {
    let lost = 1;
    const s = await startServed(3, {
      faults: {
        afterPropose: () =>
          lost-- > 0
            ? new FlotillaError('TIMEOUT', 'injected after the commit', { outcome: 'unknown' })
            : undefined,
      },
    });
    const db = await s.connect(2);
    expect(await db.incr('counter')).toBe(1);
    expect(lost).toBe(-1);
    expect(await db.get('counter')).toBe(1);
    expect(total(s, 'proposed')).toBe(2);
  });

  it('applies an increment once when the connection dies after the commit', async () => {
    let lost = 1;
    const s = await startServed(3, {
      faults: { afterPropose: () => (lost-- > 0 ? 'close' : undefined) },
    });
    const db = await s.connect(3);
    expect(await db.incr('counter', 7)).toBe(7);
    expect(await db.get('counter')).toBe(7);
    // Every replica applied the increment exactly once.
    const shard = s.cluster.shardOf('counter');
    const stored = async () =>
      Promise.all(
        [...s.cluster.nodes.values()].map(async (n) => {
          return (await n.service.read(shard, Buffer.from('counter'), 'stale'))?.value;
        }),
      );
    for (let i = 0; i < 200 && (await stored()).some((v) => v !== 7); i++) await sleep(10);
    expect(await stored()).toEqual([7, 7, 7]);
  });

  it('watches every shard once, though every replica notifies of each change', async () => {
    const s = await startServed(4);
    const db = await s.connect(1);
    const feed = db.watch({ prefix: 'w:' });
    const keys = Array.from({ length: 40 }, (_, i) => `w:${i}`);
    for (const k of keys) await db.put(k, k);
    const events: string[] = [];
    while (events.length < keys.length) {
      const next = await feed.next();
      if (next.done) break;
      events.push(next.value.key as string);
    }
    await feed.return?.();
    expect(events.sort()).toEqual([...keys].sort());
  });
});
