/**
 * The fault injector: at random moments of the chaos phase it crashes a node (restarting it a
 * little later) or every node at once, partitions the network (halves, an isolated leader, a
 * one-way cut; one partition at a time, healed a little later), or switches the network between
 * calm and flaky (drops, duplicates, delays, reordering), hands leaderships over and moves
 * replicas (reconfig.ts). With `leaderChurn`, it also crashes or cuts off new leaders moments
 * after their election. `heal()` ends the chaos: every link back,
 * the network calm, every node up.
 *
 * Crashes and partitions last seconds. With the host's default compaction slack (1024 entries)
 * a replica that was away catches up from the log; with the small slacks some seeds draw, it
 * falls behind the compacted log and catches up by snapshot.
 */

import type { SeededRandom } from '../../../engine/random.js';
import type { TimerHandle } from '../../../engine/scheduler.js';
import type { MemoryFaults } from '../../../engine/transport/memory-transport.js';
import type { SimCluster } from './cluster.js';
import type { SimNode } from './node.js';
import { Reconfigurer } from './reconfig.js';

/** The longest a crashed node stays down, in ms. */
export const crashDownMsMax = 3_000;
/** The longest a node stays down after an outage, in ms. */
export const outageDownMsMax = 1_000;
/** The shortest a partition lasts, in ms (long enough to force an election). */
export const partitionMsMin = 1_000;
/** The longest a partition lasts, in ms. */
export const partitionMsMax = 5_000;

/** How soon after its election a new leader is crashed or cut off (leader churn), at most. */
export const newLeaderFaultMsMax = 30;

/** The network outside of flaky spells: every frame arrives, 1-2 ms later, in order. */
export const calmNetwork: MemoryFaults = {
  dropRate: 0,
  duplicateRate: 0,
  delayTicksMin: 1,
  delayTicksMax: 2,
  reorderRate: 0,
  reorderTicksMax: 1,
};

type Action =
  | 'crash'
  | 'outage'
  | 'partition'
  | 'isolate'
  | 'cut'
  | 'flaky'
  | 'calm'
  | 'transfer'
  | 'move';

/** The fault injector; see the module comment. */
export class Nemesis {
  private timer: TimerHandle | undefined;
  private stopped = true;
  /** Whether a partition is in force (one at a time, healed after its duration). */
  private partitioned = false;
  /** Partitions made so far: a heal timer heals only the partition it was set for. */
  private partitions = 0;
  /** Fault actions taken. */
  actions = 0;
  /** Leadership transfers and replica moves. */
  readonly reconfig: Reconfigurer;

  constructor(
    private readonly cluster: SimCluster,
    private readonly random: SeededRandom,
  ) {
    this.reconfig = new Reconfigurer(cluster, random);
  }

  /** Starts injecting faults (nothing happens if the options allow none). */
  start(): void {
    if (this.cluster.options.faultEveryMs <= 0) return;
    this.stopped = false;
    this.scheduleNext();
    this.cluster.checker.onNewLeader = (shard, node) => this.newLeader(shard, node);
  }

  /**
   * A new leader is sometimes crashed or cut off moments after its election, before it has
   * replicated what it appended: short reigns leave logs that disagree in their uncommitted
   * tails, which is where commitment and election bugs show.
   */
  private newLeader(shard: number, node: number): void {
    const { cluster, random } = this;
    if (this.stopped || !random.chance(cluster.options.leaderChurn)) return;
    const o = cluster.options;
    const delayMs = random.intBelow(newLeaderFaultMsMax + 1);
    // Isolation drops what the leader has in flight, so its fresh entries stay its own.
    if (o.crashes && (!o.partitions || random.chance(0.3))) {
      cluster.harness.after(delayMs, () => {
        if (!this.stopped) this.crash(cluster.node(node), `new leader of s${shard}`);
      });
    } else if (o.partitions) {
      cluster.harness.after(delayMs, () => {
        if (this.stopped) return;
        // This partition replaces any other in force.
        const others = cluster.nodes.map((n) => n.id).filter((id) => id !== node);
        cluster.network.heal();
        cluster.network.partition([node], others);
        cluster.trace.add(`isolate new leader n${node} of s${shard}`);
        this.healLater();
      });
    }
  }

