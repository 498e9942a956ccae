/**
 * Client histories of a Flotilla key-value store: the format the simulator and chaos runs record
 * and the linearizability checker (linearizability.ts) reads.
 *
 * ## Format: JSON lines, one operation per line
 *
 * ```
 * { "clientId": "c1", "op": "put", "key": "k", "value": 7,
 *   "output": { "ok": true, "version": 12 }, "call": 100, "return": 130 }
 * ```
 *
 * A history starts from an empty store: every key is missing before its first write.
 *
 * Common fields: `clientId` (string or number, informational only: one client may have several
 * operations in flight), `op`, `output`, `call` and `return` (safe integers, `call < return`, in
 * any consistent unit). Operation A precedes B in real time iff `A.return < B.call`; equal times
 * count as concurrent. An optional `meta` field (any JSON) is carried along and ignored.
 *
 * Operations (values are any JSON and are compared by canonical JSON: object keys sorted):
 * - `get`    `key` → `{ value?, version? }`; no `value` means the key is missing. `version` may
 *            only accompany a `value`.
 * - `put`    `key`, `value` → `{ ok: true, version? }`.
 * - `delete` `key` → `{ ok: true, existed? }`; `existed` says whether the key was present.
 *            Deleting a missing key changes nothing.
 * - `cas`    `key`, `expected`, `value` → `{ ok, version? }`; `ok` says whether the condition held
 *            (and the write happened). `expected` is exactly one of `{ value: V }` (current value
 *            equals V), `{ version: N }` (the key exists and its version is N) or
 *            `{ absent: true }` (the key is missing).
 * - `incr`   `key`, `by?` (safe integer, default 1) → `{ value: N, version? }`, the new value. A
 *            missing key counts as 0; incrementing a non-number never succeeds.
 * - `batch`  `ops: [{ op, key, value?, expected?, by? }, …]` (no top-level `key`) →
 *            `{ ok: true, results? }` or `{ ok: false }`. The steps run in order, atomically, each
 *            seeing the earlier steps' effects. `ok: false` means some `cas` step's condition
 *            failed and the whole batch had no effect. `results`, if present, has one output per
 *            step, shaped as that step's single-operation output (a cas step's is `{ ok: true }`).
 *
 * Outcomes other than a result:
 * - `{ unknown: true, error? }` — the outcome is unknown (a timeout): the operation took effect
 *   exactly once at some point after `call` — possibly after `return` — or never. Its `return`
 *   is informational (e.g. the end of the history) and never orders it before another operation.
 * - `{ error: CODE }` — the store reported that the operation definitely had no effect. Such
 *   operations carry no information and the checker ignores them.
 *
 * ## Versions
 *
 * Every successful write gives its key a new version, an integer the store chooses (the Raft
 * index of the write). The checker treats versions as opaque names with one rule: the store never
 * gives two writes of the same key the same version (cas-by-version relies on it). A batch is one
 * write: all its writes of one key share one version, which later steps of the batch see. A
 * write whose output reports its version fixes it; a write that does not (no `version`, or an
 * unknown outcome) has a version the checker learns only when a later `get` or `cas` observes it.
 * Histories that never mention versions are checked on values alone.
 */
import { FlotillaError } from '../../engine/errors.js';

/** A JSON value, as stored under a key. */
export type Json = null | boolean | number | string | Json[] | { [field: string]: Json };

/** The condition of a cas: exactly one of the three fields. */
export type CasExpected = { value: Json } | { version: number } | { absent: true };

/** A single-key operation, as a standalone operation or as one step of a batch. */
export type KeyStep =
  | { op: 'get'; key: string }
  | { op: 'put'; key: string; value: Json }
  | { op: 'delete'; key: string }
  | { op: 'cas'; key: string; expected: CasExpected; value: Json }
  | { op: 'incr'; key: string; by?: number };

/** An atomic multi-key operation. */
export interface BatchStep {
  op: 'batch';
  ops: KeyStep[];
}

/** What the client saw; see the module comment for which fields each operation uses. */
export interface OpOutput {
  /** The outcome is unknown: the operation may have taken effect once, at any time, or never. */
  unknown?: true;
  /** A definite failure with no effect (or, with `unknown`, the code of the timeout). */
  error?: string;
  /** put/delete: true; cas: whether the condition held; batch: whether it applied. */
  ok?: boolean;
  /** get: the value read (absent = missing key); incr: the new value. */
  value?: Json;
  /** The key's version after a write, or as read. */
  version?: number;
  /** delete: whether the key existed. */
  existed?: boolean;
  /** batch with `ok: true`: one output per step. */
  results?: OpOutput[];
}

/** One operation of a history: what was asked, what was seen, and when. */
export type HistoryOp = (KeyStep | BatchStep) & {
  clientId: string | number;
  output: OpOutput;
  call: number;
  return: number;
  meta?: Json;
};

