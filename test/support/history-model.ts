/**
 * The sequential specification of Flotilla's key-value operations, as the linearizability search
 * needs it: operations compiled once into steps over a partition's keys, and an immutable model
 * state with a string identity for memoization.
 *
 * Versions (see history.ts) are modelled symbolically. A key's version is `known` (reported by
 * the write, or learnt by a later observation) or `unbound` (a write that did not report it), the
 * latter with the versions it is known not to be. Learning binds an unbound version to an integer
 * that no reporting write of the key claims and no other unbound write of the key was bound to,
 * which keeps versions unique per key without guessing them.
 */
import { assert } from '../../engine/assert.js';
import {
  type CasExpected,
  canonicalJson,
  type HistoryOp,
  type Json,
  type KeyStep,
} from './history.js';

/** A value in compiled form: its canonical text and, for numbers, the number. */
interface Value {
  readonly canon: string;
  readonly num: number | undefined;
}

type Version =
  | { readonly kind: 'none' }
  | { readonly kind: 'known'; readonly n: number }
  | { readonly kind: 'unbound'; readonly not: readonly number[] };

/** One key of the model. Invariant: a missing key (`value === null`) has version kind 'none'. */
interface Cell {
  readonly value: Value | null;
  readonly version: Version;
  /** Versions unbound writes of this key were bound to; none may be bound twice. */
  readonly bound: readonly number[];
  readonly id: string;
}

/** The state of a partition's keys; `id` is equal for equal states. */
export interface ModelState {
  readonly cells: readonly Cell[];
  readonly id: string;
}

type Condition =
  | { kind: 'value'; canon: string }
  | { kind: 'version'; n: number }
  | { kind: 'absent' };

/** What one step's output requires; undefined fields are unconstrained. */
interface StepOutput {
  /** null: the key was missing. */
  readonly value?: Value | null;
  readonly version?: number;
  readonly existed?: boolean;
}

interface Step {
  readonly kind: KeyStep['op'];
  readonly key: number;
  readonly value?: Value;
  readonly condition?: Condition;
  readonly by?: number;
  readonly out?: StepOutput;
}

/** How an operation ended, as far as the model is concerned. */
export type Outcome = 'applied' | 'aborted' | 'unknown';

/** An operation compiled for the model. */
export interface ModelOp {
  readonly steps: readonly Step[];
  readonly outcome: Outcome;
}

/** A partition's keys and the facts about them that hold for the whole history. */
export interface PartitionModel {
  /** Whether any operation mentions a version; if not, versions are not tracked at all. */
  readonly versioned: boolean;
  /** Local key index of each key. */
  readonly keyIndex: ReadonlyMap<string, number>;
  /** Per key: versions reported by writes (each belongs to exactly one write). */
  readonly claims: readonly ReadonlySet<number>[];
}

const missingCell: Cell = { value: null, version: { kind: 'none' }, bound: [], id: '\u0001' };

/** The state before any operation: every key missing. */
export function initialState(keys: number): ModelState {
  return makeState(new Array<Cell>(keys).fill(missingCell));
}

function makeState(cells: readonly Cell[]): ModelState {
  return { cells, id: cells.length === 1 ? cells[0]!.id : cells.map((c) => c.id).join('\u0000') };
}

function makeCell(value: Value | null, version: Version, bound: readonly number[]): Cell {
  let tag = '';
  if (version.kind === 'known') tag = `=${version.n}`;
  else if (version.kind === 'unbound') tag = `?${version.not.join(',')}`;
  const id = `${value === null ? '\u0001' : value.canon}\u0002${tag}\u0002${bound.join(',')}`;
  return { value, version, bound, id };
}

function compileValue(value: Json): Value {
  return { canon: canonicalJson(value), num: typeof value === 'number' ? value : undefined };
}

function compileCondition(expected: CasExpected): Condition {
  if ('absent' in expected) return { kind: 'absent' };
  if ('version' in expected) return { kind: 'version', n: expected.version };
  return { kind: 'value', canon: canonicalJson(expected.value) };
}

/**
 * Compiles `op` for `model`. A `pending` operation (cut off by a history prefix before it
 * returned) becomes unknown but keeps any version its write reported, since that fact about the
 * store holds whenever the write took effect.
 */
