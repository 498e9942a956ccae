/**
 * The process side of a chaos run: a cluster of real `flotilla serve` children on loopback, each
 * with its own fresh data directory, that can be SIGKILLed and restarted, frozen with SIGSTOP and
 * thawed with SIGCONT, its links partitioned through a ChaosNetwork of proxies, and finally
 * stopped cleanly so that each node's state can be read offline.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { FlotillaError } from '../../engine/errors.js';
import { nodeDirPaths } from '../../engine/node-dir.js';
import { KvState } from '../../engine/state/kv-state.js';
import { ClientConnection } from '../../shards/client/connection.js';
import { RequestOp } from '../../shards/client/protocol.js';
import { parseAddress } from '../../shards/cluster-config.js';
import { keyHash } from '../../shards/partition.js';
import { freePorts } from '../support/free-ports.js';
import { ChaosNetwork } from './chaos-network.js';

/** Milliseconds a node may take to print its ready line. */
const nodeReadyMs = 30_000;
/** Milliseconds a probe of a node's applied indexes may take. */
const probeTimeoutMs = 1_000;
/** Lines of a node's output kept to explain a failure. */
const outputTailLines = 40;

/** Where a node's process stands. */
export type NodeState = 'up' | 'killed' | 'frozen' | 'stopped';

/** One node of the chaos cluster: its process (if any) and what the fault loop did to it. */
class ChaosNode {
  state: NodeState = 'stopped';
  private child: ChildProcess | undefined;
  private exit: Promise<number | null> | undefined;
  readonly tail: string[] = [];
  /** The shards this node last said it leads (from its "leads shard" lines). */
  readonly leading = new Set<number>();

  constructor(
    readonly id: number,
    readonly dataDir: string,
    readonly configPath: string,
  ) {}

  /** Spawns `flotilla serve` and resolves once it printed its ready line. */
  start(cli: string): Promise<void> {
    const args = [cli, 'serve', '--config', this.configPath, '--node', String(this.id)];
    args.push('--data', this.dataDir);
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exit = new Promise((done) => child.once('exit', (code) => done(code)));
    const remember = (line: string) => {
      this.tail.push(line);
      if (this.tail.length > outputTailLines) this.tail.shift();
    };
    createInterface({ input: child.stderr! }).on('line', remember);
    let ready = false;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(this.failure(`did not start within ${nodeReadyMs} ms`));
      }, nodeReadyMs);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        remember(line);
        this.noteLeadership(line);
        if (line.includes(`node ${this.id} ready:`)) {
          clearTimeout(timer);
          ready = true;
          this.state = 'up';
          resolve();
        }
      });
      void this.exit!.then(() => {
        clearTimeout(timer);
        if (!ready) reject(this.failure('exited before it was ready'));
      });
    });
  }

  /** Follows `flotilla serve`'s "node N leads shard G" / "no longer leads shard G" lines. */
  private noteLeadership(line: string): void {
    const match = /^node \d+ (leads|no longer leads) shard (\d+) /.exec(line);
    if (match === null) return;
    if (match[1] === 'leads') this.leading.add(Number(match[2]));
    else this.leading.delete(Number(match[2]));
  }

  /** SIGKILL, then wait for the process to be gone. */
  async kill(): Promise<void> {
    this.state = 'killed';
    this.leading.clear();
    this.child!.kill('SIGKILL');
    await this.exit;
  }

  /** SIGSTOP: the process keeps its sockets but answers nobody (a one-node partition). */
  freeze(): void {
    this.state = 'frozen';
    this.child!.kill('SIGSTOP');
  }

  /** SIGCONT after freeze. */
  thaw(): void {
    this.child!.kill('SIGCONT');
    this.state = 'up';
  }

  /** SIGTERM and wait; resolves with the exit code (0 for a clean stop). */
  async stop(): Promise<number | null> {
    if (this.state === 'frozen') this.thaw();
    if (this.state !== 'up') return 0;
    this.child!.kill('SIGTERM');
    const code = await this.exit!;
    this.state = 'stopped';
    return code;
  }

  /** SIGKILL whatever still runs (cleanup after a failure). */
  async destroy(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await this.exit;
  }

  failure(detail: string): FlotillaError {
    return new FlotillaError('UNAVAILABLE', `node ${this.id} ${detail}:\n${this.tail.join('\n')}`);
  }
}

/** One replica's state as read offline: its applied index and content checksum. */
export interface ReplicaState {
  node: number;
  applied: number;
  checksum: number;
}

/** A cluster of `flotilla serve` processes in a fresh temporary directory. */
export class ChaosCluster {
  readonly nodes = new Map<number, ChaosNode>();
  readonly endpoints: string[];
  readonly secret = randomBytes(24).toString('hex');
  readonly clusterId = 'chaos';

  private constructor(
    private readonly cli: string,
    readonly root: string,
    ports: number[],
    nodes: number,
    readonly shards: number,
    /** The proxies between the nodes, when the run partitions links. */
    readonly network: ChaosNetwork | undefined,
  ) {
    const entries = Array.from({ length: nodes }, (_, i) => ({
      id: i + 1,
      raft: `127.0.0.1:${ports[i]}`,
      client: `127.0.0.1:${ports[nodes + i]}`,
    }));
    this.endpoints = entries.map((n) => n.client);
    writeFileSync(join(root, 'secret'), `${this.secret}\n`, { mode: 0o600 });
    const config = { clusterId: this.clusterId, secretFile: 'secret', shards, replicas: 3 };
    for (const self of entries) {
      // With a network, a node dials each peer through the proxy of that link (chaos-network.ts).
      const view = entries.map((n) =>
        network === undefined || n.id === self.id
          ? n
          : { ...n, raft: network.dialAddress(self.id, n.id) },
      );
      const node = new ChaosNode(self.id, join(root, `node-${self.id}`), this.configPath(self.id));
      writeFileSync(node.configPath, JSON.stringify({ ...config, nodes: view }, null, 2));
      this.nodes.set(self.id, node);
    }
  }

