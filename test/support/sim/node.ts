/**
 * One simulated node: the real engine of one process — SegmentedLog on its own fault-injecting
 * file system, KvState on a real LMDB environment, NodeHost, LocalNodeService — attached to the
 * simulated network and driven by simulated time.
 *
 * A crash is what a power loss does to the log and a process crash does to LMDB: the node's
 * scheduler is killed (no timer or turn of that incarnation ever runs again), its transport
 * closes, its file system loses unsynced writes and tears the last one, and its LMDB
 * environment is closed without losing any committed transaction. A restart recovers the log
 * from what the file system kept, reopens LMDB and re-adds the node's groups. Raft messages and
 * snapshot chunks from the network go to the host; its log lines go to the run's trace.
 *
 * LMDB runs with durability 'sync': every commit is synchronous, so no LMDB work completes on a
 * worker thread at a moment simulated time does not control (with 'deferred', the host's
 * checkpoint would wait for a real fsync on the thread pool). A process crash loses no
 * committed transaction under either setting.
 */
import { FlotillaError } from '../../../engine/errors.js';
import {
  type GroupSpec,
  type LeaderChange,
  NodeHost,
  type NodeHostOptions,
} from '../../../engine/host.js';
import { SegmentedLog } from '../../../engine/log/segmented-log.js';
import type { Message } from '../../../engine/raft/types.js';
import { SeededRandom } from '../../../engine/random.js';
import type { Change } from '../../../engine/state/change-feed.js';
import type { UserCommand } from '../../../engine/state/exec.js';
import { KvState } from '../../../engine/state/kv-state.js';
import type { MemoryNetwork, MemoryTransport } from '../../../engine/transport/memory-transport.js';
import { LocalNodeService, type ShardMap } from '../../../shards/node-service.js';
import { keyHash } from '../../../shards/partition.js';
import { FaultFs, type FaultOp } from '../fault-fs.js';
import type { SimClock, SimScheduler } from './clock.js';
import type { Trace } from './trace.js';

/** Where the log lives on each node's (in-memory) disk. */
const logDir = '/flotilla/log';

/** A node's clock reads up to this many ms ahead of simulated time (redrawn at each boot). */
export const clockOffsetMsMax = 1_000_000;

/** Name of the registered user command the workload runs with `exec`. */
export const bumpCommand = 'bump';

/**
 * A deterministic user command: adds `args` (a number, default 1) to the number at `key`
 * (missing = 0) and returns [new value, version], like incr. Throws on a non-number.
 */
export const bump: UserCommand = (tx, key, args) => {
  const current = tx.get(key) ?? 0;
  if (typeof current !== 'number') throw new Error('bump: the stored value is not a number');
  const by = typeof args === 'number' ? args : 1;
  const next = current + by;
  tx.put(key, next);
  return [next, tx.index];
};

/** What a node needs from the cluster around it. */
export interface SimNodeEnv {
  clock: SimClock;
  network: MemoryNetwork;
  trace: Trace;
  /** The shard map every node serves (fixed: shards do not move in the simulator). */
  shardMap: () => ShardMap;
  /** Called with the changes of every batch a node applies. */
  onChanges: (node: number, changes: readonly Change[]) => void;
  /** Called when the node hits an error the simulator did not inject. */
  onFault: (node: number, message: string) => void;
  /** Called when a node learns of a new leader of one of its groups (itself included). */
  onLeader: (node: number, change: LeaderChange) => void;
  /** Called once a node has crashed (its peers lose their connections to it). */
  onCrash: (node: number) => void;
}

/** How one node is built. */
export interface SimNodeConfig {
  id: number;
  peers: number[];
  groups: GroupSpec[];
  /** The LMDB directory (a real directory). */
  stateDir: string;
  /** Seed of the node's disk, fsync latencies and election jitter. */
  seed: number;
  segmentBytes: number;
  /** Simulated fdatasync latency, uniform in [0, fsyncMsMax] ms. */
  fsyncMsMax: number;
  raft: NodeHostOptions['raft'];
  tickMs: number;
  /** How fast this node's clock runs, relative to simulated time (see SimScheduler). */
  clockRate: number;
  /** Host tunables: checkpoint period, compaction slack, snapshot streaming timeouts. */
  checkpointMs: number;
  compactionSlackEntries: number;
  snapshot: NodeHostOptions['snapshot'];
}

