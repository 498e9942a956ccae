import { describe, expect, it } from 'vitest';
import type { HistoryOp } from '../support/history.js';
import {
  type CheckResult,
  checkHistory,
  formatFailure,
  type NotLinearizable,
} from '../support/linearizability.js';
import { batch, cas, del, get, getOut, incr, put, unknown } from './ops.js';

function expectLinearizable(ops: HistoryOp[]): CheckResult {
  const result = checkHistory(ops);
  expect(result.failures.map(formatFailure)).toEqual([]);
  expect(result.timedOut).toEqual([]);
  expect(result.ok).toBe(true);
  return result;
}

function expectViolation(ops: HistoryOp[]): NotLinearizable {
  const result = checkHistory(ops);
  expect(result.ok).toBe(false);
  expect(result.timedOut).toEqual([]);
  expect(result.failures).toHaveLength(1);
  const failure = result.failures[0]!;
  expect(failure.kind).toBe('not-linearizable');
  return failure as NotLinearizable;
}

describe('get and put', () => {
  it('a read after a completed write sees it', () => {
    expectLinearizable([put('a', 0, 2, 'x', 1), get('b', 3, 4, 'x', 1)]);
  });

  it('a stale read after a completed overwrite is a violation, blamed on the read', () => {
    const stale = get('c', 6, 7, 'x', 1);
    const failure = expectViolation([put('a', 0, 2, 'x', 1), put('b', 3, 5, 'x', 2), stale]);
    expect(failure.culprits).toEqual([stale]);
    expect(failure.cutTime).toBe(7);
    expect(failure.minimal).toBe(true);
  });

  it('a read of a value never written is a violation', () => {
    expectViolation([put('a', 0, 2, 'x', 1), get('b', 3, 4, 'x', 9)]);
  });

  it('a read concurrent with a write may see the old or the new value', () => {
    expectLinearizable([put('a', 0, 2, 'x', 1), put('a', 3, 10, 'x', 2), get('b', 4, 5, 'x', 1)]);
    expectLinearizable([put('a', 0, 2, 'x', 1), put('a', 3, 10, 'x', 2), get('b', 4, 5, 'x', 2)]);
  });

  it('a missing key reads as missing until written, and not after', () => {
    expectLinearizable([get('a', 0, 1, 'x'), put('a', 2, 3, 'x', 1), get('b', 4, 5, 'x', 1)]);
    expectViolation([get('a', 0, 1, 'x'), put('a', 2, 3, 'x', 1), get('b', 4, 5, 'x')]);
  });

  it('values are compared as canonical JSON, whatever the field order', () => {
    expectLinearizable([
      put('a', 0, 1, 'x', { a: 1, b: { c: [1, null] } }),
      get('b', 2, 3, 'x', { b: { c: [1, null] }, a: 1 }),
    ]);
    expectViolation([put('a', 0, 1, 'x', { a: 1 }), get('b', 2, 3, 'x', { a: '1' })]);
  });
});

describe('two concurrent writes', () => {
  const writes = [put('w1', 0, 10, 'x', 1), put('w2', 0, 10, 'x', 2)];

  it('readers may observe them in either order, if all agree on one', () => {
    expectLinearizable([
      ...writes,
      get('r', 2, 4, 'x', 1),
      get('r', 5, 7, 'x', 2),
      get('s', 12, 13, 'x', 2),
    ]);
    expectLinearizable([
      ...writes,
      get('r', 2, 4, 'x', 2),
      get('r', 5, 7, 'x', 1),
      get('s', 12, 13, 'x', 1),
    ]);
  });

  it('readers that disagree on the order are a violation', () => {
    expectViolation([
      ...writes,
      get('r', 2, 4, 'x', 1),
      get('r', 5, 7, 'x', 2),
      get('s', 8, 9, 'x', 1),
    ]);
    expectViolation([...writes, get('r', 11, 12, 'x', 1), get('s', 13, 14, 'x', 2)]);
  });
});

