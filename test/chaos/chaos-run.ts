/**
 * A chaos run against real processes (issue 7, item 5): 3–5 `flotilla serve` nodes on loopback,
 * a client load through `Flotilla.connect`, and seeded fault loops ("nemeses"):
 *
 * - `kill`: SIGKILL a node, restart it after a random delay;
 * - `freeze`: SIGSTOP a node, SIGCONT it after a random delay (it keeps its sockets open);
 * - `partition`: through a proxy on every node-to-node link (chaos-network.ts), isolate one
 *   node, split a minority from the majority, cut the links of one pair (the others still
 *   bridge them), or blackhole one direction of one link — each link either cut (connections
 *   reset and refused) or blackholed (bytes silently dropped) — then heal.
 *
 * Kills and freezes never take down more than a minority at once; a partition on top of them
 * may leave no majority for a while, which only costs availability. Some clients use a short
 * deadline, so that writes caught in a partition end with TIMEOUT and an unknown outcome, which
 * the checks must treat as "may or may not have happened". Then the run heals, waits
 * until every shard has a leader that accepts a write, stops the load and checks:
 *
 * (a) the history is linearizable (`checkHistory`; checker timeouts are reported apart),
 * (b) no acknowledged write is lost (keys with a single writer read back the last acknowledged
 *     put's value, or that of a put with unknown outcome, which may land at any time),
 * (c) every replica converged: once all replicas of every shard report the same applied index
 *     (or 30 s passed), the nodes stop cleanly with SIGTERM, each node's state directory
 *     is reopened offline with KvState, and for every shard all replicas must have the same
 *     applied index and the same `checksum(shard)`.
 *
 * The seed fixes the faults (which node, which fault, every delay; only the choice of "the
 * busiest leader" follows what the nodes print) and each client's operation choices; process
 * scheduling still varies between runs, so a seed narrows a failure down rather than replaying
 * it exactly.
 */
import { writeFileSync } from 'node:fs';
import { linearizabilityStepsMax } from '../../engine/limits.js';
import { SeededRandom } from '../../engine/random.js';
import type { RemoteStore } from '../../shards/client/remote.js';
import { Flotilla } from '../../shards/index.js';
import { formatHistory, type Json } from '../support/history.js';
import { checkHistory, formatFailure } from '../support/linearizability.js';
import { ChaosCluster, type ReplicaState } from './chaos-cluster.js';
import { clientLoop, HistoryRecorder, lostWrites, ownKeys } from './chaos-load.js';
import type { ChaosNetwork, NetworkCounters } from './chaos-network.js';

/** The fault loops a run can use. */
export type Nemesis = 'kill' | 'freeze' | 'partition';

/** Every nemesis, the default. */
export const allNemeses: readonly Nemesis[] = ['kill', 'freeze', 'partition'];

