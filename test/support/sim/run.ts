/**
 * One seeded run of the cluster simulator, start to verdict:
 *
 * 1. start every node; wait for every shard to elect a leader; each shard takes its hash range;
 * 2. chaos: the clients run their operations while the nemesis injects faults;
 * 3. heal: every link back, the network calm, every node up, the replica move under way done;
 * 4. liveness: every shard elects a leader and takes a new write, and its replicas converge to
 *    the same applied index, each within a bound of simulated time;
 * 5. final reads of every key, then the end checks: logs, checksums, exactly-once, no lost
 *    write, and linearizability of the whole client history.
 *
 * Safety checks also run during the run (see checks.ts); the first failure ends it.
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededRandom } from '../../../engine/random.js';
import type { HistoryOp } from '../history.js';
import { checkHistory, formatFailure } from '../linearizability.js';
import { attemptTimeoutMs, opDeadlineMs, retryPauseMsMax } from './client.js';
import { SimCluster } from './cluster.js';
import { type FailureKind, SimFailure } from './failure.js';
import { Nemesis } from './nemesis.js';
import { describeError } from './node.js';
import type { SimOptions } from './options.js';
import { thinkMsMax, Workload } from './workload.js';

/** Simulated time allowed for a phase of the run, in ms. */
export const phaseLimitMs = {
  /** Every shard elects its first leader and takes its range. */
  startup: 30_000,
  /** After healing: every node up, every shard led, probed and converged. */
  recovery: 30_000,
  /** Every key read once more. */
  finalReads: 120_000,
} as const;

/**
 * The longest the chaos phase can take: every operation ends by its deadline (plus one attempt
 * and a retry pause), after at most a pause, and clients draw operations from one pool.
 */
function chaosLimitMs(o: SimOptions): number {
  const perOp = opDeadlineMs + attemptTimeoutMs + retryPauseMsMax + thinkMsMax;
  return (Math.ceil(o.ops / o.clients) + 1) * perOp;
}

/** Simulated time between two checks of every replica's log and state checksum. */
export const deepCheckEveryMs = 1_000;

/** Trace lines a result keeps. */
const traceTailLines = 400;

/** What one run did, and its verdict. */
export interface SimResult {
  options: SimOptions;
  ok: boolean;
  failure?: { kind: FailureKind; message: string };
  /** Digest of every traced event: equal for two runs of one seed. */
  digest: string;
  /** The last events. */
  trace: string[];
  history: HistoryOp[];
  stats: {
    simMs: number;
    steps: number;
    callbacks: number;
    ops: number;
    unknown: number;
    retries: number;
    faults: number;
    logChecks: number;
    /** Snapshots installed by followers that fell behind a compacted log or joined a shard. */
    snapshotsInstalled: number;
    /** Replica moves finished and leadership transfers completed. */
    moves: number;
    transfers: number;
  };
}

/** Where the LMDB directories of runs go: tmpfs when the machine has one. */
export function simTempRoot(): string {
  const shm = '/dev/shm';
  try {
    mkdirSync(join(shm, 'flotilla-sim'), { recursive: true });
    return join(shm, 'flotilla-sim');
  } catch {
    return tmpdir();
  }
}

/** Runs `promise` to completion under the driver; undefined if `limitMs` passed first. */
async function drive<T>(cluster: SimCluster, promise: Promise<T>, limitMs: number) {
  let result: { value: T } | undefined;
  promise.then(
    (value) => {
      result = { value };
    },
    (err: unknown) => cluster.checker.fail('exception', describeError(err)),
  );
  await cluster.runUntil(() => result !== undefined, limitMs);
  return result?.value;
}

function demand(condition: boolean, kind: FailureKind, message: string): void {
  if (!condition) throw new SimFailure(kind, message);
}

/** Every shard has a leader that every live replica follows. */
function allLed(cluster: SimCluster): boolean {
  return cluster.shardIds().every((shard) => {
    const leader = cluster.leaderOf(shard);
    if (leader === 0) return false;
    return cluster.replicasOf(shard).every((id) => {
      const host = cluster.node(id).host;
      return host === undefined || host.leaderOf(shard) === leader;
    });
  });
}

