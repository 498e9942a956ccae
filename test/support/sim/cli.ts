/**
 * The simulator's command line (`npm run sim -- ...`):
 *
 *   --seeds N        run seeds first..first+N-1 (default 100), stop at the first failure
 *   --first S        first seed of --seeds (default 1)
 *   --seed S         run one seed (also: SEED=S in the environment) and print its trace
 *   --nodes n --shards m --ops k --clients c   pin the cluster and workload size
 *   --profile P      pin the profile (mixed, leader-churn, stale-leader, reconfig)
 *   --plant BUG      plant a Raft bug: commitByCountingPreviousTerm or readWithoutQuorum
 *   --keep-going     run every seed even after failures
 *   --history FILE   write the client history (JSON lines, test/support/history.ts) of the
 *                    failing run, or of the last run when none failed
 *
 * A failure prints the seed, the run's shape, what broke and the last events of its trace, and
 * the command that replays it. Exit status: 0 all passed, 1 a seed failed, 2 bad usage.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { RaftUnsafe } from '../../../engine/raft/ready.js';
import { formatHistory } from '../history.js';
import { describeOptions, optionsForSeed, type SimOverrides, type SimProfile } from './options.js';
import { runSeed, type SimResult } from './run.js';

const usage =
  'usage: sim [--seeds N] [--first S] [--seed S] [--nodes n] [--shards m] [--ops k] ' +
  '[--clients c] [--profile P] [--plant BUG] [--keep-going] [--history FILE]';

/** Trace lines printed for a failure. */
const failureTraceLines = 40;

const plants: Record<string, keyof RaftUnsafe> = {
  commitByCountingPreviousTerm: 'commitByCountingPreviousTerm',
  readWithoutQuorum: 'readWithoutQuorum',
};
const profileNames: readonly SimProfile[] = ['mixed', 'leader-churn', 'stale-leader', 'reconfig'];

interface Plan {
  seeds: number[];
  single: boolean;
  keepGoing: boolean;
  overrides: SimOverrides;
  history: string | undefined;
  /** The flags that shape a run, repeated in the replay command. */
  shapeArgs: string[];
}

function integer(text: string | undefined, name: string, min: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min)
    throw new Error(`--${name} must be an integer >= ${min}`);
  return n;
}

function plan(args: string[], env: NodeJS.ProcessEnv): Plan {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      seeds: { type: 'string' },
      first: { type: 'string' },
      seed: { type: 'string' },
      nodes: { type: 'string' },
      shards: { type: 'string' },
      ops: { type: 'string' },
      clients: { type: 'string' },
      profile: { type: 'string' },
      plant: { type: 'string' },
      'keep-going': { type: 'boolean' },
      history: { type: 'string' },
    },
  });
  if (positionals.length > 0) throw new Error(`unexpected argument ${positionals[0]}`);
  const overrides: SimOverrides = {};
  const shapeArgs: string[] = [];
  const nodes = integer(values.nodes, 'nodes', 3);
  if (nodes !== undefined && nodes > 5) throw new Error('--nodes must be 3..5');
  for (const [name, value] of [
    ['nodes', nodes],
    ['shards', integer(values.shards, 'shards', 1)],
    ['ops', integer(values.ops, 'ops', 0)],
    ['clients', integer(values.clients, 'clients', 1)],
  ] as const) {
    if (value === undefined) continue;
    overrides[name] = value;
    shapeArgs.push(`--${name} ${value}`);
  }
  if (values.profile !== undefined) {
    if (!profileNames.includes(values.profile as SimProfile)) {
      throw new Error(`--profile must be one of ${profileNames.join(', ')}`);
    }
    overrides.profile = values.profile as SimProfile;
    shapeArgs.push(`--profile ${values.profile}`);
  }
  if (values.plant !== undefined) {
    const bug = plants[values.plant];
    if (bug === undefined)
      throw new Error(`--plant must be one of ${Object.keys(plants).join(', ')}`);
    overrides.unsafe = { [bug]: true };
    shapeArgs.push(`--plant ${values.plant}`);
  }
  const one = integer(values.seed ?? env.SEED, 'seed', 0);
  const count = integer(values.seeds, 'seeds', 1) ?? 100;
  const first = integer(values.first, 'first', 0) ?? 1;
  const seeds = one !== undefined ? [one] : Array.from({ length: count }, (_, k) => first + k);
  return {
    seeds,
    single: one !== undefined,
    keepGoing: values['keep-going'] === true,
    overrides,
    history: values.history,
    shapeArgs,
  };
}

/** The lines that report a failed run: what broke, the run's shape, its last events, replay. */
export function failureReport(
  result: SimResult,
  shapeArgs: string[],
  traceLines: number,
): string[] {
  const { options } = result;
  const shape = shapeArgs.length > 0 ? ` ${shapeArgs.join(' ')}` : '';
  return [
    `SEED ${options.seed} FAILED: ${result.failure?.message}`,
    describeOptions(options),
    `trace ${result.digest}, last events:`,
    ...result.trace.slice(-traceLines),
    `replay: npm run sim -- --seed ${options.seed}${shape}`,
  ];
}

function report(result: SimResult, p: Plan, print: (line: string) => void): void {
  const { options, stats } = result;
  if (!result.ok) {
    print('');
    const lines = p.single ? result.trace.length : failureTraceLines;
    for (const line of failureReport(result, p.shapeArgs, lines)) print(line);
    return;
  }
  if (p.single) {
    print(describeOptions(options));
    for (const line of result.trace) print(line);
  }
  print(
    `seed ${options.seed} ok: ${stats.ops} ops (${stats.unknown} unknown), ${stats.faults} ` +
      `faults, ${stats.snapshotsInstalled} snapshots installed, ` +
      `${(stats.simMs / 1000).toFixed(1)} s simulated, trace ${result.digest}`,
  );
}

/** Runs the command line; resolves with the exit status. */
export async function runSimCli(
  args: string[],
  print: (line: string) => void,
  env: NodeJS.ProcessEnv = {},
): Promise<number> {
  let p: Plan;
  try {
    p = plan(args, env);
  } catch (err) {
    print(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  let failed = 0;
  let kept: SimResult | undefined;
  const started = performance.now();
  for (const seed of p.seeds) {
    const result = await runSeed(optionsForSeed(seed, p.overrides));
    if (kept === undefined || kept.ok) kept = result;
    if (!p.single && result.ok && (seed - p.seeds[0]! + 1) % 50 === 0) {
      print(`${seed - p.seeds[0]! + 1} seeds passed`);
    }
    if (p.single || !result.ok) report(result, p, print);
    if (!result.ok) {
      failed++;
      if (!p.keepGoing) break;
    }
  }
  if (p.history !== undefined && kept !== undefined) {
    writeFileSync(p.history, formatHistory(kept.history));
    print(`history of seed ${kept.options.seed} written to ${p.history}`);
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (!p.single) print(`${failed === 0 ? 'all passed' : `${failed} failed`} (${seconds} s)`);
  return failed === 0 ? 0 : 1;
}
