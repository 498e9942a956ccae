/**
 * The process side of a chaos run: a cluster of real `flotilla serve` children on loopback, each
 * with its own fresh data directory, that can be SIGKILLed and restarted, frozen with SIGSTOP and
 * thawed with SIGCONT, and finally stopped cleanly so that each node's state can be read offline.
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
import { keyHash } from '../../shards/partition.js';
import { freePorts } from '../support/free-ports.js';

/** Milliseconds a node may take to print its ready line. */
const nodeReadyMs = 30_000;
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

  constructor(
    readonly id: number,
    readonly dataDir: string,
  ) {}

  /** Spawns `flotilla serve` and resolves once it printed its ready line. */
  start(cli: string, configPath: string): Promise<void> {
    const args = [cli, 'serve', '--config', configPath, '--node', String(this.id)];
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

  /** SIGKILL, then wait for the process to be gone. */
  async kill(): Promise<void> {
    this.state = 'killed';
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
  private readonly configPath: string;

  private constructor(
    private readonly cli: string,
    readonly root: string,
    ports: number[],
    nodes: number,
    readonly shards: number,
  ) {
    const entries = Array.from({ length: nodes }, (_, i) => ({
      id: i + 1,
      raft: `127.0.0.1:${ports[i]}`,
      client: `127.0.0.1:${ports[nodes + i]}`,
    }));
    this.endpoints = entries.map((n) => n.client);
    writeFileSync(join(root, 'secret'), `${this.secret}\n`, { mode: 0o600 });
    const config = { clusterId: this.clusterId, secretFile: 'secret', shards, replicas: 3 };
    this.configPath = join(root, 'cluster.json');
    writeFileSync(this.configPath, JSON.stringify({ ...config, nodes: entries }, null, 2));
    for (const n of entries) this.nodes.set(n.id, new ChaosNode(n.id, join(root, `node-${n.id}`)));
  }

  /** Writes the config and starts every node; `cli` is dist/bin/flotilla.js. */
  static async start(cli: string, nodes: number, shards: number): Promise<ChaosCluster> {
    const root = mkdtempSync(join(tmpdir(), 'flotilla-chaos-'));
    const cluster = new ChaosCluster(cli, root, await freePorts(2 * nodes), nodes, shards);
    try {
      await Promise.all([...cluster.nodes.values()].map((n) => n.start(cli, cluster.configPath)));
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
    return cluster;
  }

  private node(id: number): ChaosNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  /** The ids of nodes in `state`. */
  inState(state: NodeState): number[] {
    return [...this.nodes.values()].filter((n) => n.state === state).map((n) => n.id);
  }

  kill(id: number): Promise<void> {
    return this.node(id).kill();
  }

  restart(id: number): Promise<void> {
    return this.node(id).start(this.cli, this.configPath);
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
    if (!keep) rmSync(this.root, { recursive: true, force: true });
  }
}