/** The parts of a running incarnation; each is set once booting reaches it. */
interface Incarnation {
  number: number;
  scheduler: SimScheduler;
  dead: boolean;
  log?: SegmentedLog;
  state?: KvState;
  host?: NodeHost;
  service?: LocalNodeService;
  transport?: MemoryTransport;
  unsubscribe?: () => void;
}

/** A node's life-cycle state. */
export type NodeStatus = 'down' | 'starting' | 'up';

/** One simulated node; see the module comment. */
export class SimNode {
  readonly id: number;
  private fs: FaultFs;
  private readonly fsRandom: SeededRandom;
  private inc: Incarnation | undefined;
  private incarnations = 0;
  private readonly crashListeners = new Set<() => void>();
  status: NodeStatus = 'down';
  /** The groups this node hosts now, and every group it ever hosted with the spec it had. */
  private readonly hosted: GroupSpec[];
  private readonly everHosted = new Map<number, GroupSpec>();
  /** Snapshots this node streamed to followers / installed, over every incarnation so far. */
  readonly snapshots = { sent: 0, installed: 0 };

  constructor(
    private readonly config: SimNodeConfig,
    private readonly env: SimNodeEnv,
  ) {
    this.id = config.id;
    this.hosted = [...config.groups];
    for (const spec of config.groups) this.everHosted.set(spec.group, spec);
    this.fsRandom = new SeededRandom(config.seed ^ 0x5eed);
    this.fs = new FaultFs({ seed: config.seed, delay: (op) => this.fsDelay(op) });
  }

  /** The running host, when up. */
  get host(): NodeHost | undefined {
    return this.status === 'up' ? this.inc?.host : undefined;
  }

  /** The running service, when up. */
  get service(): LocalNodeService | undefined {
    return this.status === 'up' ? this.inc?.service : undefined;
  }

  /** The running log, when up. */
  get log(): SegmentedLog | undefined {
    return this.status === 'up' ? this.inc?.log : undefined;
  }

  /** The running state machine, when up. */
  get state(): KvState | undefined {
    return this.status === 'up' ? this.inc?.state : undefined;
  }

  /** The groups this node hosts (a joining one included). */
  get groups(): readonly GroupSpec[] {
    return this.hosted;
  }

  /**
   * Hosts `group` from now on. A group this node hosted before resumes with the spec it was
   * first added with (its state and log are still here); a new one joins with no membership.
   */
  joinGroup(group: number): void {
    if (this.hosted.some((g) => g.group === group)) return;
    const spec = this.everHosted.get(group) ?? { group, voters: [] };
    this.everHosted.set(group, spec);
    this.hosted.push(spec);
    this.host?.addGroup(spec);
  }

  /** Stops hosting `group` (its state and log stay on disk). */
  async leaveGroup(group: number): Promise<void> {
    const at = this.hosted.findIndex((g) => g.group === group);
    if (at < 0) return;
    this.hosted.splice(at, 1);
    const host = this.inc?.host;
    if (this.status === 'up' && host?.hosts(group) === true) await host.removeGroup(group);
  }

  /** Calls `fn` once when this node next crashes; returns the unsubscribe function. */
  onNextCrash(fn: () => void): () => void {
    this.crashListeners.add(fn);
    return () => {
      this.crashListeners.delete(fn);
    };
  }

  /** Boots a new incarnation; it comes up once its log is recovered (in simulated time). */
  start(): void {
    if (this.status !== 'down') return;
    this.status = 'starting';
    const inc: Incarnation = {
      number: ++this.incarnations,
      // A restarted process's monotonic clock starts from a new origin.
      scheduler: this.env.clock.scheduler(
        this.config.clockRate,
        this.fsRandom.intBelow(clockOffsetMsMax),
      ),
      dead: false,
    };
    this.inc = inc;
    this.boot(inc).catch((err: unknown) => {
      if (inc.dead) return;
      this.env.onFault(this.id, `boot ${inc.number} failed: ${describeError(err)}`);
    });
  }

