/**
 * Linearizability checker for Flotilla key-value histories (format: history.ts).
 *
 * Linearizability is compositional (Herlihy & Wing): a history is linearizable iff each
 * independent object's sub-history is. An object here is a key, except that an atomic batch
 * binds its keys together, so keys are grouped with union-find over batches and each group
 * ("partition") is searched on its own with the WGL search (history-search.ts) over the model
 * (history-model.ts). A failing partition is minimized to the shortest failing prefix of events
 * (binary search: if a prefix cannot be linearized, neither can any longer one) and reported with
 * the longest partial linearization found. Every search has a step budget: a partition that
 * exceeds it is reported as timed out, never as a verdict.
 *
 * Cost: linear-ish in the history for bounded concurrency when outcomes are known. Timeouts are
 * what make it expensive, since each may have taken effect anywhere after its call: identical
 * timed-out operations (counter increments) are cheap, but many distinct timeouts on keys that a
 * batch joins into one partition, or on a key with ~20 concurrent clients, can exhaust the
 * budget. Refuting a history (proving a violation) explores everything before the violation.
 */
import { linearizabilityStepsMax } from '../../engine/limits.js';
import { type HistoryOp, type KeyStep, validateOp } from './history.js';
import {
  applyOp,
  compileOp,
  initialState,
  type ModelOp,
  type ModelState,
  type PartitionModel,
} from './history-model.js';
import { type SearchProblem, type SearchResult, searchLinearization } from './history-search.js';

export { describeOp, formatFailure } from './history-print.js';

/** How hard to look. */
export interface CheckOptions {
  /** Step budget of each search (default linearizabilityStepsMax). */
  stepsMax?: number;
  /** Shrink a failure to its shortest failing prefix (default true; costs a few more searches). */
  minimize?: boolean;
}

/** A partition that cannot be linearized. */
export interface NotLinearizable {
  kind: 'not-linearizable';
  /** The partition's keys. */
  keys: string[];
  /** The failing prefix holds the events up to this time; later returns are still pending. */
  cutTime: number;
  /** Whether the prefix is known to be the shortest failing one (false if minimizing timed out). */
  minimal: boolean;
  /** The partition's checked operations called by `cutTime`, in call order. */
  ops: HistoryOp[];
  /** The operations returning at `cutTime`: their outputs are what no order can explain. */
  culprits: HistoryOp[];
  /** The longest partial linearization found, in linearization order. */
  linearized: HistoryOp[];
  /** The operation that could not be placed after `linearized` before it returned. */
  stuck: HistoryOp | undefined;
}

/** Two writes of one key reported the same version, which the store must never do. */
export interface DuplicateVersion {
  kind: 'duplicate-version';
  keys: string[];
  key: string;
  version: number;
  ops: [HistoryOp, HistoryOp];
}

/** Why a partition failed. */
export type PartitionFailure = NotLinearizable | DuplicateVersion;

/** A partition whose search ran out of steps: no verdict. */
export interface PartitionTimeout {
  keys: string[];
  /** Checked operations in the partition. */
  ops: number;
  steps: number;
}

/** The verdict on a whole history. */
export interface CheckResult {
  /** True iff every partition was linearized (no failure and no timeout). */
  ok: boolean;
  /** Independent partitions searched. */
  partitions: number;
  /** Operations that constrain nothing and were skipped: definite errors, unknown-outcome reads. */
  ignored: number;
  failures: PartitionFailure[];
  timedOut: PartitionTimeout[];
}

/** Checks a history; throws HistoryFormatError on a malformed operation. */
export function checkHistory(ops: readonly HistoryOp[], options: CheckOptions = {}): CheckResult {
  ops.forEach((op, i) => {
    validateOp(op, i + 1);
  });
  const stepsMax = options.stepsMax ?? linearizabilityStepsMax;
  const checked = ops.filter((op) => !isIgnored(op));
  const partitions = partitionByKeys(checked);
  const failures: PartitionFailure[] = [];
  const timedOut: PartitionTimeout[] = [];
  for (const partition of partitions) {
    const duplicate = findDuplicateVersion(partition);
    if (duplicate !== undefined) {
      failures.push(duplicate);
      continue;
    }
    const verdict = checkPartition(partition, stepsMax, options.minimize ?? true);
    if (verdict.kind === 'timeout') {
      timedOut.push({ keys: partition.keys, ops: partition.ops.length, steps: verdict.steps });
    } else if (verdict.kind === 'fail') {
      failures.push(verdict.failure);
    }
  }
  return {
    ok: failures.length === 0 && timedOut.length === 0,
    partitions: partitions.length,
    ignored: ops.length - checked.length,
    failures,
    timedOut,
  };
}

