/**
 * Test support for clusters of real ClusterNodes on loopback TCP: free ports, a cluster.json
 * with its secret file, fast tunables, polling, and writes routed to a shard's leader.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isFlotillaError } from '../../engine/errors.js';
import { encodeCommand } from '../../engine/state/commands.js';
import type { Value } from '../../engine/state/value-codec.js';
import type { Logger } from '../../engine/transport/transport.js';
import { type ClusterConfig, parseClusterConfig } from '../../shards/cluster-config.js';
import { ClusterNode, type ClusterNodeTuning } from '../../shards/cluster-node.js';
import { evenRanges, keyHash, rangeIndexOf } from '../../shards/partition.js';

import { freePorts } from '../support/free-ports.js';

export { freePorts };

/** The secret every test cluster shares. */
export const testSecret = 'a cluster secret for the tests';

/** Timers short enough that elections and reconnects take tens of milliseconds. */
export const fastTuning: ClusterNodeTuning = {
  tickMs: 20,
  peerCheckMs: 20,
  transport: { reconnectBackoffMinMs: 10, reconnectBackoffMaxMs: 100 },
};

/** With CLUSTER_DEBUG=1 in the environment, nodes print their info lines (to diagnose a run). */
function debugLogger(id: number): Logger {
  if (process.env.CLUSTER_DEBUG === undefined) return () => {};
  return (level, msg, fields) => {
    if (level !== 'debug') console.log(`node ${id} ${level}: ${msg} ${JSON.stringify(fields)}`);
  };
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `done` until it holds; rejects naming `what` after `timeoutMs`. */
export async function waitFor(done: () => boolean, what: string, timeoutMs = 20_000) {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(10);
  }
}

/** A temporary directory removed by `cleanup`. */
export class TempDirs {
  private readonly dirs: string[] = [];
  make(prefix = 'flotilla-cluster-'): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }
  cleanup(): void {
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}

/** The raw cluster.json of `nodes` nodes on the given ports (raft ports, then client ports). */
export function clusterJson(ports: number[], shards: number, nodes = 3, replicas = 3) {
  return {
    clusterId: 'test-cluster',
    secretFile: 'secret',
    shards,
    replicas,
    nodes: Array.from({ length: nodes }, (_, i) => ({
      id: i + 1,
      raft: `127.0.0.1:${ports[i]}`,
      client: `127.0.0.1:${ports[nodes + i]}`,
    })),
  };
}

/** Writes cluster.json and its secret into `dir`; returns the parsed config and its path. */
export function writeCluster(
  dir: string,
  raw: ReturnType<typeof clusterJson>,
): { config: ClusterConfig; path: string } {
  writeFileSync(join(dir, 'secret'), `${testSecret}\n`);
  const path = join(dir, 'cluster.json');
  writeFileSync(path, JSON.stringify(raw, null, 2));
  return { config: parseClusterConfig(raw, path, dir), path };
}

/** A cluster of in-process nodes, each with its own directory under `root`. */
export class TestCluster {
  readonly nodes = new Map<number, ClusterNode>();

  constructor(
    readonly config: ClusterConfig,
    readonly root: string,
    readonly tuning: ClusterNodeTuning = fastTuning,
    readonly listen: Map<number, string> = new Map(),
  ) {}

  /** Starts a cluster of `nodes` nodes and `shards` shards on free loopback ports. */
  static async start(
    dirs: TempDirs,
    shards: number,
    tuning: ClusterNodeTuning = fastTuning,
  ): Promise<TestCluster> {
    const root = dirs.make();
    const { config } = writeCluster(root, clusterJson(await freePorts(6), shards));
    const cluster = new TestCluster(config, root, tuning);
    await Promise.all(config.nodes.map((n) => cluster.startNode(n.id)));
    return cluster;
  }

  /** Starts (or restarts) node `id` from its directory. */
  async startNode(id: number): Promise<ClusterNode> {
    const node = await ClusterNode.start({
      config: this.config,
      nodeId: id,
      dataDir: join(this.root, `node-${id}`),
      secret: testSecret,
      listen: this.listen.has(id) ? { raft: this.listen.get(id)! } : undefined,
      // Tests serve clients themselves, over a service they may wrap (ServedCluster).
      serveClients: false,
      tuning: this.tuning,
      logger: debugLogger(id),
    });
    this.nodes.set(id, node);
    return node;
  }

  /** Closes node `id`. */
  async stopNode(id: number): Promise<void> {
    const node = this.nodes.get(id);
    this.nodes.delete(id);
    await node?.close();
  }

  /** Closes every node. */
  async close(): Promise<void> {
    await Promise.all([...this.nodes.keys()].map((id) => this.stopNode(id)));
  }

