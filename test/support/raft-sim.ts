/**
 * Seeded chaos runs of the Raft core on the in-memory network (raft-network.ts): groups of 3 or
 * 5 replicas under drops, duplicates, reordering delays, partitions, crash-restarts, delayed
 * writes, leadership transfers, membership changes, client proposals and reads. The network
 * checks the safety invariants on every Ready; after the chaos the network heals and the run
 * demands liveness: every group elects a leader, a new proposal commits on every voter, and
 * every accepted proposal of a live replica gets its outcome.
 */
import { singleConfChange } from '../../engine/raft/conf-change.js';
import { SeededRandom } from '../../engine/random.js';
import { RaftNetwork } from './raft-network.js';

/** One run's shape. */
export interface SimOptions {
  seed: number;
  /** Voters per group at the start. */
  replicas: 3 | 5;
  groups: number;
  /** Chaos turns (a tick is two turns). */
  turns: number;
  readOnlyOption: 'safe' | 'lease';
  /** Propose membership changes (two spare nodes join the cluster). */
  confChanges: boolean;
  /** Flow-control bounds (small ones make replication interleave in more ways). */
  msgBytesMax: number;
  inflightMsgsMax: number;
  uncommittedBytesMax: number;
  preVote: boolean;
  /** Off in some safe-read runs: stale leaders then linger in partitions, testing ReadIndex. */
  checkQuorum: boolean;
}

/** What a run achieved (for sanity checks that the run did something). */
export interface SimResult {
  /** Highest applied index per group. */
  applied: number[];
  /** Leader elections observed (sum of final terms). */
  terms: number;
  readsServed: number;
  proposalsDropped: number;
}

/** The run's options as the seed dictates (so a seed alone replays a run). */
export function simOptionsForSeed(seed: number, turns = 1500): SimOptions {
  const r = new SeededRandom(seed ^ 0x51ed);
  const lease = r.chance(0.35);
  return {
    seed,
    replicas: r.chance(0.5) ? 3 : 5,
    groups: 1 + r.intBelow(3),
    turns,
    readOnlyOption: lease ? 'lease' : 'safe',
    confChanges: r.chance(0.35),
    msgBytesMax: pick(r, [60, 200, 1024 * 1024]),
    inflightMsgsMax: pick(r, [1, 3, 256]),
    uncommittedBytesMax: pick(r, [400, 64 * 1024 * 1024]),
    preVote: r.chance(0.7),
    checkQuorum: lease || r.chance(0.6),
  };
}

/** Runs one seeded simulation; throws (InvariantViolation or Error) on a broken property. */
export function runSimulation(options: SimOptions): SimResult {
  const rng = new SeededRandom(options.seed ^ 0xc0ffee);
  const voters = Array.from({ length: options.replicas }, (_, k) => k + 1);
  const nodes = options.confChanges ? [...voters, voters.length + 1, voters.length + 2] : voters;
  const net = new RaftNetwork({
    nodes,
    voters,
    groups: options.groups,
    seed: options.seed,
    config: {
      readOnlyOption: options.readOnlyOption,
      msgBytesMax: options.msgBytesMax,
      inflightMsgsMax: options.inflightMsgsMax,
      uncommittedBytesMax: options.uncommittedBytesMax,
      preVote: options.preVote,
      checkQuorum: options.checkQuorum,
    },
    faults: { drop: 0.05, duplicate: 0.03, delayMax: 4 },
    holdReadyChance: 0.1,
    compactAfter: 40,
  });
  const clocks = new Clocks(nodes, rng);
  for (let t = 0; t < options.turns; t++) {
    chaosTurn(net, rng, clocks, options);
  }
  heal(net);
  demandLiveness(net, rng, clocks);
  const applied: number[] = [];
  let terms = 0;
  let readsServed = 0;
  let proposalsDropped = 0;
  for (let g = 1; g <= options.groups; g++) {
    applied.push(net.maxApplied(g));
    for (const node of nodes) {
      const replica = net.replica(node, g);
      readsServed += replica.readStates.length;
      proposalsDropped += replica.dropped.length;
      terms = Math.max(terms, replica.raft.hardState().term);
    }
  }
  return { applied, terms, readsServed, proposalsDropped };
}