describe('delete', () => {
  it('removes the key, and reports whether it existed', () => {
    expectLinearizable([
      put('a', 0, 1, 'x', 1),
      del('a', 2, 3, 'x', { ok: true, existed: true }),
      get('b', 4, 5, 'x'),
      del('b', 6, 7, 'x', { ok: true, existed: false }),
    ]);
  });

  it('a delete that claims a written key was missing is a violation', () => {
    expectViolation([put('a', 0, 1, 'x', 1), del('a', 2, 3, 'x', { ok: true, existed: false })]);
  });

  it('a read after a completed delete that still sees the value is a violation', () => {
    expectViolation([put('a', 0, 1, 'x', 1), del('a', 2, 3, 'x'), get('b', 4, 5, 'x', 1)]);
  });
});

describe('incr', () => {
  it('concurrent increments each see a distinct result', () => {
    expectLinearizable([
      incr('a', 0, 5, 'n', 1, { value: 2 }),
      incr('b', 1, 6, 'n', 1, { value: 1 }),
      get('c', 7, 8, 'n', 2),
    ]);
  });

  it('a lost increment (both saw 1) is a violation', () => {
    expectViolation([incr('a', 0, 5, 'n', 1, { value: 1 }), incr('b', 1, 6, 'n', 1, { value: 1 })]);
    expectViolation([
      incr('a', 0, 5, 'n', 1, { value: 1 }),
      incr('b', 1, 6, 'n', 1, { value: 2 }),
      get('c', 7, 8, 'n', 1),
    ]);
  });

  it('counts from zero on a missing key, and never succeeds on a non-number', () => {
    expectLinearizable([incr('a', 0, 1, 'n', 5, { value: 5 })]);
    expectViolation([put('a', 0, 1, 'n', 's'), incr('a', 2, 3, 'n', 1, { value: 1 })]);
  });
});

describe('cas', () => {
  it('a cas may take effect before a concurrent overwrite', () => {
    expectLinearizable([
      put('a', 0, 1, 'x', 1),
      put('b', 2, 10, 'x', 2),
      cas('c', 4, 5, 'x', { value: 1 }, 3, { ok: true }),
      get('d', 11, 12, 'x', 2),
    ]);
  });

  it('a cas success that contradicts the real-time order is a violation', () => {
    expectViolation([
      put('a', 0, 1, 'x', 1),
      put('b', 2, 3, 'x', 2),
      cas('c', 4, 5, 'x', { value: 1 }, 3, { ok: true }),
    ]);
  });

  it('a cas failure whose condition held is a violation', () => {
    expectViolation([put('a', 0, 1, 'x', 1), cas('c', 2, 3, 'x', { value: 1 }, 2, { ok: false })]);
  });

  it('two concurrent create-if-absent cas cannot both win', () => {
    const create = (c: string, v: number, ok: boolean) =>
      cas(c, 0, 5, 'x', { absent: true }, v, { ok });
    expectLinearizable([create('a', 1, true), create('b', 2, false), get('c', 6, 7, 'x', 1)]);
    expectViolation([create('a', 1, true), create('b', 2, true)]);
  });
});

describe('cas by version', () => {
  it('succeeds on the version the last write reported, and fails on an older one', () => {
    expectLinearizable([
      put('a', 0, 1, 'x', 1, { ok: true, version: 5 }),
      cas('a', 2, 3, 'x', { version: 5 }, 2, { ok: true, version: 8 }),
      getOut('b', 4, 5, 'x', { value: 2, version: 8 }),
      cas('b', 6, 7, 'x', { version: 5 }, 3, { ok: false }),
    ]);
    expectViolation([
      put('a', 0, 1, 'x', 1, { ok: true, version: 5 }),
      put('a', 2, 3, 'x', 2, { ok: true, version: 8 }),
      cas('b', 4, 5, 'x', { version: 5 }, 3, { ok: true }),
    ]);
  });

  it('learns the version of a write that did not report it from a later read', () => {
    expectLinearizable([
      put('a', 0, 1, 'x', 1),
      getOut('b', 2, 3, 'x', { value: 1, version: 7 }),
      cas('b', 4, 5, 'x', { version: 7 }, 2, { ok: true }),
      cas('c', 6, 7, 'x', { version: 7 }, 3, { ok: false }),
    ]);
  });

  it('never gives two writes of a key the same version', () => {
    expectViolation([
      put('a', 0, 1, 'x', 1),
      getOut('b', 2, 3, 'x', { value: 1, version: 7 }),
      put('a', 4, 5, 'x', 2),
      getOut('b', 6, 7, 'x', { value: 2, version: 7 }),
    ]);
    expectViolation([
      put('a', 0, 1, 'x', 1, { ok: true, version: 3 }),
      put('a', 2, 3, 'x', 2),
      getOut('b', 4, 5, 'x', { value: 2, version: 3 }),
    ]);
  });

  it('reports two writes that were both told the same version', () => {
    const first = put('a', 0, 1, 'x', 1, { ok: true, version: 4 });
    const second = put('b', 2, 3, 'x', 2, { ok: true, version: 4 });
    const result = checkHistory([first, second]);
    expect(result.ok).toBe(false);
    expect(result.failures).toEqual([
      { kind: 'duplicate-version', keys: ['x'], key: 'x', version: 4, ops: [first, second] },
    ]);
    expect(formatFailure(result.failures[0]!)).toContain('two writes of x report version 4');
  });

  it('remembers what an unreported version is not', () => {
    expectViolation([
      put('a', 0, 1, 'x', 1),
      cas('b', 2, 3, 'x', { version: 7 }, 2, { ok: false }),
      getOut('c', 4, 5, 'x', { value: 1, version: 7 }),
    ]);
  });
});