  /** The node every running replica of `shard` agrees leads it, or 0. */
  agreedLeader(shard: number): number {
    let leader = 0;
    for (const node of this.nodes.values()) {
      const s = node.shardStatus(shard);
      if (s.leader === 0 || (leader !== 0 && s.leader !== leader)) return 0;
      leader = s.leader;
    }
    const node = this.nodes.get(leader);
    return node !== undefined && node.shardStatus(shard).role === 'leader' ? leader : 0;
  }

  /** Waits until every shard has a leader all running nodes agree on. */
  async waitForLeaders(timeoutMs = 20_000): Promise<void> {
    const shards = Array.from({ length: this.config.shards }, (_, i) => i + 1);
    await waitFor(() => shards.every((s) => this.agreedLeader(s) !== 0), 'leaders', timeoutMs);
  }

  /** Puts `value` at `key` through the leader of its shard, retrying across leader changes. */
  async put(key: string, value: Value, timeoutMs = 20_000): Promise<number> {
    const shard = this.shardOf(key);
    const command = encodeCommand({ type: 'put', key: Buffer.from(key), value });
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const leader = this.nodes.get(this.agreedLeader(shard));
      try {
        if (leader !== undefined) {
          const result = await leader.service.propose(shard, command);
          if (result.type !== 'put') throw new Error(`unexpected result ${result.type}`);
          return result.version;
        }
      } catch (err) {
        const retry =
          isFlotillaError(err) && ['NOT_LEADER', 'DROPPED', 'CLOSED'].includes(err.code);
        if (!retry || performance.now() > deadline) throw err;
      }
      if (performance.now() > deadline) throw new Error(`no leader for shard ${shard}`);
      await sleep(10);
    }
  }

  /** The shard owning `key`. */
  shardOf(key: string): number {
    const starts = evenRanges(this.config.shards).map((r) => r.start);
    return rangeIndexOf(starts, keyHash(Buffer.from(key))) + 1;
  }

  /** `count` keys owned by `shard`, named from `prefix`. */
  keysOf(shard: number, count: number, prefix = 'k'): string[] {
    const keys: string[] = [];
    for (let i = 0; keys.length < count; i++) {
      const key = `${prefix}${i}`;
      if (this.shardOf(key) === shard) keys.push(key);
    }
    return keys;
  }

  /** Whether every running replica of `shard` has applied at least `index`, equally. */
  converged(shard: number, index: number): boolean {
    const nodes = [...this.nodes.values()];
    if (nodes.some((n) => n.shardStatus(shard).applied < index)) return false;
    const sums = new Set(nodes.map((n) => n.checksum(shard)));
    return sums.size === 1;
  }

  /** Waits until every shard converged on every running replica at `index` or beyond. */
  async waitConverged(index: Map<number, number>, timeoutMs = 20_000): Promise<void> {
    await waitFor(
      () => [...index].every(([shard, at]) => this.converged(shard, at)),
      'replicas to converge',
      timeoutMs,
    );
  }
}

/**
 * A TCP forwarder standing in front of a node's Raft port, so a test can break a connection the
 * way a network does. Once armed with `breakAfter(bytes)`, it closes the first connection that
 * forwards more than `bytes` towards the node from then on (once).
 */
export class BreakingProxy {
  broken = 0;
  private threshold = Number.POSITIVE_INFINITY;
  private readonly counts = new Map<Socket, number>();
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server) {}

  /** Listens on `port` and forwards to `targetPort` (both on 127.0.0.1). */
  static async start(port: number, targetPort: number): Promise<BreakingProxy> {
    let proxy: BreakingProxy | undefined;
    const server = createServer((client) => proxy!.forward(client, targetPort));
    proxy = new BreakingProxy(server);
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return proxy;
  }

  /** Arms the proxy: the next connection to forward more than `bytes` from now is closed. */
  breakAfter(bytes: number): void {
    this.threshold = bytes;
    for (const socket of this.counts.keys()) this.counts.set(socket, 0);
  }

  private forward(client: Socket, targetPort: number): void {
    const upstream = tcpConnect(targetPort, '127.0.0.1');
    this.track(client);
    this.track(upstream);
    this.counts.set(client, 0);
    client.on('data', (bytes: Buffer) => {
      const forwarded = (this.counts.get(client) ?? 0) + bytes.length;
      this.counts.set(client, forwarded);
      if (this.broken === 0 && forwarded > this.threshold) {
        this.broken++;
        client.destroy();
        upstream.destroy();
        return;
      }
      upstream.write(bytes);
    });
    upstream.on('data', (bytes: Buffer) => client.write(bytes));
    client.on('close', () => {
      this.counts.delete(client);
      upstream.destroy();
    });
    upstream.on('close', () => client.destroy());
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    // A refused or reset connection is what this proxy exists for: the peer socket is closed.
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.sockets.delete(socket));
  }

  /** Stops listening and closes every forwarded connection. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