/** What to run. */
export interface ChaosOptions {
  /** dist/bin/flotilla.js. */
  cli: string;
  /** How long the fault loop runs at least. */
  durationMs: number;
  /** Kill/restart cycles the fault loop completes at least (default 0): it runs on until then. */
  cyclesMin?: number;
  nodes: number;
  seed: number;
  shards?: number;
  /** Clients with the long deadline (default 4). */
  clients?: number;
  /** Where to write the history as JSON lines. */
  historyFile?: string;
  /** Slowest fault: kills last up to this long, freezes up to half of it, partitions twice. */
  faultMsMax?: number;
  /** The fault loops to run (default `allNemeses`). */
  nemeses?: readonly Nemesis[];
  /** Clients with the short deadline, besides `clients` with a long one (default 2). */
  hastyClients?: number;
  /** The short deadline, in milliseconds (default `hastyTimeoutMsDefault`). */
  hastyTimeoutMs?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** The outcome of a run. */
export interface ChaosSummary {
  seed: number;
  nodes: number;
  kills: number;
  freezes: number;
  /** Partitions made, by kind ("isolate cut", "one-way blackhole", ...). */
  partitions: Record<string, number>;
  /** What the link proxies did (undefined without the partition nemesis). */
  network: NetworkCounters | undefined;
  ops: number;
  acked: number;
  unknown: number;
  errors: number;
  codes: Record<string, number>;
  linearizable: boolean;
  checkerTimeouts: number;
  failures: string[];
  ownKeysChecked: number;
  lostWrites: string[];
  shardsConverged: number;
  divergence: string[];
  uncleanStops: number[];
  ok: boolean;
}

/** Client deadline per call: longer than a kill plus an election. */
const clientTimeoutMs = 15_000;
/** The short deadline: shorter than an election, so a partitioned leader's writes time out. */
export const hastyTimeoutMsDefault = 600;
/** How long the healed cluster has to give every shard a leader that accepts a write. */
const healMs = 60_000;
/**
 * Step budget of the history check, per key: ten times the simulator's, since a long run's hot
 * keys carry thousands of operations and hundreds of unknown outcomes, and the check runs once.
 */
const checkStepsMax = 10 * linearizabilityStepsMax;
/**
 * How long the replicas have, once the load stopped, to apply the same index: a reconnect
 * backoff (at most 5 s), an election, a snapshot or a few thousand entries to catch up.
 */
const convergeMs = 30_000;
/** Milliseconds between two looks at the replicas' applied indexes. */
const convergePollMs = 200;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs one chaos run; never throws for a failed check (see `ok`), only for a broken setup. */
export async function runChaos(options: ChaosOptions): Promise<ChaosSummary> {
  const log = options.log ?? (() => {});
  const shards = options.shards ?? 4;
  const clientCount = options.clients ?? 4;
  const nemeses = new Set(options.nemeses ?? allNemeses);
  const partitions = nemeses.has('partition');
  const cluster = await ChaosCluster.start(options.cli, options.nodes, shards, partitions);
  const via = partitions ? ', links through proxies' : '';
  log(`cluster of ${options.nodes} nodes in ${cluster.root}${via}, seed ${options.seed}`);
  const connect = (timeoutMs: number) =>
    Flotilla.connect(cluster.endpoints, {
      secret: cluster.secret,
      clusterId: cluster.clusterId,
      timeoutMs,
    });
  const dbs: RemoteStore[] = [];
  let passed = false;
  let stopped = false;
  let load: Promise<unknown> = Promise.resolve();
  try {
    const hastyMs = options.hastyTimeoutMs ?? hastyTimeoutMsDefault;
    const hastyCount = options.hastyClients ?? 2;
    for (let c = 0; c < clientCount + hastyCount; c++) {
      dbs.push(await connect(c < clientCount ? clientTimeoutMs : hastyMs));
    }
    const recorder = new HistoryRecorder();
    load = Promise.all(
      dbs.map((db, c) => clientLoop(db, c, options.seed * 31 + c + 1, recorder, () => stopped)),
    );
    const faults = await runNemeses(cluster, nemeses, options, log);
    log(
      `healed after ${faults.kills} kills, ${faults.freezes} freezes, ` +
        `${sumOf(faults.partitions)} partitions; waiting for leaders`,
    );
    await awaitWritable(dbs[0]!);
    stopped = true;
    await load;
    const summary = await checkRun(cluster, dbs[0]!, recorder, options, log);
    const result = { ...summary, ...faults, network: cluster.network?.counters() };
    passed = result.ok;
    return result;
  } finally {
    // After a broken setup the load must end before its clients close under it.
    stopped = true;
    await load.catch((err: unknown) => log(`client load failed: ${String(err)}`));
    for (const db of dbs) await db.close();
    if (!passed) log(`node output:\n${cluster.tails()}`);
    await cluster.destroy(!passed);
    if (!passed) log(`data kept in ${cluster.root}`);
  }
}

function sumOf(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/** What the nemeses did. */
interface FaultCounts {
  kills: number;
  freezes: number;
  partitions: Record<string, number>;
}

/**
 * Runs the chosen fault loops side by side until the duration is over and (with `kill`) at
 * least `cyclesMin` kill/restart cycles are done; everything is healed when it resolves.
 */
async function runNemeses(
  cluster: ChaosCluster,
  nemeses: ReadonlySet<Nemesis>,
  options: ChaosOptions,
  log: (line: string) => void,
): Promise<FaultCounts> {
  const end = Date.now() + options.durationMs;
  const counts: FaultCounts = { kills: 0, freezes: 0, partitions: {} };
  const cyclesMin = nemeses.has('kill') ? (options.cyclesMin ?? 0) : 0;
  const done = () => Date.now() >= end && counts.kills >= cyclesMin;
  const loops: Promise<void>[] = [];
  if (nemeses.has('kill') || nemeses.has('freeze')) {
    loops.push(processLoop(cluster, nemeses, options, counts, done, log));
  }
  const network = cluster.network;
  if (network !== undefined) {
    loops.push(partitionLoop(cluster, network, options, counts, done, log));
  }
  await Promise.all(loops);
  return counts;
}

/**
 * The process faults: a minority of "fault slots", each repeatedly picking a running node and
 * either killing it (restart after a random delay) or freezing it (continue after a random
 * delay). Every random choice comes from one seeded source, in the order the slots make them.
 */
async function processLoop(
  cluster: ChaosCluster,
  nemeses: ReadonlySet<Nemesis>,
  options: ChaosOptions,
  counts: FaultCounts,
  done: () => boolean,
  log: (line: string) => void,
): Promise<void> {
  const random = new SeededRandom(options.seed);
  const slots = Math.floor((options.nodes - 1) / 2);
  const faultMsMax = options.faultMsMax ?? 3_000;
  const end = Date.now() + options.durationMs;
  const killShare = !nemeses.has('freeze') ? 1 : !nemeses.has('kill') ? 0 : 0.6;
  const slot = async () => {
    while (!done()) {
      await sleep(200 + random.intBelow(faultMsMax / 2));
      // Each slot has at most one node down, and there are only a minority of slots.
      const up = cluster.inState('up');
      if (done()) break;
      const victim = up[random.intBelow(up.length)]!;
      // Past the duration only kills are still owed.
      if (Date.now() >= end || random.chance(killShare)) {
        await cluster.kill(victim);
        const downMs = 100 + random.intBelow(faultMsMax);
        log(`kill node ${victim} for ${downMs} ms`);
        await sleep(downMs);
        await cluster.restart(victim);
        counts.kills++;
      } else {
        cluster.freeze(victim);
        const frozenMs = 100 + random.intBelow(faultMsMax / 2);
        log(`freeze node ${victim} for ${frozenMs} ms`);
        await sleep(frozenMs);
        cluster.thaw(victim);
        counts.freezes++;
      }
    }
  };
  await Promise.all(Array.from({ length: slots }, slot));
}

/**
 * The partition faults, one at a time from their own seeded source: after a healthy gap, one
 * of isolate / split / pair / one-way holds for a random time, then everything heals. Half of
 * them aim at the node that leads the most shards (the first node of the shuffled order), since
 * a partition that only cuts off followers costs nobody a leader.
 */
async function partitionLoop(
  cluster: ChaosCluster,
  network: ChaosNetwork,
  options: ChaosOptions,
  counts: FaultCounts,
  done: () => boolean,
  log: (line: string) => void,
): Promise<void> {
  const random = new SeededRandom(options.seed * 7 + 3);
  const faultMsMax = options.faultMsMax ?? 3_000;
  const ids = network.ids;
  while (!done()) {
    await sleep(300 + random.intBelow(faultMsMax));
    if (done()) break;
    const mode = random.chance(0.5) ? 'cut' : 'blackhole';
    const order = shuffled(ids, random);
    // Drawn whether or not a leader is known, so the seed alone fixes the sequence of draws.
    const aim = random.chance(0.5);
    const leader = cluster.busiestLeader();
    if (aim && leader !== undefined) {
      order.splice(order.indexOf(leader), 1);
      order.unshift(leader);
    }
    const [a, b] = order as [number, number];
    const roll = random.float();
    let what: string;
    if (roll < 0.3) {
      network.split([a], mode);
      what = `isolate ${mode}`;
      log(`partition: isolate node ${a} (${mode})`);
    } else if (roll < 0.5) {
      const minority = order.slice(0, Math.floor((ids.length - 1) / 2));
      network.split(minority, mode);
      what = `split ${mode}`;
      log(`partition: split [${minority.join(',')}] from the rest (${mode})`);
    } else if (roll < 0.75) {
      network.setLink(a, b, mode);
      network.setLink(b, a, mode);
      what = `pair ${mode}`;
      log(`partition: nodes ${a} and ${b} lose each other (${mode}); the others bridge them`);
    } else {
      network.setLink(a, b, 'blackhole');
      what = 'one-way blackhole';
      log(`partition: ${a} -> ${b} blackholed, ${b} -> ${a} still up`);
    }
    await sleep(300 + random.intBelow(2 * faultMsMax));
    network.heal();
    counts.partitions[what] = (counts.partitions[what] ?? 0) + 1;
  }
  network.heal();
}

/** `items` in a random order (Fisher-Yates). */
function shuffled<T>(items: readonly T[], random: SeededRandom): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = random.intBelow(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Waits until a write to every shard succeeds (each shard has a leader that commits). */
async function awaitWritable(db: RemoteStore): Promise<void> {
  const deadline = Date.now() + healMs;
  const pending = new Set(db.shardMap().shards.map((s) => s.id));
  for (let i = 0; pending.size > 0; i++) {
    const key = `heal-${i}`;
    const shard = db.shardOf(key);
    if (!pending.has(shard)) continue;
    for (;;) {
      try {
        await db.put(key, i);
        pending.delete(shard);
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(100);
      }
    }
  }
}

/**
 * Waits until, for every shard, all replicas report the same applied index twice in a row (a
 * follower learns the last commit index only with the leader's next message), or `convergeMs`
 * passed: then the offline comparison reports what still differs.
 */
async function awaitCaughtUp(
  cluster: ChaosCluster,
  replicas: Map<number, number[]>,
  log: (line: string) => void,
): Promise<void> {
  const started = Date.now();
  let last = '';
  for (;;) {
    const applied = await cluster.appliedIndexes(replicas);
    const seen = [...applied].map(([shard, by]) => `${shard}:${[...by.values()].join(',')}`);
    const same = [...applied].every(([shard, by]) => {
      const indexes = [...by.values()];
      return by.size === replicas.get(shard)!.length && indexes.every((i) => i === indexes[0]);
    });
    const now = seen.join(' ');
    if (same && now === last) return;
    if (Date.now() - started > convergeMs) {
      log(`replicas still apart after ${convergeMs} ms: ${now}`);
      return;
    }
    last = now;
    await sleep(convergePollMs);
  }
}

/** The checks after the load stopped: history, lost writes, replica convergence. */
async function checkRun(
  cluster: ChaosCluster,
  db: RemoteStore,
  recorder: HistoryRecorder,
  options: ChaosOptions,
  log: (line: string) => void,
): Promise<Omit<ChaosSummary, 'kills' | 'freezes' | 'partitions' | 'network'>> {
  const finals = new Map<string, Json | undefined>();
  for (const key of ownKeys((options.clients ?? 4) + (options.hastyClients ?? 2))) {
    const output = await recorder.record('final', { op: 'get', key }, async () => {
      const entry = await db.getEntry(key);
      return entry === undefined ? {} : { value: entry.value as Json, version: entry.version };
    });
    if (output.error !== undefined) throw new Error(`final read of ${key} failed: ${output.error}`);
    finals.set(key, output.value);
  }
  // The nodes stop before the history is checked: the search holds this process's event loop
  // for a while, and with it the link proxies, which would cut every node off from the others.
  const replicas = new Map(db.shardMap().shards.map((s) => [s.id, [...s.replicas]]));
  await awaitCaughtUp(cluster, replicas, log);
  const uncleanStops = await cluster.stopAll();
  const states = await cluster.readReplicas(replicas);
  const divergence = divergedShards(states);
  const ops = recorder.ops;
  if (options.historyFile !== undefined) writeFileSync(options.historyFile, formatHistory(ops));
  log(`checking a history of ${ops.length} operations`);
  const verdict = checkHistory(ops, { stepsMax: checkStepsMax });
  const lost = lostWrites(ops, finals);
  const counts = recorder.counts;
  const failures = verdict.failures.map(formatFailure);
  const ok =
    verdict.ok && lost.lost.length === 0 && divergence.length === 0 && uncleanStops.length === 0;
  return {
    seed: options.seed,
    nodes: options.nodes,
    ops: counts.ops,
    acked: counts.acked,
    unknown: counts.unknown,
    errors: counts.errors,
    codes: Object.fromEntries(counts.codes),
    linearizable: verdict.failures.length === 0,
    checkerTimeouts: verdict.timedOut.length,
    failures,
    ownKeysChecked: lost.checked,
    lostWrites: lost.lost,
    shardsConverged: states.size - divergence.length,
    divergence,
    uncleanStops,
    ok,
  };
}

/** Shards whose replicas differ in applied index or checksum, described. */
function divergedShards(states: Map<number, ReplicaState[]>): string[] {
  const diverged: string[] = [];
  for (const [shard, replicas] of states) {
    const first = replicas[0]!;
    const same = replicas.every(
      (r) => r.applied === first.applied && r.checksum === first.checksum,
    );
    if (same && replicas.length === 3) continue;
    const each = replicas.map((r) => `node ${r.node} applied ${r.applied} sum ${r.checksum}`);
    diverged.push(`shard ${shard}: ${each.join('; ')}`);
  }
  return diverged;
}

/** The summary as printed lines. */
export function formatSummary(s: ChaosSummary): string[] {
  const codes = Object.entries(s.codes).map(([code, n]) => `${code} ${n}`);
  const kinds = Object.entries(s.partitions)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([kind, n]) => `${kind} ${n}`);
  const lines = [
    `seed ${s.seed}, ${s.nodes} nodes: ${s.kills} kill/restart cycles, ${s.freezes} freezes, ` +
      `${sumOf(s.partitions)} partitions` +
      (kinds.length > 0 ? ` (${kinds.join(', ')})` : ''),
    `ops ${s.ops}: acked ${s.acked}, unknown ${s.unknown}, errors ${s.errors}` +
      (codes.length > 0 ? ` (${codes.join(', ')})` : ''),
    `linearizable: ${s.linearizable ? 'yes' : 'NO'}` +
      (s.checkerTimeouts > 0 ? ` (checker timed out on ${s.checkerTimeouts} partitions)` : ''),
    `acknowledged writes lost: ${s.lostWrites.length} of ${s.ownKeysChecked} keys checked`,
    `replicas converged: ${s.shardsConverged} shards` +
      (s.divergence.length > 0 ? `, ${s.divergence.length} DIVERGED` : ''),
  ];
  if (s.network !== undefined) {
    const n = s.network;
    lines.push(
      `links: ${n.accepted} connections proxied, ${n.refused} refused and ${n.reset} reset ` +
        `by cuts or heals, ${n.droppedBytes} bytes blackholed, ${n.forwardedBytes} passed`,
    );
  }
  if (s.uncleanStops.length > 0) lines.push(`unclean stops: nodes ${s.uncleanStops.join(', ')}`);
  lines.push(...s.failures, ...s.lostWrites, ...s.divergence);
  lines.push(s.ok ? 'PASS' : 'FAIL');
  return lines;
}