/** Every replica of every shard is up and has applied the same index. */
function converged(cluster: SimCluster): boolean {
  return cluster.shardIds().every((shard) => {
    const applied = cluster
      .replicasOf(shard)
      .map((id) => cluster.node(id).state?.appliedIndex(shard));
    return applied.every((a) => a !== undefined && a === applied[0]);
  });
}

/** One line per replica: role, term, indexes — what a liveness failure needs to be read. */
function describeShards(cluster: SimCluster): string {
  const lines: string[] = [];
  for (const shard of cluster.shardIds()) {
    for (const id of cluster.replicasOf(shard)) {
      const node = cluster.node(id);
      const host = node.host;
      if (host === undefined || node.log === undefined) {
        lines.push(`s${shard} n${id}: ${node.status}`);
        continue;
      }
      const st = host.status(shard);
      const progress = st.progress.map((p) => `${p.id}:${p.state}/${p.match}`).join(' ');
      lines.push(
        `s${shard} n${id}: ${st.role} t${st.term} leader ${st.leader} commit ${st.commit} ` +
          `applied ${node.state?.appliedIndex(shard)} log ${node.log.firstIndex(shard)}..` +
          `${node.log.lastIndex(shard)} ${progress}`,
      );
    }
  }
  return lines.join('\n');
}

/** The end state in one line (it enters the digest): per shard its applied index and
 *  checksum, and the network's counters. */
function finalSummary(cluster: SimCluster): string {
  const shards = cluster.shardIds().map((shard) => {
    const state = cluster.node(cluster.replicasOf(shard)[0]!).state!;
    return `s${shard}@${state.appliedIndex(shard)}:${state.checksum(shard).toString(16)}`;
  });
  const n = cluster.network.stats();
  return (
    `final ${shards.join(' ')}; frames sent ${n.framesSent}, delivered ${n.framesDelivered}, ` +
    `dropped ${n.framesDropped}, duplicated ${n.framesDuplicated}`
  );
}

async function phases(cluster: SimCluster, workload: Workload, nemesis: Nemesis): Promise<void> {
  for (const node of cluster.nodes) node.start();
  cluster.harness.every(deepCheckEveryMs, () => {
    cluster.atQuiescence(() => cluster.checker.checkLogs(cluster.nodes));
  });
  const led = await cluster.runUntil(() => allLed(cluster), phaseLimitMs.startup);
  demand(led, 'liveness', `no leader for every shard at startup\n${describeShards(cluster)}`);
  const ranged = await drive(cluster, workload.bootstrap(), phaseLimitMs.startup);
  demand(ranged === true, 'liveness', 'the shards did not take their hash ranges');
  cluster.trace.add('chaos starts');
  nemesis.start();
  workload.start();
  const finished = await cluster.runUntil(() => workload.done, chaosLimitMs(cluster.options));
  demand(
    finished,
    'exception',
    'the clients did not finish although every operation has a deadline',
  );
  nemesis.stop();
  nemesis.heal();
  const recovery = phaseLimitMs.recovery;
  const up = await cluster.runUntil(() => cluster.nodes.every((n) => n.status === 'up'), recovery);
  demand(up, 'liveness', 'a node did not come back up');
  const moved = await cluster.runUntil(() => nemesis.reconfig.idle, recovery);
  demand(
    moved,
    'liveness',
    `a replica move did not finish after healing\n${describeShards(cluster)}`,
  );
  const ledAgain = await cluster.runUntil(() => allLed(cluster), recovery);
  demand(
    ledAgain,
    'liveness',
    `no leader for every shard after healing\n${describeShards(cluster)}`,
  );
  const probed = await drive(cluster, workload.probe(), recovery);
  demand(
    probed === true,
    'liveness',
    `a shard took no write after healing\n${describeShards(cluster)}`,
  );
  const same = await cluster.runUntil(() => converged(cluster), recovery);
  demand(same, 'liveness', `replicas did not converge after healing\n${describeShards(cluster)}`);
  const read = await drive(cluster, workload.finalReads(), phaseLimitMs.finalReads);
  demand(read === true, 'liveness', 'a final read got no answer after healing');
  const still = await cluster.runUntil(() => converged(cluster), recovery);
  demand(
    still,
    'liveness',
    `replicas did not converge after the reads\n${describeShards(cluster)}`,
  );
  cluster.trace.add(finalSummary(cluster));
  endChecks(cluster, workload);
}

