/**
 * The shape of one simulation run, drawn from its seed so that the seed alone replays it. A
 * caller may pin any field (cluster size, workload length, planted bugs); the rest still comes
 * from the seed.
 */
import type { RaftUnsafe } from '../../../engine/raft/ready.js';
import { SeededRandom } from '../../../engine/random.js';

/** One run's shape. */
export interface SimOptions {
  seed: number;
  /** Which faults and options the run pushes (see SimProfile). */
  profile: SimProfile;
  /** Nodes, 3..5; every shard is on 3 of them. */
  nodes: number;
  shards: number;
  /** Client operations in the chaos phase (bootstrap, probes and final reads come on top). */
  ops: number;
  /** Concurrent clients, each one request at a time. */
  clients: number;
  /** Raft options the host passes through. */
  preVote: boolean;
  checkQuorum: boolean;
  msgBytesMax: number;
  inflightMsgsMax: number;
  /** Fraction of reads served with a lease instead of ReadIndex (needs checkQuorum). */
  leaseReadRate: number;
  /** Log segment size: small ones make the log rotate and clean during a run. */
  segmentBytes: number;
  /** Simulated fdatasync latency bound, in ms. */
  fsyncMsMax: number;
  /** Host checkpoint period (state flushed, then the log compacted), in ms. */
  checkpointMs: number;
  /**
   * Entries the host keeps below the durable applied index when compacting. Small values make
   * followers that were away fall behind the compacted log and catch up by snapshot.
   */
  compactionSlackEntries: number;
  /** Raft tick period, in ms of each node's own clock. */
  tickMs: number;
  /**
   * Clock skew: each node's clock runs at its own rate in [1, 1 + clockDrift] times simulated
   * time (all its timers: ticks, checkpoints, deadlines, fsync latency) and reads from its own
   * offset, redrawn at every restart. With lease reads it stays under the drift they tolerate
   * (RaftNode: 25 % with the default margin, of which a tick of phase difference takes a share);
   * without, it may be larger (only liveness depends on it then).
   */
  clockDrift: number;
  /** Mean time between two fault actions, in ms (0: no faults at all). */
  faultEveryMs: number;
  /** Whether nodes crash and restart. */
  crashes: boolean;
  /** Whether the network partitions (symmetric and one-way). */
  partitions: boolean;
  /** Whether frames are dropped, duplicated, delayed and reordered. */
  flakyNetwork: boolean;
  /** Probability that a new leader is crashed or isolated moments after its election. */
  leaderChurn: number;
  /** Whether leadership is handed over (to caught-up and to lagging voters). */
  transfers: boolean;
  /**
   * Whether replicas move between nodes (when there are more nodes than replicas): a learner
   * added on a spare node, promoted, an old voter removed, which then stops hosting the shard.
   */
  moves: boolean;
  /** Planted Raft bugs (test only). */
  unsafe?: RaftUnsafe;
}

/** The most a node's clock runs fast when lease reads are on (below the lease's tolerance). */
export const leaseClockDriftMax = 0.15;
/** The clock drift some runs without lease reads draw (beyond what a lease would tolerate). */
export const leaseFreeClockDrift = 0.4;

/** Caller overrides of the seed-drawn shape. */
export type SimOverrides = Partial<Omit<SimOptions, 'seed'>>;

function pick<T>(r: SeededRandom, list: readonly T[]): T {
  return list[r.intBelow(list.length)]!;
}

/**
 * Profiles, in the manner of swarm testing: each seed runs one, which turns some features off
 * and pushes others, because a run that does everything a little finds less than runs that each
 * do a few things hard.
 * - mixed: every fault and option drawn at random;
 * - leader-churn: new leaders are cut off moments after their election, entries travel one per
 *   message with one message in flight, so logs fork in their uncommitted tails (where commit
 *   rules matter);
 * - stale-leader: no CheckQuorum, so a cut-off leader keeps believing it leads while another is
 *   elected (where read rules matter); no crashes;
 * - reconfig: 4 or 5 nodes, replicas moving and leadership handed over all the time, under
 *   crashes and partitions (where membership rules matter).
 */
export type SimProfile = 'mixed' | 'leader-churn' | 'stale-leader' | 'reconfig';

const profiles: readonly SimProfile[] = [
  'mixed',
  'mixed',
  'leader-churn',
  'stale-leader',
  'reconfig',
];