  /** Stops injecting; faults in force stay until `heal`. */
  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.cluster.checker.onNewLeader = undefined;
  }

  /** Ends the chaos: links healed, network calm, every node (re)started. */
  heal(): void {
    const { network, trace } = this.cluster;
    network.heal();
    network.setFaults(calmNetwork);
    for (const node of this.cluster.nodes) node.start();
    trace.add('heal: all links up, network calm, every node started');
  }

  private scheduleNext(): void {
    const mean = this.cluster.options.faultEveryMs;
    const delay = Math.floor(mean / 2) + this.random.intBelow(mean + 1);
    this.timer = this.cluster.harness.after(delay, () => {
      if (this.stopped) return;
      this.act(this.choose());
      this.scheduleNext();
    });
  }

  private choose(): Action {
    const o = this.cluster.options;
    const menu: [Action, number][] = [
      ['crash', o.crashes ? 3 : 0],
      ['outage', o.crashes ? 1 : 0],
      ['partition', o.partitions ? 2 : 0],
      ['isolate', o.partitions ? 3 : 0],
      ['cut', o.partitions ? 1 : 0],
      ['flaky', o.flakyNetwork ? 2 : 0],
      ['calm', o.flakyNetwork ? 1 : 0],
      ['transfer', o.transfers ? 2 : 0],
      ['move', o.moves ? 2 : 0],
    ];
    const total = menu.reduce((sum, [, w]) => sum + w, 0);
    let roll = this.random.intBelow(Math.max(1, total));
    for (const [action, weight] of menu) {
      if (roll < weight) return action;
      roll -= weight;
    }
    return 'calm';
  }

  private act(action: Action): void {
    const partition = action === 'partition' || action === 'isolate' || action === 'cut';
    if (partition && this.partitioned) return;
    this.actions++;
    switch (action) {
      case 'crash':
        this.crashOne();
        return;
      case 'outage':
        this.outage();
        return;
      case 'partition':
        this.partitionHalves();
        return;
      case 'isolate':
        this.isolateLeader();
        return;
      case 'cut':
        this.cutOneWay();
        return;
      case 'flaky':
        this.flaky();
        return;
      case 'calm':
        this.cluster.network.setFaults(calmNetwork);
        this.cluster.trace.add('network calm');
        return;
      case 'transfer':
        this.reconfig.transfer();
        return;
      case 'move':
        this.reconfig.startMove();
        return;
    }
  }

  private crashOne(): void {
    const { cluster, random } = this;
    const up = cluster.nodes.filter((n) => n.status === 'up');
    if (up.length === 0) return;
    // Half the crashes hit a shard's leader: leader changes are where consensus bugs hide.
    const shards = cluster.shardIds();
    const leader = cluster.leaderOf(shards[random.intBelow(shards.length)]!);
    const target = random.chance(0.5) ? up.find((n) => n.id === leader) : undefined;
    this.crash(target ?? up[random.intBelow(up.length)]!, 'random');
  }

  /**
   * Every node loses power at once (each restarts a little later): what was acknowledged had
   * to be durable on a quorum, because no replica keeps its unsynced writes.
   */
  private outage(): void {
    const { cluster, random } = this;
    const up = cluster.nodes.filter((n) => n.status === 'up');
    cluster.trace.add(`outage: crash ${up.map((n) => `n${n.id}`).join(' ')}`);
    for (const node of up) {
      cluster.atQuiescence(() => node.crash());
      cluster.harness.after(100 + random.intBelow(outageDownMsMax), () => {
        cluster.trace.add(`restart n${node.id}`);
        node.start();
      });
    }
  }

  /** Crashes `node` (if it is up and few enough nodes are down) and restarts it later. */
  private crash(node: SimNode, why: string): void {
    const { cluster, random } = this;
    const down = cluster.nodes.filter((n) => n.status !== 'up').length;
    if (node.status !== 'up' || down >= Math.floor((cluster.nodes.length - 1) / 2)) return;
    const downMs = 100 + random.intBelow(crashDownMsMax);
    cluster.trace.add(`crash n${node.id} (${why}) for ${downMs} ms`);
    cluster.atQuiescence(() => node.crash());
    cluster.harness.after(downMs, () => {
      cluster.trace.add(`restart n${node.id}`);
      node.start();
    });
  }

  private partitionHalves(): void {
    const ids = this.cluster.nodes.map((n) => n.id);
    const side = ids.filter(() => this.random.chance(0.5));
    if (side.length === 0 || side.length === ids.length) return;
    const other = ids.filter((id) => !side.includes(id));
    this.cluster.network.partition(side, other);
    this.cluster.trace.add(`partition [${side}] | [${other}]`);
    this.healLater();
  }

  private isolateLeader(): void {
    const shards = this.cluster.shardIds();
    const leader = this.cluster.leaderOf(shards[this.random.intBelow(shards.length)]!);
    if (leader === 0) return;
    const others = this.cluster.nodes.map((n) => n.id).filter((id) => id !== leader);
    this.cluster.network.partition([leader], others);
    this.cluster.trace.add(`isolate leader n${leader}`);
    this.healLater();
  }

  private cutOneWay(): void {
    const n = this.cluster.nodes.length;
    const from = 1 + this.random.intBelow(n);
    const to = 1 + ((from + this.random.intBelow(n - 1)) % n);
    this.cluster.network.cut(from, to);
    this.cluster.trace.add(`cut n${from} -> n${to}`);
    this.healLater();
  }

  private flaky(): void {
    const r = this.random;
    const faults: MemoryFaults = {
      dropRate: [0, 0.02, 0.1][r.intBelow(3)]!,
      duplicateRate: [0, 0.03][r.intBelow(2)]!,
      delayTicksMin: 1,
      delayTicksMax: 1 + r.intBelow(10),
      reorderRate: [0, 0.05, 0.2][r.intBelow(3)]!,
      reorderTicksMax: 1 + r.intBelow(30),
    };
    this.cluster.network.setFaults(faults);
    this.cluster.trace.add(`network flaky ${JSON.stringify(faults)}`);
  }

  private healLater(): void {
    this.partitioned = true;
    const generation = ++this.partitions;
    const ms = partitionMsMin + this.random.intBelow(partitionMsMax - partitionMsMin + 1);
    this.cluster.harness.after(ms, () => {
      if (generation !== this.partitions) return; // a later partition replaced this one
      this.partitioned = false;
      if (this.stopped) return;
      this.cluster.network.heal();
      this.cluster.trace.add('partition healed');
    });
  }
}