describe('batch', () => {
  const write = (ret: number) =>
    batch(
      'w',
      0,
      ret,
      [
        { op: 'put', key: 'a', value: 1 },
        { op: 'put', key: 'b', value: 1 },
      ],
      { ok: true },
    );

  it('is observed entirely or not at all by later single-key reads', () => {
    expectLinearizable([write(10), get('r', 2, 3, 'a', 1), get('r', 4, 5, 'b', 1)]);
    expectLinearizable([write(10), get('r', 2, 3, 'b'), get('r', 4, 5, 'a', 1)]);
  });

  it('observed half-applied is a violation', () => {
    expectViolation([write(10), get('r', 2, 3, 'a', 1), get('r', 4, 5, 'b')]);
  });

  it('a batch read sees another batch entirely or not at all', () => {
    const read = (a: number | undefined, b: number | undefined) =>
      batch(
        'r',
        2,
        3,
        [
          { op: 'get', key: 'a' },
          { op: 'get', key: 'b' },
        ],
        {
          ok: true,
          results: [a === undefined ? {} : { value: a }, b === undefined ? {} : { value: b }],
        },
      );
    expectLinearizable([write(10), read(1, 1)]);
    expectLinearizable([write(10), read(undefined, undefined)]);
    expectViolation([write(10), read(1, undefined)]);
  });

  it('aborts as a whole when a cas step fails', () => {
    const guarded = (ok: boolean) =>
      batch(
        'w',
        2,
        3,
        [
          { op: 'put', key: 'b', value: 1 },
          { op: 'cas', key: 'a', expected: { value: 2 }, value: 3 },
        ],
        { ok },
      );
    expectLinearizable([put('a', 0, 1, 'a', 1), guarded(false), get('r', 4, 5, 'b')]);
    expectViolation([put('a', 0, 1, 'a', 1), guarded(true)]);
    expectViolation([put('a', 0, 1, 'a', 1), guarded(false), get('r', 4, 5, 'b', 1)]);
  });

  it('steps see the effects of earlier steps of the same batch', () => {
    const twice = (ok: boolean) =>
      batch(
        'w',
        0,
        1,
        [
          { op: 'cas', key: 'a', expected: { absent: true }, value: 0 },
          { op: 'cas', key: 'a', expected: { absent: true }, value: 1 },
        ],
        { ok },
      );
    expectLinearizable([twice(false), get('r', 2, 3, 'a')]);
    expectViolation([twice(true)]);
    expectViolation([twice(false), get('r', 2, 3, 'a', 0)]);
  });

  it('joins the keys it touches into one partition', () => {
    const result = expectLinearizable([write(10), put('c', 0, 1, 'c', 1), put('d', 0, 1, 'd', 1)]);
    expect(result.partitions).toBe(3);
  });
});