/** A malformed history line (or array element); `line` is 1-based. */
export class HistoryFormatError extends FlotillaError {
  /** The line of parseHistory's input, or the 1-based position in an array of operations. */
  readonly line: number;

  constructor(line: number, detail: string) {
    super('INVALID_ARGUMENT', `history line ${line}: ${detail}`);
    this.name = 'HistoryFormatError';
    this.line = line;
  }
}

/** JSON with object keys sorted, so equal values have equal text. */
export function canonicalJson(value: Json): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const fields = Object.keys(value).sort();
  return `{${fields.map((f) => `${JSON.stringify(f)}:${canonicalJson(value[f]!)}`).join(',')}}`;
}

/** Parses JSON lines (blank lines allowed) into validated operations. */
export function parseHistory(text: string): HistoryOp[] {
  const ops: HistoryOp[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (err) {
      throw new HistoryFormatError(i + 1, `not JSON (${(err as Error).message})`);
    }
    ops.push(validateOp(raw, i + 1));
  }
  return ops;
}

/** Writes operations as JSON lines with a fixed field order; parseHistory reads them back. */
export function formatHistory(ops: readonly HistoryOp[]): string {
  return ops.map((op) => `${JSON.stringify(inFieldOrder(op))}\n`).join('');
}

const fieldOrder = ['clientId', 'op', 'key', 'expected', 'value', 'by', 'ops', 'output', 'call'];

/** A copy of `op` whose top-level fields come in `fieldOrder`, then `return` and `meta`. */
function inFieldOrder(op: HistoryOp): Record<string, unknown> {
  const source = op as unknown as Record<string, unknown>;
  const copy: Record<string, unknown> = {};
  for (const field of [...fieldOrder, 'return', 'meta']) {
    if (source[field] !== undefined) copy[field] = source[field];
  }
  return copy;
}

/**
 * Checks that `raw` is a well-formed operation and returns it typed. `line` names it in errors.
 * Unknown fields are refused so that a misspelt field cannot silently weaken the check.
 */
export function validateOp(raw: unknown, line: number): HistoryOp {
  const where = (detail: string): never => {
    throw new HistoryFormatError(line, detail);
  };
  const op = asRecord(raw, 'operation', where);
  only(op, ['clientId', 'op', 'key', 'value', 'expected', 'by', 'ops'], where, commonFields);
  if (typeof op.clientId !== 'string' && typeof op.clientId !== 'number') {
    where('clientId must be a string or a number');
  }
  const call = op.call;
  const ret = op.return;
  if (!Number.isSafeInteger(call)) where('call must be a safe integer');
  if (!Number.isSafeInteger(ret)) where('return must be a safe integer');
  if (!((call as number) < (ret as number))) where('call must be before return');
  if (op.meta !== undefined) checkJson(op.meta, 'meta', where);
  const output = asRecord(op.output, 'output', where);
  if (op.op === 'batch') {
    for (const field of ['key', 'value', 'expected', 'by']) {
      if (op[field] !== undefined) where(`a batch has no top-level ${field}; its steps do`);
    }
    const steps = op.ops;
    if (!Array.isArray(steps) || steps.length === 0) where('batch ops must be a non-empty array');
    (steps as unknown[]).forEach((s, i) => {
      checkStep(asRecord(s, `batch step ${i}`, where), `batch step ${i}`, where);
    });
    checkBatchOutput(output, steps as KeyStep[], where);
  } else {
    if (op.ops !== undefined) where('only a batch has ops');
    checkStep(op, 'operation', where);
    checkOutcome(output, op as KeyStep, where);
  }
  return op as unknown as HistoryOp;
}

type Where = (detail: string) => never;

const commonFields = ['clientId', 'op', 'output', 'call', 'return', 'meta'];

function asRecord(raw: unknown, what: string, where: Where): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return where(`${what} must be an object`);
  }
  return raw as Record<string, unknown>;
}

function only(obj: Record<string, unknown>, allowed: string[], where: Where, extra: string[] = []) {
  for (const field of Object.keys(obj)) {
    if (!allowed.includes(field) && !extra.includes(field)) where(`unknown field "${field}"`);
  }
}

const stepFields: Record<KeyStep['op'], string[]> = {
  get: ['op', 'key'],
  put: ['op', 'key', 'value'],
  delete: ['op', 'key'],
  cas: ['op', 'key', 'expected', 'value'],
  incr: ['op', 'key', 'by'],
};

