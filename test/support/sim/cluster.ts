/**
 * A simulated cluster: N nodes (SimNode) on one MemoryNetwork, M shards each placed on 3 nodes,
 * one simulated clock, and the driver that moves it all forward.
 *
 * The driver's step: settle (run every promise chain and queued turn), flush the network and
 * deliver what is due — repeated while anything was delivered — then poll the election-safety
 * check, run the actions queued for this quiescent point (crashes, restarts, deep checks), and
 * advance the clock to the next timer (or by 1 ms while frames are in flight) and run the timers
 * due. Everything random was drawn from the seed, timers run in a fixed order, and faults land
 * only at quiescent points, so a seed replays exactly.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { GroupSpec } from '../../../engine/host.js';
import type { RaftConfig } from '../../../engine/raft/ready.js';
import { SeededRandom } from '../../../engine/random.js';
import { MemoryNetwork } from '../../../engine/transport/memory-transport.js';
import { keyBytes } from '../../../shards/keys.js';
import type { ShardMap } from '../../../shards/node-service.js';
import { evenRanges, keyHash, rangeIndexOf } from '../../../shards/partition.js';
import { SafetyChecker } from './checks.js';
import { SimClock, type SimScheduler } from './clock.js';
import { SimFailure } from './failure.js';
import { SimNode } from './node.js';
import type { SimOptions } from './options.js';
import { Trace } from './trace.js';

/** Replicas per shard. */
export const replicasPerShard = 3;

/**
 * The nodes holding shard `shard` (1-based) among `nodes` nodes: 3 consecutive ids, the first
 * of which campaigns when the cluster starts (so first leaders spread over the nodes).
 */
export function placement(shard: number, nodes: number): number[] {
  const out: number[] = [];
  for (let k = 0; k < Math.min(replicasPerShard, nodes); k++) {
    out.push(((shard - 1 + k) % nodes) + 1);
  }
  return out;
}

/**
 * Snapshot streaming timeouts in the simulator: a stream broken by a dropped frame is given up
 * and restarted after seconds, not the minute the defaults allow, since a run lasts seconds.
 */
export const simSnapshotTuning = { stallMs: 2_000, ackTimeoutMs: 5_000, receiveIdleMs: 5_000 };

/** A simulated cluster; see the module comment. */
export class SimCluster {
  readonly clock = new SimClock();
  readonly trace: Trace;
  readonly network: MemoryNetwork;
  readonly checker: SafetyChecker;
  /** The scheduler of the harness (clients, faults): never killed. */
  readonly harness: SimScheduler;
  readonly nodes: SimNode[] = [];
  /** Driver steps taken. */
  steps = 0;
  private readonly starts: Uint32Array;
  private readonly map: ShardMap;
  private actions: (() => Promise<void> | void)[] = [];

  constructor(
    readonly options: SimOptions,
    random: SeededRandom,
    readonly baseDir: string,
  ) {
    this.trace = new Trace(() => this.clock.now());
    this.checker = new SafetyChecker(this.trace);
    this.harness = this.clock.scheduler();
    this.network = new MemoryNetwork({
      random: new SeededRandom(random.nextU32()),
      now: () => this.clock.now(),
    });
    const ranges = evenRanges(options.shards);
    this.starts = Uint32Array.from(ranges, (r) => r.start);
    const ids = Array.from({ length: options.nodes }, (_, k) => k + 1);
    this.map = {
      epoch: 1,
      shards: ranges.map((r, k) => ({
        id: k + 1,
        hashLow: r.start,
        hashHigh: r.end,
        replicas: placement(k + 1, options.nodes),
        leader: 0,
      })),
      nodes: ids.map((id) => ({ id, client: '' })),
    };
    for (const id of ids) {
      const clockRate = 1 + (random.intBelow(1001) / 1000) * options.clockDrift;
      this.nodes.push(this.buildNode(id, ids, random.nextU32(), clockRate));
    }
  }

  private buildNode(id: number, ids: number[], seed: number, clockRate: number): SimNode {
    const groups: GroupSpec[] = this.map.shards
      .filter((s) => s.replicas.includes(id))
      .map((s) => ({ group: s.id, voters: s.replicas }));
    const o = this.options;
    const raft: Partial<Omit<RaftConfig, 'id' | 'group' | 'random' | 'applied'>> = {
      preVote: o.preVote,
      checkQuorum: o.checkQuorum,
      msgBytesMax: o.msgBytesMax,
      inflightMsgsMax: o.inflightMsgsMax,
    };
    if (o.unsafe !== undefined) raft.unsafe = o.unsafe;
    return new SimNode(
      {
        id,
        peers: ids.filter((p) => p !== id),
        groups,
        stateDir: join(this.baseDir, `n${id}`),
        seed,
        segmentBytes: o.segmentBytes,
        fsyncMsMax: o.fsyncMsMax,
        raft,
        tickMs: o.tickMs,
        clockRate,
        checkpointMs: o.checkpointMs,
        compactionSlackEntries: o.compactionSlackEntries,
        snapshot: simSnapshotTuning,
      },
      {
        clock: this.clock,
        network: this.network,
        trace: this.trace,
        shardMap: () => this.map,
        onChanges: (node, changes) => this.checker.onChanges(node, changes),
        onFault: (node, message) => this.checker.fail('engine-fault', `n${node}: ${message}`),
        onLeader: (node, change) => this.checker.leaderAnnounced(node, change),
        onCrash: (node) => {
          // Peers' connections to a dead process break: their snapshot streams to it end.
          for (const peer of this.nodes) peer.host?.reportConnectionLost(node);
        },
      },
    );
  }