export function compileOp(op: HistoryOp, model: PartitionModel, pending: boolean): ModelOp {
  const requests: KeyStep[] = op.op === 'batch' ? op.ops : [op];
  const out = op.output;
  const outcome: Outcome =
    out.unknown === true || pending ? 'unknown' : out.ok === false ? 'aborted' : 'applied';
  const results = op.op === 'batch' ? out.results : [out];
  const steps = requests.map((request, i): Step => {
    const key = model.keyIndex.get(request.key);
    assert(key !== undefined, 'every key of a partition operation is in the partition');
    const result = results?.[i];
    const stepOut =
      result === undefined || out.unknown === true ? undefined : compileOutput(result, request.op);
    return {
      kind: request.op,
      key,
      value: 'value' in request ? compileValue(request.value) : undefined,
      condition: request.op === 'cas' ? compileCondition(request.expected) : undefined,
      by: request.op === 'incr' ? (request.by ?? 1) : undefined,
      out: outcome === 'unknown' ? versionOnly(stepOut, request.op) : stepOut,
    };
  });
  return { steps: shareReportedVersions(steps), outcome };
}

function isWrite(kind: KeyStep['op']): boolean {
  return kind === 'put' || kind === 'cas' || kind === 'incr';
}

/** One operation is one write: a version reported for one of its writes of a key is all's. */
function shareReportedVersions(steps: Step[]): Step[] {
  const reported = new Map<number, number>();
  for (const step of steps) {
    const version = step.out?.version;
    if (isWrite(step.kind) && version !== undefined && !reported.has(step.key)) {
      reported.set(step.key, version);
    }
  }
  return steps.map((step) => {
    const version = reported.get(step.key);
    if (!isWrite(step.kind) || version === undefined || step.out?.version !== undefined)
      return step;
    return { ...step, out: { ...step.out, version } };
  });
}

/** A get's absent value means a missing key; other kinds' outputs say nothing about values. */
function compileOutput(result: HistoryOp['output'], kind: KeyStep['op']): StepOutput {
  let value: Value | null | undefined;
  if ('value' in result) value = compileValue(result.value as Json);
  else if (kind === 'get') value = null;
  return {
    value,
    version: result.version,
    existed: result.existed,
  };
}

/** A pending write keeps only its reported version; a pending read constrains nothing. */
function versionOnly(out: StepOutput | undefined, kind: KeyStep['op']): StepOutput | undefined {
  if (out?.version === undefined || kind === 'get') return undefined;
  return { version: out.version };
}

/**
 * The state after `op` is linearized in `state`, or null if the model forbids it there. For an
 * unknown outcome only the "took effect" branch is returned: "never" is the search leaving the
 * operation out, which covers every branch in which the operation changes nothing.
 */
export function applyOp(model: PartitionModel, state: ModelState, op: ModelOp): ModelState | null {
  const cells = state.cells.slice();
  // The version of each key this operation wrote: later writes of the key in it share it.
  const written = new Map<number, Version>();
  const track = (key: number, wrote: boolean) => {
    const cell = cells[key]!;
    if (wrote || (written.has(key) && cell.value !== null)) written.set(key, cell.version);
  };
  for (let i = 0; i < op.steps.length; i++) {
    const step = op.steps[i]!;
    const cell = cells[step.key]!;
    if (step.kind === 'cas') {
      const held = conditionHolds(model, cell, step);
      // An aborted operation stops at its first failing condition, with no effect.
      if (held === 'no') return op.outcome === 'aborted' ? state : null;
      if (held === 'maybe') {
        if (op.outcome === 'aborted') {
          return abortOnUnbound(model, state, op, i, cell === state.cells[step.key]);
        }
        cells[step.key] = bind(cell, (step.condition as { n: number }).n);
        track(step.key, false);
      }
    }
    const next = applyStep(model, cells[step.key]!, step, written.get(step.key));
    if (next === null) return null;
    cells[step.key] = next;
    track(step.key, isWrite(step.kind));
  }
  // An aborted operation whose every condition held is impossible.
  return op.outcome === 'aborted' ? null : makeState(cells);
}

/**
 * An aborted operation met a cas-by-version against an unbound version: the condition may have
 * failed here (the version is not N) or held (and a later condition failed). When no later
 * condition exists and the key is untouched by earlier steps, failing here is the only branch,
 * and the state learns "not N"; otherwise the state is kept as is, which admits both branches.
 */