/** Checks a key step's request fields (not its output). */
function checkStep(step: Record<string, unknown>, what: string, where: Where): void {
  const name = step.op;
  if (typeof name !== 'string' || !Object.hasOwn(stepFields, name)) {
    const kinds = `get, put, delete, cas, incr${what === 'operation' ? ', batch' : ''}`;
    where(`${what}: op must be one of ${kinds}`);
  }
  const fields = stepFields[name as KeyStep['op']];
  for (const field of ['key', 'value', 'expected', 'by']) {
    if (step[field] !== undefined && !fields.includes(field))
      where(`${what}: ${name} has no ${field}`);
  }
  if (what !== 'operation') only(step, fields, (d) => where(`${what}: ${d}`));
  if (typeof step.key !== 'string') where(`${what}: key must be a string`);
  if (name === 'put' || name === 'cas') {
    if (!('value' in step)) where(`${what}: ${name} needs a value`);
    checkJson(step.value, 'value', where);
  }
  if (name === 'cas') checkExpected(step.expected, where);
  if (name === 'incr' && step.by !== undefined && !Number.isSafeInteger(step.by)) {
    where(`${what}: incr by must be a safe integer`);
  }
}

function checkExpected(raw: unknown, where: Where): void {
  const expected = asRecord(raw, 'cas expected', where);
  only(expected, ['value', 'version', 'absent'], where);
  const given = Object.keys(expected).length;
  if (given !== 1) where('cas expected must have exactly one of value, version, absent');
  if ('value' in expected) checkJson(expected.value, 'expected value', where);
  if ('version' in expected && !Number.isSafeInteger(expected.version)) {
    where('cas expected version must be a safe integer');
  }
  if ('absent' in expected && expected.absent !== true) where('cas expected absent must be true');
}

/** A JSON value: no undefined, functions, non-finite numbers or cycles beyond JSON's own. */
function checkJson(value: unknown, what: string, where: Where): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) where(`${what} must be a finite number`);
    return;
  }
  if (Array.isArray(value)) {
    for (const item of value) checkJson(item, what, where);
    return;
  }
  if (typeof value === 'object') {
    for (const item of Object.values(value)) checkJson(item, what, where);
    return;
  }
  where(`${what} must be JSON`);
}

/** Checks a single operation's output: unknown, error, or a result of its kind. */
function checkOutcome(output: Record<string, unknown>, step: KeyStep, where: Where): void {
  if (output.unknown !== undefined) {
    if (output.unknown !== true) where('output.unknown must be true when present');
    only(output, ['unknown', 'error'], where);
    if (output.error !== undefined && typeof output.error !== 'string') {
      where('output.error must be a string');
    }
    return;
  }
  if (output.error !== undefined) {
    if (typeof output.error !== 'string') where('output.error must be a string');
    only(output, ['error'], where);
    return;
  }
  checkResult(output, step.op, 'output', where);
}

const resultFields: Record<KeyStep['op'], string[]> = {
  get: ['value', 'version'],
  put: ['ok', 'version'],
  delete: ['ok', 'existed'],
  cas: ['ok', 'version'],
  incr: ['value', 'version'],
};

/** Checks a result (not unknown, not error) of a key operation or batch step. */
function checkResult(
  out: Record<string, unknown>,
  name: KeyStep['op'],
  what: string,
  where: Where,
) {
  only(out, resultFields[name], (d) => where(`${what} of ${name}: ${d}`));
  if (out.version !== undefined && !Number.isSafeInteger(out.version)) {
    where(`${what}.version must be a safe integer`);
  }
  if (name === 'get') {
    if ('value' in out) checkJson(out.value, `${what}.value`, where);
    else if (out.version !== undefined) where(`${what}: a missing key has no version`);
  } else if (name === 'put' || name === 'delete') {
    if (out.ok !== true) where(`${what}.ok must be true for ${name}`);
  } else if (name === 'cas') {
    if (typeof out.ok !== 'boolean') where(`${what}.ok must be a boolean for cas`);
    if (out.ok === false && out.version !== undefined)
      where(`${what}: a failed cas has no version`);
  } else if (typeof out.value !== 'number' || !Number.isFinite(out.value)) {
    where(`${what}.value must be the new number for incr`);
  }
  if (name === 'delete' && out.existed !== undefined && typeof out.existed !== 'boolean') {
    where(`${what}.existed must be a boolean`);
  }
}

function checkBatchOutput(output: Record<string, unknown>, steps: KeyStep[], where: Where): void {
  if (output.unknown !== undefined || output.error !== undefined) {
    checkOutcome(output, { op: 'get', key: '' }, where);
    return;
  }
  only(output, ['ok', 'results'], where);
  if (typeof output.ok !== 'boolean') where('batch output.ok must be a boolean');
  if (output.results === undefined) return;
  if (output.ok === false) where('an aborted batch has no results');
  const results = output.results;
  if (!Array.isArray(results) || results.length !== steps.length) {
    where('batch output.results must have one entry per step');
  }
  (results as unknown[]).forEach((r, i) => {
    const what = `output.results[${i}]`;
    const result = asRecord(r, what, where);
    const name = steps[i]!.op;
    if (name === 'cas' && result.ok !== true) where(`${what}: every cas of an applied batch held`);
    checkResult(result, name, what, where);
  });
}
