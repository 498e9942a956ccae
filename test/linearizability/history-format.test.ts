import { describe, expect, it } from 'vitest';
import { isFlotillaError } from '../../engine/errors.js';
import {
  canonicalJson,
  formatHistory,
  HistoryFormatError,
  type HistoryOp,
  parseHistory,
} from '../support/history.js';
import { checkHistory, describeOp } from '../support/linearizability.js';
import { batch, cas, del, get, getOut, incr, put, unknown } from './ops.js';

const sample: HistoryOp[] = [
  put('c1', 0, 2, 'k', { b: [1, 2], a: 'x' }, { ok: true, version: 3 }),
  getOut('c2', 1, 4, 'k', { value: { a: 'x', b: [1, 2] }, version: 3 }),
  del('c1', 5, 6, 'k', { ok: true, existed: true }),
  cas('c2', 7, 9, 'k', { absent: true }, 1, { ok: true, version: 8 }),
  incr('c3', 10, 12, 'k', 2, { value: 3, version: 9 }),
  batch(
    'c1',
    13,
    15,
    [
      { op: 'get', key: 'k' },
      { op: 'put', key: 'j', value: null },
    ],
    {
      ok: true,
      results: [{ value: 3, version: 9 }, { ok: true }],
    },
  ),
  put('c3', 16, 100, 'j', 'late', unknown),
  get('c2', 17, 18, 'j', 'late'),
];

/** Parses one line and returns the error it raises. */
function errorOf(line: string): HistoryFormatError {
  try {
    parseHistory(line);
  } catch (err) {
    if (err instanceof HistoryFormatError) return err;
    throw err;
  }
  throw new Error(`accepted: ${line}`);
}

describe('history format', () => {
  it('round-trips through JSON lines', () => {
    const text = formatHistory(sample);
    expect(text.split('\n')).toHaveLength(sample.length + 1);
    expect(text.startsWith('{"clientId":"c1","op":"put","key":"k","value"')).toBe(true);
    expect(parseHistory(text)).toEqual(sample);
    expect(checkHistory(parseHistory(text)).ok).toBe(true);
  });

  it('skips blank lines but counts them in error line numbers', () => {
    const lines = formatHistory(sample.slice(0, 2)).split('\n');
    const text = `\n${lines[0]}\n\n${lines[1]}\n{"op": "get"\n`;
    const err = errorOf(text);
    expect(err.line).toBe(5);
    expect(err.message).toMatch(/^history line 5: not JSON/);
    expect(isFlotillaError(err, 'INVALID_ARGUMENT')).toBe(true);
  });

  const good = { clientId: 'c', op: 'put', key: 'k', value: 1, output: { ok: true } };
  const line = (patch: Record<string, unknown>) =>
    JSON.stringify({ ...good, call: 1, return: 2, ...patch });

  it.each([
    [{ outptu: {} }, 'unknown field "outptu"'],
    [{ call: 2, return: 2 }, 'call must be before return'],
    [{ call: 1.5 }, 'call must be a safe integer'],
    [{ clientId: null }, 'clientId must be a string or a number'],
    [{ op: 'scan' }, 'op must be one of get, put, delete, cas, incr, batch'],
    [{ value: undefined }, 'put needs a value'],
    [{ key: 7 }, 'key must be a string'],
    [{ output: { ok: false } }, 'output.ok must be true for put'],
    [{ output: { ok: true, existed: true } }, 'unknown field "existed"'],
    [{ output: { unknown: true, ok: true } }, 'unknown field "ok"'],
    [{ output: { error: 5 } }, 'output.error must be a string'],
    [{ op: 'get', value: undefined, output: { version: 3 } }, 'a missing key has no version'],
    [{ op: 'cas', expected: { value: 1, version: 2 } }, 'exactly one of value, version, absent'],
    [{ op: 'cas', expected: { absent: false } }, 'cas expected absent must be true'],
    [
      { op: 'cas', expected: { value: 1 }, output: { ok: false, version: 2 } },
      'a failed cas has no version',
    ],
    [
      { op: 'incr', value: undefined, by: 0.5, output: { value: 1 } },
      'incr by must be a safe integer',
    ],
    [{ op: 'incr', value: undefined, output: { value: 'x' } }, 'must be the new number for incr'],
    [
      { op: 'delete', value: undefined, output: { ok: true, existed: 'yes' } },
      'existed must be a boolean',
    ],
    [
      { op: 'batch', key: undefined, value: undefined, ops: [] },
      'batch ops must be a non-empty array',
    ],
    [
      { op: 'batch', value: undefined, ops: [{ op: 'get', key: 'k' }] },
      'a batch has no top-level key',
    ],
    [{ op: 'batch', key: undefined, ops: [{ op: 'get', key: 'k' }] }, 'no top-level value'],
    [{ op: 'get', value: undefined, ops: [] }, 'only a batch has ops'],
  ])('refuses %j', (patch, message) => {
    const err = errorOf(line(patch));
    expect(err.line).toBe(1);
    expect(err.message).toContain(message);
  });

  it('refuses malformed batch steps and results', () => {
    const base = {
      clientId: 'c',
      op: 'batch',
      key: undefined,
      value: undefined,
      call: 1,
      return: 2,
    };
    const steps = [
      { op: 'get', key: 'a' },
      { op: 'cas', key: 'b', expected: { value: 1 }, value: 2 },
    ];
    const cases: [Record<string, unknown>, string][] = [
      [
        { ops: [{ op: 'batch', key: 'a' }], output: { ok: true } },
        'batch step 0: op must be one of',
      ],
      [
        { ops: [{ op: 'get', key: 'a', by: 1 }], output: { ok: true } },
        'batch step 0: get has no by',
      ],
      [{ ops: steps, output: { ok: true, results: [{}] } }, 'one entry per step'],
      [
        { ops: steps, output: { ok: false, results: [{}, { ok: true }] } },
        'an aborted batch has no results',
      ],
      [
        { ops: steps, output: { ok: true, results: [{}, { ok: false }] } },
        'every cas of an applied batch held',
      ],
      [{ ops: steps, output: { results: [] } }, 'batch output.ok must be a boolean'],
    ];
    for (const [patch, message] of cases) {
      expect(errorOf(JSON.stringify({ ...base, ...patch })).message).toContain(message);
    }
  });

  it('checkHistory validates operations built in code, naming their position', () => {
    const bad = { ...put('c', 0, 1, 'k', 1), output: { ok: 'yes' } } as unknown as HistoryOp;
    expect(() => checkHistory([get('c', 0, 1, 'k'), bad])).toThrow(/history line 2: output.ok/);
  });

  it('compares values by canonical JSON', () => {
    expect(canonicalJson({ b: 1, a: [{ d: null, c: 'x' }] })).toBe(
      '{"a":[{"c":"x","d":null}],"b":1}',
    );
    expect(canonicalJson('a"b')).toBe('"a\\"b"');
  });

  it('describes operations on one line', () => {
    expect(sample.map(describeOp)).toEqual([
      'c1 [0..2] put k={"a":"x","b":[1,2]} -> ok v3',
      'c2 [1..4] get k -> {"a":"x","b":[1,2]} v3',
      'c1 [5..6] delete k -> ok existed',
      'c2 [7..9] cas k if absent then 1 -> ok v8',
      'c3 [10..12] incr k by 2 -> 3 v9',
      'c1 [13..15] batch {get k; put j=null} -> ok {3 v9; ok}',
      'c3 [16..?] put j="late" -> unknown (TIMEOUT)',
      'c2 [17..18] get j -> "late"',
    ]);
  });
});