function abortOnUnbound(
  model: PartitionModel,
  state: ModelState,
  op: ModelOp,
  at: number,
  untouched: boolean,
): ModelState | null {
  const laterCondition = op.steps.slice(at + 1).some((s) => s.kind === 'cas');
  const step = op.steps[at]!;
  if (laterCondition || !untouched || !model.versioned) return state;
  const cells = state.cells.slice();
  cells[step.key] = exclude(cells[step.key]!, (step.condition as { n: number }).n);
  return makeState(cells);
}

type Holds = 'yes' | 'no' | 'maybe';

function conditionHolds(model: PartitionModel, cell: Cell, step: Step): Holds {
  const condition = step.condition!;
  if (condition.kind === 'absent') return cell.value === null ? 'yes' : 'no';
  if (cell.value === null) return 'no';
  if (condition.kind === 'value') return cell.value.canon === condition.canon ? 'yes' : 'no';
  return versionMatches(model, cell, step.key, condition.n);
}

function versionMatches(model: PartitionModel, cell: Cell, key: number, n: number): Holds {
  const version = cell.version;
  assert(version.kind !== 'none', 'a present key of a versioned partition has a version');
  if (version.kind === 'known') return version.n === n ? 'yes' : 'no';
  const free = !model.claims[key]!.has(n) && !cell.bound.includes(n) && !version.not.includes(n);
  return free ? 'maybe' : 'no';
}

function bind(cell: Cell, n: number): Cell {
  return makeCell(cell.value, { kind: 'known', n }, insertSorted(cell.bound, n));
}

function exclude(cell: Cell, n: number): Cell {
  assert(cell.version.kind === 'unbound', 'only an unbound version learns what it is not');
  return makeCell(
    cell.value,
    { kind: 'unbound', not: insertSorted(cell.version.not, n) },
    cell.bound,
  );
}

function insertSorted(list: readonly number[], n: number): number[] {
  return [...list, n].sort((a, b) => a - b);
}

/** One step's effect and output check on its key; null if the model forbids it. */
function applyStep(
  model: PartitionModel,
  cell: Cell,
  step: Step,
  inherited: Version | undefined,
): Cell | null {
  const out = step.out;
  switch (step.kind) {
    case 'get':
      return observe(model, cell, step.key, out);
    case 'delete':
      if (out?.existed !== undefined && out.existed !== (cell.value !== null)) return null;
      return cell.value === null ? cell : makeCell(null, { kind: 'none' }, cell.bound);
    case 'put':
    case 'cas':
      return write(model, cell, step.value!, out, inherited);
    case 'incr': {
      const current = cell.value === null ? 0 : cell.value.num;
      if (current === undefined) return null;
      const value = compileValue(current + step.by!);
      if (out?.value != null && out.value.canon !== value.canon) return null;
      return write(model, cell, value, out, inherited);
    }
  }
}

/** The cell after a write; `inherited` is the version of an earlier write of the same operation. */
function write(
  model: PartitionModel,
  cell: Cell,
  value: Value,
  out: StepOutput | undefined,
  inherited: Version | undefined,
): Cell | null {
  const reported = out?.version;
  let version: Version;
  if (inherited !== undefined && inherited.kind !== 'none') {
    if (reported !== undefined && !couldBe(inherited, reported)) return null;
    version = reported === undefined ? inherited : { kind: 'known', n: reported };
  } else if (reported !== undefined) {
    version = { kind: 'known', n: reported };
  } else {
    version = model.versioned ? { kind: 'unbound', not: [] } : { kind: 'none' };
  }
  return makeCell(value, version, cell.bound);
}

function couldBe(version: Version, n: number): boolean {
  if (version.kind === 'known') return version.n === n;
  return version.kind === 'unbound' && !version.not.includes(n);
}

/** A get's output against the cell, binding an unbound version the get reveals. */
function observe(model: PartitionModel, cell: Cell, key: number, out: StepOutput | undefined) {
  if (out === undefined) return cell;
  if (out.value === null) return cell.value === null ? cell : null;
  if (out.value === undefined) return cell;
  if (cell.value === null || cell.value.canon !== out.value.canon) return null;
  if (out.version === undefined) return cell;
  const matches = versionMatches(model, cell, key, out.version);
  if (matches === 'no') return null;
  return matches === 'maybe' ? bind(cell, out.version) : cell;
}