/** What a profile pins; the rest is drawn as for 'mixed'. */
function profileFields(profile: SimProfile, r: SeededRandom): Partial<SimOptions> {
  switch (profile) {
    case 'mixed':
      return {};
    case 'leader-churn':
      return {
        nodes: 3,
        shards: 1 + r.intBelow(2),
        msgBytesMax: 1,
        inflightMsgsMax: 1,
        partitions: true,
        leaderChurn: 0.6,
        faultEveryMs: 400,
      };
    case 'stale-leader':
      return {
        nodes: 3 + r.intBelow(2),
        shards: 1,
        checkQuorum: false,
        leaseReadRate: 0,
        crashes: false,
        partitions: true,
        leaderChurn: 0,
      };
    case 'reconfig':
      return {
        nodes: 4 + r.intBelow(2),
        transfers: true,
        moves: true,
        leaderChurn: 0,
        faultEveryMs: 300,
      };
  }
}

/** The run's shape for `seed`, with `overrides` pinned. */
export function optionsForSeed(seed: number, overrides: SimOverrides = {}): SimOptions {
  const r = new SeededRandom(seed ^ 0x5a17);
  const drawnProfile = pick(r, profiles);
  const profile = overrides.profile ?? drawnProfile;
  const checkQuorum = r.chance(0.7);
  const drawn: SimOptions = {
    seed,
    profile,
    nodes: 3 + r.intBelow(3),
    shards: 1 + r.intBelow(3),
    ops: 150,
    clients: 3 + r.intBelow(5),
    preVote: r.chance(0.8),
    checkQuorum,
    msgBytesMax: pick(r, [1, 200, 1024 * 1024]),
    inflightMsgsMax: pick(r, [1, 4, 256]),
    leaseReadRate: checkQuorum ? pick(r, [0, 0, 0.3]) : 0,
    segmentBytes: pick(r, [16 * 1024, 64 * 1024]),
    fsyncMsMax: pick(r, [1, 3, 8, 25]),
    checkpointMs: pick(r, [250, 1000]),
    compactionSlackEntries: pick(r, [1024, 32, 4]),
    tickMs: 100,
    clockDrift: pick(r, [0, 0.05, 0.15]),
    faultEveryMs: pick(r, [400, 800, 1500]),
    crashes: r.chance(0.8),
    partitions: r.chance(0.8),
    flakyNetwork: r.chance(0.7),
    leaderChurn: pick(r, [0, 0.2, 0.4]),
    transfers: r.chance(0.5),
    moves: r.chance(0.5),
  };
  const options = { ...drawn, ...profileFields(profile, r), ...overrides };
  if (!options.checkQuorum) options.leaseReadRate = 0;
  // Without lease reads, clocks may drift further than the lease tolerates.
  if (options.leaseReadRate === 0 && r.chance(0.3)) options.clockDrift = leaseFreeClockDrift;
  if (options.leaseReadRate > 0 && options.clockDrift > leaseClockDriftMax) {
    throw new RangeError(`lease reads tolerate a clock drift of at most ${leaseClockDriftMax}`);
  }
  return options;
}

/** A one-line summary of the shape (for failure reports). */
export function describeOptions(o: SimOptions): string {
  const faults = [
    o.crashes ? 'crashes' : '',
    o.partitions ? 'partitions' : '',
    o.flakyNetwork ? 'flaky-net' : '',
    o.transfers ? 'transfers' : '',
    o.moves ? 'moves' : '',
  ].filter((f) => f !== '');
  const unsafe = o.unsafe === undefined ? '' : ` UNSAFE ${JSON.stringify(o.unsafe)}`;
  return (
    `seed ${o.seed} (${o.profile}): ${o.nodes} nodes, ${o.shards} shards, ${o.ops} ops, ` +
    `${o.clients} clients, ` +
    `preVote ${o.preVote}, checkQuorum ${o.checkQuorum}, msgBytesMax ${o.msgBytesMax}, ` +
    `inflight ${o.inflightMsgsMax}, lease reads ${o.leaseReadRate}, segment ${o.segmentBytes} B, ` +
    `fsync <= ${o.fsyncMsMax} ms, checkpoint ${o.checkpointMs} ms, compaction slack ` +
    `${o.compactionSlackEntries}, ticks ${o.tickMs} ms, clock drift ${o.clockDrift}, faults every ~${o.faultEveryMs} ms [${faults.join(' ')}], ` +
    `leader churn ${o.leaderChurn}${unsafe}`
  );
}