/**
 * Per-node clocks: a node ticks about every two turns, at its own rate within ±10 % and its own
 * phase — drift inside what the leader lease tolerates (rates within a factor 1.25).
 */
class Clocks {
  private readonly rates = new Map<number, number>();
  private readonly phases = new Map<number, number>();

  constructor(nodes: number[], rng: SeededRandom) {
    for (const node of nodes) {
      this.rates.set(node, 0.5 * (0.9 + 0.2 * rng.float()));
      this.phases.set(node, rng.float());
    }
  }

  /** Ticks every node whose clock crossed a whole tick this turn. */
  advance(net: RaftNetwork): void {
    for (const node of net.nodes) {
      const phase = this.phases.get(node)! + this.rates.get(node)!;
      this.phases.set(node, phase >= 1 ? phase - 1 : phase);
      if (phase >= 1) net.tick(node);
    }
  }
}

function chaosTurn(net: RaftNetwork, rng: SeededRandom, clocks: Clocks, options: SimOptions): void {
  net.now++;
  net.deliverDue();
  clocks.advance(net);
  clientOps(net, rng, options);
  net.processAll();
  if (rng.chance(0.004)) net.crash(pick(rng, net.nodes));
  for (const node of net.nodes) if (!net.isUp(node) && rng.chance(0.04)) net.restart(node);
  if (rng.chance(0.006)) {
    const side = net.nodes.filter(() => rng.chance(0.5));
    net.partition(
      side,
      net.nodes.filter((n) => !side.includes(n)),
    );
  }
  if (rng.chance(0.004)) {
    const leader = net.leaderOf(1 + rng.intBelow(net.groups));
    if (leader !== 0) net.isolate(leader);
  }
  if (rng.chance(0.003)) net.cutLink(pick(rng, net.nodes), pick(rng, net.nodes));
  if (rng.chance(0.015)) net.heal();
}

function pick<T>(rng: SeededRandom, list: readonly T[]): T {
  return list[rng.intBelow(list.length)]!;
}

function clientOps(net: RaftNetwork, rng: SeededRandom, options: SimOptions): void {
  const group = 1 + rng.intBelow(net.groups);
  const node = pick(rng, net.nodes);
  if (!net.isUp(node)) return;
  if (rng.chance(0.4)) {
    const burst = 1 + rng.intBelow(4);
    for (let i = 0; i < burst; i++) net.proposeNext(node, group);
  }
  if (rng.chance(0.08)) net.read(node, group);
  // Reads at every node that believes it leads: a stale leader must not answer from old state.
  for (const n of net.nodes) {
    if (net.isUp(n) && net.raft(n, group).isLeader() && rng.chance(0.3)) net.read(n, group);
  }
  const raft = net.raft(node, group);
  if (!raft.isLeader()) return;
  if (rng.chance(0.004)) raft.transferLeader(pick(rng, raft.status().conf.voters));
  if (options.confChanges && rng.chance(0.02)) proposeConfChange(net, rng, node, group);
}

function proposeConfChange(net: RaftNetwork, rng: SeededRandom, node: number, group: number) {
  const raft = net.raft(node, group);
  const conf = raft.status().conf;
  const outsiders = net.nodes.filter((n) => !conf.voters.includes(n) && !conf.learners.includes(n));
  const choice = rng.intBelow(4);
  if (choice === 0 && conf.learners.length > 0) {
    raft.proposeConfChange(singleConfChange('addVoter', pick(rng, conf.learners)));
  } else if (choice === 1 && outsiders.length > 0) {
    raft.proposeConfChange(singleConfChange('addLearner', pick(rng, outsiders)));
  } else if (choice === 2 && conf.voters.length > 3) {
    raft.proposeConfChange(singleConfChange('removeVoter', pick(rng, conf.voters)));
  } else if (outsiders.length > 0) {
    // Replace a voter in one joint step.
    raft.proposeConfChange({
      changes: [
        { type: 'addVoter', node: pick(rng, outsiders) },
        { type: 'removeVoter', node: pick(rng, conf.voters) },
      ],
      transition: rng.chance(0.5) ? 'joint-auto-leave' : 'auto',
    });
  }
}

