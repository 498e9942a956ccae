/**
 * Human-readable operations and checker failures, for test failures and the check-history tool.
 */
import { historyOpsPrintedMax } from '../../engine/limits.js';
import {
  type CasExpected,
  canonicalJson,
  type HistoryOp,
  type Json,
  type KeyStep,
  type OpOutput,
} from './history.js';
import type { PartitionFailure } from './linearizability.js';

/** One line for an operation, e.g. `c1 [3..9] put k=1 -> ok v7`. */
export function describeOp(op: HistoryOp): string {
  const unknown = op.output.unknown === true;
  const times = `[${op.call}..${unknown ? '?' : op.return}]`;
  const request =
    op.op === 'batch' ? `batch {${op.ops.map(describeStep).join('; ')}}` : describeStep(op);
  return `${op.clientId} ${times} ${request} -> ${describeOutput(op)}`;
}

function json(value: Json): string {
  return canonicalJson(value);
}

function describeExpected(expected: CasExpected): string {
  if ('absent' in expected) return 'absent';
  if ('version' in expected) return `version=${expected.version}`;
  return `value=${json(expected.value)}`;
}

function describeStep(step: KeyStep): string {
  switch (step.op) {
    case 'get':
      return `get ${step.key}`;
    case 'put':
      return `put ${step.key}=${json(step.value)}`;
    case 'delete':
      return `delete ${step.key}`;
    case 'cas':
      return `cas ${step.key} if ${describeExpected(step.expected)} then ${json(step.value)}`;
    case 'incr':
      return `incr ${step.key} by ${step.by ?? 1}`;
  }
}

function describeResult(out: OpOutput, kind: KeyStep['op']): string {
  const version = out.version === undefined ? '' : ` v${out.version}`;
  if (kind === 'get') return `${'value' in out ? json(out.value as Json) : 'missing'}${version}`;
  if (kind === 'incr') return `${json(out.value as Json)}${version}`;
  if (kind === 'cas' && out.ok === false) return 'failed';
  const existed = out.existed === undefined ? '' : out.existed ? ' existed' : ' was missing';
  return `ok${version}${existed}`;
}

function describeOutput(op: HistoryOp): string {
  const out = op.output;
  if (out.unknown === true) return `unknown${out.error === undefined ? '' : ` (${out.error})`}`;
  if (out.error !== undefined) return `error ${out.error}`;
  if (op.op !== 'batch') return describeResult(out, op.op);
  if (out.ok === false) return 'aborted';
  const results = out.results?.map((r, i) => describeResult(r, op.ops[i]!.op));
  return results === undefined ? 'ok' : `ok {${results.join('; ')}}`;
}

/** Lines listing `ops`, the last `historyOpsPrintedMax` of them when there are more. */
function listOps(ops: readonly HistoryOp[], annotate: (op: HistoryOp) => string): string[] {
  const shown = ops.slice(-historyOpsPrintedMax);
  const lines = shown.map((op) => `    ${describeOp(op)}${annotate(op)}`);
  if (shown.length < ops.length) lines.unshift(`    ... ${ops.length - shown.length} earlier`);
  return lines;
}

function ops(count: number): string {
  return `${count} op${count === 1 ? '' : 's'}`;
}

/** A multi-line explanation of a failed partition. */
export function formatFailure(failure: PartitionFailure): string {
  const keys = `keys {${failure.keys.join(', ')}}`;
  if (failure.kind === 'duplicate-version') {
    return [
      `${keys}: two writes of ${failure.key} report version ${failure.version}`,
      ...listOps(failure.ops, () => ''),
    ].join('\n');
  }
  const cut = failure.cutTime;
  const placed = new Set(failure.linearized);
  const pending = (op: HistoryOp) =>
    op.output.unknown !== true && op.return > cut ? ` (pending at ${cut})` : '';
  const shortest = failure.minimal ? 'shortest failing prefix' : 'failing prefix';
  const lines = [
    `${keys}: not linearizable; ${shortest} ends at time ${cut} (${ops(failure.ops.length)})`,
    '  no order explains:',
    ...listOps(failure.culprits, () => ''),
    `  longest linearization found (${ops(failure.linearized.length)}, in order):`,
    ...listOps(failure.linearized, pending),
  ];
  if (failure.stuck !== undefined) {
    lines.push('  after which this cannot take effect before it returns:');
    lines.push(...listOps([failure.stuck], pending));
  }
  const rest = failure.ops.filter((op) => !placed.has(op) && op !== failure.stuck);
  if (rest.length > 0) {
    lines.push('  other operations not linearized:', ...listOps(rest, pending));
  }
  return lines.join('\n');
}