/** The live replica of `shard` whose log has the highest commit index. */
function mostCommitted(cluster: SimCluster, shard: number) {
  const live = cluster.replicasOf(shard).map((id) => cluster.node(id));
  const commit = (n: (typeof live)[number]) => n.log?.hardState(shard).commit ?? -1;
  return live.reduce((best, n) => (commit(n) > commit(best) ? n : best));
}

function endChecks(cluster: SimCluster, workload: Workload): void {
  const { checker } = cluster;
  checker.checkLogs(cluster.nodes);
  for (const shard of cluster.shardIds()) {
    checker.checkChecksums(cluster.nodes, shard, true);
    checker.checkWrites(mostCommitted(cluster, shard), shard);
  }
  if (checker.failure !== undefined) throw checker.failure;
  const verdict = checkHistory(workload.history.ops);
  if (verdict.failures.length > 0) {
    throw new SimFailure('linearizability', formatFailure(verdict.failures[0]!));
  }
  if (verdict.timedOut.length > 0) {
    const t = verdict.timedOut[0]!;
    throw new SimFailure(
      'linearizability',
      `inconclusive: the search over keys [${t.keys}] (${t.ops} ops) ran out of steps`,
    );
  }
}

/** Runs one seed; see the module comment. Never throws: the verdict is in the result. */
export async function runSeed(options: SimOptions, root = simTempRoot()): Promise<SimResult> {
  const random = new SeededRandom(options.seed);
  const dir = mkdtempSync(join(root, `seed-${options.seed}-`));
  const cluster = new SimCluster(options, random, dir);
  const workload = new Workload(cluster, new SeededRandom(random.nextU32()));
  const nemesis = new Nemesis(cluster, new SeededRandom(random.nextU32()));
  const onRejection = (reason: unknown) => {
    cluster.checker.fail('exception', `unhandled rejection: ${describeError(reason)}`);
  };
  process.on('unhandledRejection', onRejection);
  let failure: SimResult['failure'];
  try {
    await phases(cluster, workload, nemesis);
  } catch (err) {
    const f = err instanceof SimFailure ? err : cluster.checker.failure;
    failure =
      f !== undefined
        ? { kind: f.kind, message: f.message }
        : {
            kind: 'exception',
            message: err instanceof Error ? (err.stack ?? err.message) : String(err),
          };
    cluster.trace.add(`verdict: ${failure.kind}`);
  } finally {
    process.off('unhandledRejection', onRejection);
    nemesis.reconfig.stop();
    await cluster.destroy();
  }
  const ops = workload.history.ops;
  const result: SimResult = {
    options,
    ok: failure === undefined,
    digest: cluster.trace.digest(),
    trace: cluster.trace.tail(traceTailLines),
    history: ops,
    stats: {
      simMs: cluster.clock.now(),
      steps: cluster.steps,
      callbacks: cluster.clock.callbacks,
      ops: ops.length,
      unknown: ops.filter((op) => op.output.unknown === true).length,
      retries: workload.retries,
      faults: nemesis.actions,
      logChecks: cluster.checker.logChecks,
      snapshotsInstalled: cluster.nodes.reduce((sum, n) => sum + n.snapshots.installed, 0),
      moves: nemesis.reconfig.stats.moves,
      transfers: nemesis.reconfig.stats.transfers,
    },
  };
  if (failure !== undefined) result.failure = failure;
  return result;
}