function keysOf(op: HistoryOp): string[] {
  return op.op === 'batch' ? op.ops.map((s) => s.key) : [op.key];
}

function isRead(op: HistoryOp): boolean {
  return op.op === 'get' || (op.op === 'batch' && op.ops.every((s) => s.op === 'get'));
}

/** Definite errors had no effect, and an unknown-outcome read observed nothing. */
function isIgnored(op: HistoryOp): boolean {
  if (op.output.unknown === true) return isRead(op);
  return op.output.error !== undefined;
}

interface Partition {
  keys: string[];
  /** In call order. */
  ops: HistoryOp[];
  model: PartitionModel;
}

/** Groups operations into partitions of keys connected by batches (union-find). */
function partitionByKeys(ops: readonly HistoryOp[]): Partition[] {
  const parent = new Map<string, string>();
  const find = (key: string): string => {
    let root = key;
    while (parent.get(root) !== root) root = parent.get(root)!;
    for (let k = key; k !== root; ) {
      const up = parent.get(k)!;
      parent.set(k, root);
      k = up;
    }
    return root;
  };
  for (const op of ops) {
    const keys = keysOf(op);
    for (const key of keys) if (!parent.has(key)) parent.set(key, key);
    for (const key of keys.slice(1)) parent.set(find(key), find(keys[0]!));
  }
  const groups = new Map<string, { keys: string[]; ops: HistoryOp[] }>();
  for (const key of parent.keys()) {
    const root = find(key);
    const group = groups.get(root) ?? { keys: [], ops: [] };
    group.keys.push(key);
    groups.set(root, group);
  }
  for (const op of ops) groups.get(find(keysOf(op)[0]!))!.ops.push(op);
  return [...groups.values()].map((g) => {
    g.ops.sort((a, b) => a.call - b.call);
    return { keys: g.keys, ops: g.ops, model: partitionModel(g.keys, g.ops) };
  });
}

/** Each write step of an operation that reported a version, as [key, version]. */
function reportedVersions(op: HistoryOp): [string, number][] {
  const out = op.output;
  if (out.unknown === true || out.error !== undefined || out.ok === false) return [];
  const steps: KeyStep[] = op.op === 'batch' ? op.ops : [op];
  const results = op.op === 'batch' ? (out.results ?? []) : [out];
  const found: [string, number][] = [];
  results.forEach((result, i) => {
    const step = steps[i]!;
    if (step.op !== 'get' && result.version !== undefined) found.push([step.key, result.version]);
  });
  return found;
}

function mentionsVersion(op: HistoryOp): boolean {
  const steps: KeyStep[] = op.op === 'batch' ? op.ops : [op];
  const outputs = [op.output, ...(op.output.results ?? [])];
  return (
    steps.some((s) => s.op === 'cas' && 'version' in s.expected) ||
    outputs.some((o) => o.version !== undefined)
  );
}

function partitionModel(keys: string[], ops: readonly HistoryOp[]): PartitionModel {
  const keyIndex = new Map(keys.map((key, i) => [key, i]));
  const claims = keys.map(() => new Set<number>());
  for (const op of ops) {
    for (const [key, version] of reportedVersions(op)) claims[keyIndex.get(key)!]!.add(version);
  }
  return { versioned: ops.some(mentionsVersion), keyIndex, claims };
}

function findDuplicateVersion(partition: Partition): DuplicateVersion | undefined {
  const owner = new Map<string, HistoryOp>();
  for (const op of partition.ops) {
    for (const [key, version] of reportedVersions(op)) {
      const id = JSON.stringify([key, version]);
      const previous = owner.get(id);
      if (previous !== undefined && previous !== op) {
        return {
          kind: 'duplicate-version',
          keys: partition.keys,
          key,
          version,
          ops: [previous, op],
        };
      }
      owner.set(id, op);
    }
  }
  return undefined;
}