  /** Crashes the node at a quiescent point of the simulation; see the module comment. */
  async crash(): Promise<void> {
    const inc = this.inc;
    if (inc === undefined || this.status === 'down') return;
    this.status = 'down';
    inc.dead = true;
    const stats = inc.host?.snapshotStats();
    this.snapshots.sent += stats?.sent ?? 0;
    this.snapshots.installed += stats?.installed ?? 0;
    inc.scheduler.kill();
    inc.unsubscribe?.();
    await inc.transport?.close();
    this.fs = this.fs.crash();
    const listeners = [...this.crashListeners];
    this.crashListeners.clear();
    for (const fn of listeners) fn();
    this.env.onCrash(this.id);
    await inc.state?.close();
  }

  /** Releases the real resources (LMDB) at the end of a run, as a crash would. */
  async shutdown(): Promise<void> {
    await this.crash();
  }

  private async boot(inc: Incarnation): Promise<void> {
    const { clock, network, trace } = this.env;
    const log = await SegmentedLog.open({
      dir: logDir,
      fs: this.fs,
      segmentBytes: this.config.segmentBytes,
      now: () => clock.now(),
    });
    if (inc.dead) return;
    inc.log = log;
    const state = KvState.open({ dir: this.config.stateDir, durability: 'sync', keyHash });
    inc.state = state;
    state.defineCommand(bumpCommand, bump);
    inc.unsubscribe = state.onChanges((changes) => this.env.onChanges(this.id, changes));
    const transport = network.attach(this.id, {
      onMessages: (_from: number, msgs: Message[]) => inc.host?.receive(msgs),
      onSnapshotChunk: (from, chunk) => inc.host?.receiveSnapshotChunk(from, chunk),
    });
    inc.transport = transport;
    transport.setPeers(this.config.peers.map((id) => ({ id, address: '' })));
    const host = this.newHost(inc, log, state, transport);
    inc.host = host;
    host.onLeaderChange((change) => this.env.onLeader(this.id, change));
    for (const spec of this.hosted) {
      host.addGroup(spec);
      // A new cluster's first replica of each shard campaigns at once (no election timeout).
      if (inc.number === 1 && spec.voters[0] === this.id) host.campaign(spec.group);
    }
    inc.service = new LocalNodeService(host, state, this.env.shardMap);
    this.status = 'up';
    trace.add(`n${this.id} up (incarnation ${inc.number}, log at ${this.logSummary(log)})`);
  }

  private newHost(
    inc: Incarnation,
    log: SegmentedLog,
    state: KvState,
    transport: MemoryTransport,
  ): NodeHost {
    const c = this.config;
    const options: NodeHostOptions = {
      nodeId: this.id,
      log,
      state,
      random: new SeededRandom((c.seed * 31 + inc.number) >>> 0),
      scheduler: inc.scheduler,
      transport,
      tickMs: c.tickMs,
      checkpointMs: c.checkpointMs,
      compactionSlackEntries: c.compactionSlackEntries,
      raft: c.raft,
      logger: (level, msg, fields) => {
        const detail = fields === undefined ? '' : ` ${describeFields(fields)}`;
        this.env.trace.add(`n${this.id} ${level}: ${msg}${detail}`);
      },
    };
    if (c.snapshot !== undefined) options.snapshot = c.snapshot;
    return new NodeHost(options);
  }

  private logSummary(log: SegmentedLog): string {
    return this.hosted
      .map((g) => `s${g.group}:${log.firstIndex(g.group)}..${log.lastIndex(g.group)}`)
      .join(' ');
  }

  /** Every file operation takes one microtask, except fdatasync, which takes simulated time. */
  private fsDelay(op: FaultOp): Promise<void> {
    if (op !== 'datasync') return Promise.resolve();
    const inc = this.inc;
    if (inc === undefined || inc.dead) return new Promise(() => undefined);
    return inc.scheduler.sleep(this.fsRandom.intBelow(this.config.fsyncMsMax + 1));
  }
}

/** Log fields in one line; errors by their message (fields are deterministic). */
function describeFields(fields: Record<string, unknown>): string {
  return JSON.stringify(fields, (_key, value: unknown) =>
    value instanceof Error ? describeError(value) : value,
  );
}

/** A one-line description of anything thrown. */
export function describeError(err: unknown): string {
  if (err instanceof FlotillaError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