function heal(net: RaftNetwork): void {
  net.heal();
  for (const node of net.nodes) net.restart(node);
  net.faults = { drop: 0, duplicate: 0, delayMax: 2 };
}

/** After healing: every group elects a leader and commits on every voter; nothing dangles. */
function demandLiveness(net: RaftNetwork, rng: SeededRandom, clocks: Clocks): void {
  const probes = new Map<number, Probe>();
  const limit = net.now + 4000;
  while (net.now < limit) {
    net.now++;
    net.deliverDue();
    clocks.advance(net);
    net.processAll();
    let done = true;
    for (let g = 1; g <= net.groups; g++) {
      if (!groupSettled(net, g, probes, rng)) done = false;
    }
    if (done) return;
  }
  const detail = Array.from({ length: net.groups }, (_, k) => describeGroup(net, k + 1));
  throw new Error(`no liveness after healing: ${detail.join('; ')}`);
}

interface Probe {
  index: number;
  leader: number;
  term: number;
}

function groupSettled(
  net: RaftNetwork,
  group: number,
  probes: Map<number, Probe>,
  rng: SeededRandom,
): boolean {
  const leader = net.leaderOf(group);
  if (leader === 0) return false;
  const raft = net.raft(leader, group);
  const term = raft.hardState().term;
  // A replica removed from the group never hears of it (nobody replicates to it): its host
  // learns from the shard map and closes it, which settles its proposals as 'closed'. (Only
  // once the leader has applied its whole log: no membership change is still on its way.)
  const st = raft.status();
  const conf = st.conf;
  const settled = conf.votersOutgoing.length === 0 && st.applied === st.lastIndex;
  for (const node of settled ? net.nodes : []) {
    const member = [conf.voters, conf.votersOutgoing, conf.learners, conf.learnersNext].some((l) =>
      l.includes(node),
    );
    if (!member && net.isUp(node)) net.raft(node, group).close();
  }
  const probe = probes.get(group);
  const applied = net.replica(leader, group).smIndex;
  const stale = probe === undefined || probe.leader !== leader || probe.term !== term;
  // Keep the log growing until every dangling proposal is settled: an old leader's proposal
  // beyond the new leader's log end is only superseded once the log grows past it.
  if (stale || (applied >= probe.index && net.unresolvedProposals(group) > 0)) {
    if (rng.chance(0.5)) {
      const result = net.proposeNext(leader, group);
      if (result.ok) probes.set(group, { index: result.index, leader, term });
    }
    return false;
  }
  if (net.unresolvedProposals(group) > 0) return false;
  return conf.voters.every((v) => net.replica(v, group).smIndex >= probe.index);
}

/** One line per replica of `group`: what a failed liveness check needs to be understood. */
function describeGroup(net: RaftNetwork, group: number): string {
  const lines = [`group ${group}: leader ${net.leaderOf(group)}`];
  for (const node of net.nodes) {
    const r = net.replica(node, group);
    const st = r.raft.status();
    const progress = st.progress.map((p) => `${p.id}:${p.state}/${p.match}/${p.next}`).join(' ');
    lines.push(
      `  ${node}: ${st.role} t${st.term} commit ${st.commit} last ${st.lastIndex} applied ` +
        `${r.smIndex} voters [${st.conf.voters}] out [${st.conf.votersOutgoing}] learners ` +
        `[${st.conf.learners}] pending ${r.proposals.size} ${progress}`,
    );
  }
  return lines.join('\n');
}
