/**
 * Terse builders for hand-written histories: `put('c1', 0, 2, 'x', 1)` is client c1 putting x=1,
 * called at 0 and returning at 2. Outputs default to success; pass one to say otherwise.
 */
import type { CasExpected, HistoryOp, Json, KeyStep, OpOutput } from '../support/history.js';

type Client = string;

/** A get that read `value` (undefined: the key was missing). */
export function get(c: Client, call: number, ret: number, key: string, value?: Json): HistoryOp {
  const output: OpOutput = value === undefined ? {} : { value };
  return { clientId: c, op: 'get', key, output, call, return: ret };
}

/** A get whose output is given in full (e.g. with a version). */
export function getOut(c: Client, call: number, ret: number, key: string, output: OpOutput) {
  return { clientId: c, op: 'get', key, output, call, return: ret } satisfies HistoryOp;
}

/** A put; `output` defaults to `{ ok: true }`. */
export function put(
  c: Client,
  call: number,
  ret: number,
  key: string,
  value: Json,
  output: OpOutput = { ok: true },
): HistoryOp {
  return { clientId: c, op: 'put', key, value, output, call, return: ret };
}

/** A delete; `output` defaults to `{ ok: true }`. */
export function del(
  c: Client,
  call: number,
  ret: number,
  key: string,
  output: OpOutput = { ok: true },
) {
  return { clientId: c, op: 'delete', key, output, call, return: ret } satisfies HistoryOp;
}

/** A cas; `output` is `{ ok }` at least. */
export function cas(
  c: Client,
  call: number,
  ret: number,
  key: string,
  expected: CasExpected,
  value: Json,
  output: OpOutput,
): HistoryOp {
  return { clientId: c, op: 'cas', key, expected, value, output, call, return: ret };
}

/** An incr by `by` that returned `output` (e.g. `{ value: 2 }`). */
export function incr(
  c: Client,
  call: number,
  ret: number,
  key: string,
  by: number,
  output: OpOutput,
) {
  return { clientId: c, op: 'incr', key, by, output, call, return: ret } satisfies HistoryOp;
}

/** A batch of steps. */
export function batch(c: Client, call: number, ret: number, ops: KeyStep[], output: OpOutput) {
  return { clientId: c, op: 'batch', ops, output, call, return: ret } satisfies HistoryOp;
}

/** The outcome of a timed-out operation. */
export const unknown: OpOutput = { unknown: true, error: 'TIMEOUT' };