  /**
   * Starts every node; `cli` is dist/bin/flotilla.js. With `partitions`, node-to-node traffic
   * goes through a ChaosNetwork.
   */
  static async start(
    cli: string,
    nodes: number,
    shards: number,
    partitions = false,
  ): Promise<ChaosCluster> {
    const root = mkdtempSync(join(tmpdir(), 'flotilla-chaos-'));
    const ports = await freePorts(2 * nodes);
    const raftPorts = new Map(ports.slice(0, nodes).map((port, i) => [i + 1, port]));
    const network = partitions ? await ChaosNetwork.start(raftPorts) : undefined;
    const cluster = new ChaosCluster(cli, root, ports, nodes, shards, network);
    try {
      await Promise.all([...cluster.nodes.values()].map((n) => n.start(cli)));
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
    return cluster;
  }

  /** Node `id`'s own cluster.json (they differ only in the peers' Raft addresses). */
  private configPath(id: number): string {
    return join(this.root, `cluster-${id}.json`);
  }

  private node(id: number): ChaosNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  /**
   * The node that said last that it leads the most shards (ties to the lower id), or undefined
   * when none leads any. A deposed leader may not have noticed yet: this is a hint for aiming
   * faults, never an input to a check.
   */
  busiestLeader(): number | undefined {
    let best: ChaosNode | undefined;
    for (const node of this.nodes.values()) {
      if (node.leading.size > (best?.leading.size ?? 0)) best = node;
    }
    return best?.id;
  }

  /** The ids of nodes in `state`. */
  inState(state: NodeState): number[] {
    return [...this.nodes.values()].filter((n) => n.state === state).map((n) => n.id);
  }

  kill(id: number): Promise<void> {
    return this.node(id).kill();
  }

  restart(id: number): Promise<void> {
    return this.node(id).start(this.cli);
  }

  freeze(id: number): void {
    this.node(id).freeze();
  }

  thaw(id: number): void {
    this.node(id).thaw();
  }

  /** Stops every node with SIGTERM at once; returns the nodes that did not exit with code 0. */
  async stopAll(): Promise<number[]> {
    const nodes = [...this.nodes.values()];
    const codes = await Promise.all(nodes.map((n) => n.stop()));
    return nodes.filter((_, i) => codes[i] !== 0).map((n) => n.id);
  }

  /**
   * Every replica's applied index (`replicas` maps each shard to its nodes), asked of each node
   * itself over the client protocol; a node that does not answer is left out.
   */
  async appliedIndexes(replicas: Map<number, number[]>): Promise<Map<number, Map<number, number>>> {
    const applied = new Map<number, Map<number, number>>();
    for (const [shard] of replicas) applied.set(shard, new Map());
    await Promise.all(
      [...this.nodes.values()].map(async (node, i) => {
        const { host, port } = parseAddress(this.endpoints[i]!, 'endpoint');
        let conn: ClientConnection | undefined;
        try {
          conn = await ClientConnection.open({
            host,
            port,
            secret: Buffer.from(this.secret),
            clusterId: Buffer.from(this.clusterId),
            timeoutMs: probeTimeoutMs,
          });
          for (const [shard, ids] of replicas) {
            if (!ids.includes(node.id)) continue;
            const req = { op: RequestOp.AppliedIndex, shard } as const;
            applied.get(shard)!.set(node.id, Number(await conn.request(req, probeTimeoutMs)));
          }
        } catch (err) {
          // Unreachable or busy: this node is simply not known to have caught up yet.
          if (!(err instanceof FlotillaError)) throw err;
        } finally {
          conn?.close();
        }
      }),
    );
    return applied;
  }

  /** Reads `replicas[shard]`'s states from the stopped nodes' directories. */
  async readReplicas(replicas: Map<number, number[]>): Promise<Map<number, ReplicaState[]>> {
    const states = new Map<number, ReplicaState[]>();
    for (const node of this.nodes.values()) {
      const state = KvState.open({ dir: nodeDirPaths(node.dataDir).stateDir, keyHash });
      try {
        for (const [shard, ids] of replicas) {
          if (!ids.includes(node.id)) continue;
          const entry = { node: node.id, applied: state.appliedIndex(shard) };
          const list = states.get(shard) ?? [];
          list.push({ ...entry, checksum: state.checksum(shard) });
          states.set(shard, list);
        }
      } finally {
        await state.close();
      }
    }
    return states;
  }

  /** The last lines each node printed (to explain a failure). */
  tails(): string {
    return [...this.nodes.values()]
      .map((n) => `--- node ${n.id} (${n.state})\n${n.tail.join('\n')}`)
      .join('\n');
  }

  /** Kills whatever still runs and removes the directory. */
  async destroy(keep = false): Promise<void> {
    for (const node of this.nodes.values()) {
      if (node.state === 'frozen') node.thaw();
      await node.destroy();
    }
    await this.network?.close();
    if (!keep) rmSync(this.root, { recursive: true, force: true });
  }
}