describe('unknown outcomes', () => {
  const timedOut = put('w', 0, 3, 'x', 1, unknown);

  it('a timed-out write may be observed, even after it returned', () => {
    expectLinearizable([timedOut, get('r', 1, 2, 'x', 1), get('r', 10, 11, 'x', 1)]);
    expectLinearizable([timedOut, get('r', 10, 11, 'x', 1)]);
  });

  it('a timed-out write may never be observed', () => {
    expectLinearizable([timedOut, get('r', 10, 11, 'x'), get('r', 20, 21, 'x')]);
  });

  it('may take effect late, after a write that followed its return', () => {
    expectLinearizable([timedOut, put('a', 4, 5, 'x', 2), get('r', 6, 7, 'x', 1)]);
  });

  it('observed and then un-observed is a violation', () => {
    const failure = expectViolation([timedOut, get('r', 5, 6, 'x', 1), get('r', 7, 8, 'x')]);
    expect(failure.cutTime).toBe(8);
  });

  it('cannot be observed before it was called', () => {
    expectViolation([get('r', 0, 1, 'x', 1), put('w', 2, 3, 'x', 1, unknown)]);
  });

  it('takes effect at most once', () => {
    const bump = incr('w', 0, 5, 'n', 1, unknown);
    expectLinearizable([bump, incr('a', 6, 7, 'n', 1, { value: 2 })]);
    expectLinearizable([bump, incr('a', 6, 7, 'n', 1, { value: 1 })]);
    expectViolation([bump, incr('a', 6, 7, 'n', 1, { value: 3 })]);
  });

  it('identical timed-out increments each take effect at most once', () => {
    const bumps = [0, 1, 2].map((t) => incr(`w${t}`, t, t + 5, 'n', 1, unknown));
    expectLinearizable([...bumps, get('r', 10, 11, 'n', 2), get('r', 12, 13, 'n', 3)]);
    expectLinearizable([...bumps, get('r', 10, 11, 'n')]);
    expectViolation([...bumps, get('r', 10, 11, 'n', 4)]);
    expectViolation([...bumps, get('r', 10, 11, 'n', 3), get('r', 12, 13, 'n', 2)]);
  });

  it('an identical timed-out increment called later cannot stand in for an earlier one', () => {
    const early = incr('w', 0, 1, 'n', 1, unknown);
    const late = incr('v', 20, 21, 'n', 1, unknown);
    expectViolation([early, late, get('r', 5, 6, 'n', 2)]);
    expectLinearizable([early, late, get('r', 5, 6, 'n', 1), get('r', 25, 26, 'n', 2)]);
  });

  it('a definite error had no effect and is ignored', () => {
    const failed = put('w', 0, 1, 'x', 1, { error: 'UNAVAILABLE' });
    const result = checkHistory([failed, get('r', 2, 3, 'x')]);
    expect(result).toMatchObject({ ok: true, ignored: 1, partitions: 1 });
    expectViolation([failed, get('r', 2, 3, 'x', 1)]);
  });
});

describe('failure reports', () => {
  it('shrink to the shortest failing prefix and print the operations involved', () => {
    const ops: HistoryOp[] = [];
    for (let i = 0; i < 50; i++) {
      ops.push(put('a', 10 * i, 10 * i + 4, 'x', i), get('b', 10 * i + 5, 10 * i + 6, 'x', i));
    }
    const stale = get('c', 1000, 1001, 'x', 3);
    ops.push(stale, put('a', 1002, 1003, 'x', 99), get('b', 1004, 1005, 'x', 99));
    const failure = expectViolation(ops);
    expect(failure).toMatchObject({ cutTime: 1001, minimal: true, culprits: [stale] });
    expect(failure.ops).toHaveLength(101);
    expect(failure.linearized).toHaveLength(100);
    expect(failure.stuck).toBe(stale);
    const text = formatFailure(failure);
    expect(text).toContain('keys {x}: not linearizable; shortest failing prefix ends at time 1001');
    expect(text).toContain('c [1000..1001] get x -> 3');
    expect(text).toContain('... 60 earlier');
  });

  it('without minimizing, report the whole history', () => {
    const ops = [put('a', 0, 1, 'x', 1), get('b', 2, 3, 'x', 2), put('a', 4, 5, 'x', 2)];
    const result = checkHistory(ops, { minimize: false });
    expect(result.failures[0]).toMatchObject({ cutTime: 5, minimal: false });
  });
});