  /** The node with id `id`. */
  node(id: number): SimNode {
    const node = this.nodes[id - 1];
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  /** The shard owning `key`, as the router computes it. */
  shardOf(key: string): number {
    return rangeIndexOf(this.starts, keyHash(keyBytes(key))) + 1;
  }

  /**
   * The nodes hosting `shard`: its voters, a learner being added, a voter being removed until
   * it stops hosting. Clients route to them; the checks and convergence cover them.
   */
  replicasOf(shard: number): number[] {
    return this.map.shards[shard - 1]!.replicas;
  }

  /**
   * Starts hosting `shard` on `id` as a joining replica (a replica move's first step): the node
   * hosts it from now on, across restarts, and waits for the leader's snapshot.
   */
  hostOn(shard: number, id: number): void {
    const info = this.map.shards[shard - 1]!;
    if (info.replicas.includes(id)) return;
    info.replicas = [...info.replicas, id].sort((a, b) => a - b);
    this.map.epoch++;
    this.node(id).joinGroup(shard);
  }

  /** Stops hosting `shard` on `id`, once a membership change removed it (a move's last step). */
  async unhostFrom(shard: number, id: number): Promise<void> {
    const info = this.map.shards[shard - 1]!;
    if (!info.replicas.includes(id)) return;
    info.replicas = info.replicas.filter((r) => r !== id);
    this.map.epoch++;
    await this.node(id).leaveGroup(shard);
  }

  /** Shard ids. */
  shardIds(): number[] {
    return this.map.shards.map((s) => s.id);
  }

  /** The leader of `shard` with the highest term among live replicas, 0 if none. */
  leaderOf(shard: number): number {
    let best = 0;
    let bestTerm = -1;
    for (const id of this.replicasOf(shard)) {
      const host = this.node(id).host;
      if (host === undefined || !host.isLeader(shard)) continue;
      const term = host.status(shard).term;
      if (term > bestTerm) {
        best = id;
        bestTerm = term;
      }
    }
    return best;
  }

  /** Runs `fn` at the next quiescent point (it may await: nothing else moves meanwhile). */
  atQuiescence(fn: () => Promise<void> | void): void {
    this.actions.push(fn);
  }

  /** One driver step; see the module comment. Throws the first failure a check recorded. */
  async step(): Promise<void> {
    this.steps++;
    await this.quiesce();
    this.checker.observeLeaders(this.nodes);
    this.checker.checkCommitSafety(this.nodes, (shard) => this.replicasOf(shard));
    this.checker.recordSessions(this.nodes);
    while (this.actions.length > 0) {
      const batch = this.actions;
      this.actions = [];
      for (const action of batch) await action();
      await this.quiesce();
    }
    if (this.checker.failure !== undefined) throw this.checker.failure;
    let next = this.clock.nextTimerAt();
    if (!this.network.idle())
      next = Math.min(next ?? Number.POSITIVE_INFINITY, this.clock.now() + 1);
    if (next === undefined)
      throw new SimFailure('exception', 'the simulation has nothing left to do');
    this.clock.advanceTo(next);
    this.clock.runDue();
  }

  /** Settles and delivers frames due now until nothing moves at this instant. */
  private async quiesce(): Promise<void> {
    for (;;) {
      await this.clock.settle();
      this.network.flush();
      if (this.network.deliver() === 0) return;
    }
  }

  /** Steps until `done()` holds; false if `limitMs` of simulated time passed first. */
  async runUntil(done: () => boolean, limitMs: number): Promise<boolean> {
    const end = this.clock.now() + limitMs;
    while (!done()) {
      if (this.clock.now() >= end) return false;
      await this.step();
    }
    return true;
  }

  /** Steps for `ms` of simulated time. */
  async runFor(ms: number): Promise<void> {
    const end = this.clock.now() + ms;
    while (this.clock.now() < end) await this.step();
  }

  /** Stops every node (releasing LMDB) and removes the state directories. */
  async destroy(): Promise<void> {
    for (const node of this.nodes) await node.shutdown();
    rmSync(this.baseDir, { recursive: true, force: true });
  }
}