/** The search problem of the partition's events up to `cut`, and which operations it holds. */
function prefixProblem(partition: Partition, cut: number) {
  const members: HistoryOp[] = [];
  const compiled: { modelOp: ModelOp; call: number; ret: number; symmetry: number }[] = [];
  const classes = new Map<string, number>();
  for (const op of partition.ops) {
    if (op.call > cut) break;
    const pending = op.output.unknown !== true && op.return > cut;
    if (pending && isRead(op)) continue;
    const modelOp = compileOp(op, partition.model, pending);
    members.push(op);
    const unknown = modelOp.outcome === 'unknown';
    // Unknown outcomes with identical steps are interchangeable (see SearchOp.symmetry).
    const effect = unknown ? JSON.stringify(modelOp.steps) : '';
    const symmetry = unknown ? (classes.get(effect) ?? classes.size) : -1;
    if (unknown) classes.set(effect, symmetry);
    compiled.push({
      modelOp,
      call: op.call,
      ret: unknown ? Number.POSITIVE_INFINITY : op.return,
      symmetry,
    });
  }
  const model = partition.model;
  const problem: SearchProblem<ModelState> = {
    ops: compiled,
    init: initialState(partition.keys.length),
    step: (state, i) => applyOp(model, state, compiled[i]!.modelOp),
    stateKey: (state) => state.id,
  };
  return { problem, members };
}

type PartitionVerdict =
  | { kind: 'ok' }
  | { kind: 'timeout'; steps: number }
  | { kind: 'fail'; failure: NotLinearizable };

function checkPartition(partition: Partition, stepsMax: number, minimize: boolean) {
  const full = prefixProblem(partition, Number.POSITIVE_INFINITY);
  const result = searchLinearization(full.problem, stepsMax);
  if (result.kind === 'ok') return { kind: 'ok' } satisfies PartitionVerdict;
  if (result.kind === 'timeout') return { kind: 'timeout', steps: result.steps } as const;
  const cuts = [...new Set(partition.ops.map(definiteReturn).filter(Number.isFinite))];
  cuts.sort((a, b) => a - b);
  const whole: FailingPrefix = {
    cut: cuts[cuts.length - 1]!,
    minimal: false,
    members: full.members,
    result,
  };
  const failing = minimize ? shortestFailingPrefix(partition, cuts, stepsMax, whole) : whole;
  return { kind: 'fail', failure: describeFailure(partition, failing) } satisfies PartitionVerdict;
}

function definiteReturn(op: HistoryOp): number {
  return op.output.unknown === true ? Number.POSITIVE_INFINITY : op.return;
}

interface FailingPrefix {
  cut: number;
  minimal: boolean;
  members: HistoryOp[];
  result: Extract<SearchResult, { kind: 'fail' }>;
}

/**
 * Binary search over the cut times (sorted returns of known-outcome operations) for the shortest
 * failing prefix. The whole history fails, so the last cut does; a prefix whose search times out
 * is treated as passing, which keeps the answer failing but perhaps not minimal.
 */
function shortestFailingPrefix(
  partition: Partition,
  cuts: readonly number[],
  stepsMax: number,
  whole: FailingPrefix,
): FailingPrefix {
  let lo = 0;
  let hi = cuts.length - 1;
  let minimal = true;
  let found: FailingPrefix | undefined;
  const attempt = (i: number): boolean => {
    const prefix = prefixProblem(partition, cuts[i]!);
    const result = searchLinearization(prefix.problem, stepsMax);
    if (result.kind === 'timeout') minimal = false;
    if (result.kind !== 'fail') return false;
    found = { cut: cuts[i]!, minimal: true, members: prefix.members, result };
    return true;
  };
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (attempt(mid)) hi = mid;
    else lo = mid + 1;
  }
  if (found?.cut !== cuts[hi] && !attempt(hi)) return whole;
  return { ...found!, minimal };
}

function describeFailure(partition: Partition, failing: FailingPrefix): NotLinearizable {
  const { cut, minimal, members, result } = failing;
  return {
    kind: 'not-linearizable',
    keys: partition.keys,
    cutTime: cut,
    minimal,
    ops: members,
    culprits: members.filter((op) => definiteReturn(op) === cut),
    linearized: result.longest.map((i) => members[i]!),
    stuck: result.stuck >= 0 ? members[result.stuck] : undefined,
  };
}
