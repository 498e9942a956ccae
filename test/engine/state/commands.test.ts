import { describe, expect, it } from 'vitest';
import { isFlotillaError } from '../../../engine/errors.js';
import { keyBytesMax, valueBytesMax } from '../../../engine/limits.js';
import {
  type Command,
  decodeResult,
  encodeCommand,
  encodeResult,
  resultError,
} from '../../../engine/state/commands.js';
import { entry, openState, ShardFeeder } from './helpers.js';

function feeder(): ShardFeeder {
  return new ShardFeeder(openState(), 7);
}

function sparse(): unknown[] {
  const array: unknown[] = [1];
  array[2] = 3;
  return array;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isFlotillaError(err) ? err.code : 'not a FlotillaError';
  }
  return undefined;
}

describe('put, get, delete', () => {
  it('a put returns the entry index as the version and get reads it back', () => {
    const f = feeder();
    f.apply({ type: 'noop' });
    expect(f.apply({ type: 'put', key: 'a', value: { n: 1 } })).toEqual({
      type: 'put',
      version: 2,
    });
    expect(f.state.get(7, 'a')).toEqual({ value: { n: 1 }, version: 2 });
    expect(f.state.get(8, 'a')).toBeUndefined();
    expect(f.state.count(7)).toBe(1);
  });

  it('an overwrite bumps the version and keeps the count', () => {
    const f = feeder();
    f.apply({ type: 'put', key: 'a', value: 1 });
    f.apply({ type: 'put', key: 'a', value: 2 });
    expect(f.state.get(7, 'a')).toEqual({ value: 2, version: 2 });
    expect(f.state.count(7)).toBe(1);
  });

  it('a delete says whether the key existed', () => {
    const f = feeder();
    f.apply({ type: 'put', key: 'a', value: 1 });
    expect(f.apply({ type: 'delete', key: 'a' })).toEqual({ type: 'delete', existed: true });
    expect(f.apply({ type: 'delete', key: 'a' })).toEqual({ type: 'delete', existed: false });
    expect(f.state.get(7, 'a')).toBeUndefined();
    expect(f.state.count(7)).toBe(0);
  });

  it('string and byte keys with the same bytes are the same key', () => {
    const f = feeder();
    f.apply({ type: 'put', key: 'k', value: 'v' });
    expect(f.state.get(7, new Uint8Array([0x6b]))?.value).toBe('v');
  });
});

describe('cas', () => {
  it('by version 0 succeeds only when the key does not exist', () => {
    const f = feeder();
    const create: Command = { type: 'cas', key: 'a', expected: { version: 0 }, value: 'x' };
    expect(f.apply(create)).toEqual({ type: 'cas', ok: true, version: 1 });
    expect(f.apply(create)).toEqual({ type: 'cas', ok: false, version: 1 });
    expect(f.state.get(7, 'a')).toEqual({ value: 'x', version: 1 });
  });

  it('by version succeeds only on the current version', () => {
    const f = feeder();
    f.apply({ type: 'put', key: 'a', value: 1 });
    const stale: Command = { type: 'cas', key: 'a', expected: { version: 5 }, value: 2 };
    expect(f.apply(stale)).toEqual({ type: 'cas', ok: false, version: 1 });
    const fresh: Command = { type: 'cas', key: 'a', expected: { version: 1 }, value: 2 };
    expect(f.apply(fresh)).toEqual({ type: 'cas', ok: true, version: 3 });
  });

  it('by value compares the encoded bytes: equal values match, key order matters', () => {
    const f = feeder();
    f.apply({ type: 'put', key: 'a', value: { x: 1, y: [1, 2] } });
    const reordered: Command = {
      type: 'cas',
      key: 'a',
      expected: { value: { y: [1, 2], x: 1 } },
      value: 'no',
    };
    expect(f.apply(reordered)).toMatchObject({ ok: false, version: 1 });
    const same: Command = {
      type: 'cas',
      key: 'a',
      expected: { value: { x: 1, y: [1, 2] } },
      value: 'yes',
    };
    expect(f.apply(same)).toMatchObject({ ok: true, version: 3 });
    expect(f.state.get(7, 'a')?.value).toBe('yes');
  });

  it('by value never matches a missing key, and bytes differ from the same msgpack bytes', () => {
    const f = feeder();
    const missing: Command = { type: 'cas', key: 'a', expected: { value: null }, value: 1 };
    expect(f.apply(missing)).toMatchObject({ ok: false, version: 0 });
    f.apply({ type: 'put', key: 'b', value: new Uint8Array([1]) });
    const asNumber: Command = { type: 'cas', key: 'b', expected: { value: 1 }, value: 2 };
    expect(f.apply(asNumber)).toMatchObject({ ok: false });
    const asBytes: Command = {
      type: 'cas',
      key: 'b',
      expected: { value: new Uint8Array([1]) },
      value: 2,
    };
    expect(f.apply(asBytes)).toMatchObject({ ok: true });
  });
});

describe('incr', () => {
  it('counts a missing key as 0 and keeps numbers numbers', () => {
    const f = feeder();
    expect(f.apply({ type: 'incr', key: 'n', by: 5 })).toEqual({
      type: 'incr',
      value: 5,
      version: 1,
    });
    expect(f.apply({ type: 'incr', key: 'n', by: -7 })).toMatchObject({ value: -2 });
    expect(f.apply({ type: 'incr', key: 'n', by: 0.5 })).toMatchObject({ value: -1.5 });
    expect(f.state.get(7, 'n')?.value).toBe(-1.5);
  });

  it('adds bigints beyond 64 bits', () => {
    const f = feeder();
    f.apply({ type: 'incr', key: 'b', by: 2n ** 80n });
    expect(f.apply({ type: 'incr', key: 'b', by: 1n })).toMatchObject({ value: 2n ** 80n + 1n });
    expect(f.state.get(7, 'b')?.value).toBe(2n ** 80n + 1n);
  });

  it('on a non-number is a WRONG_TYPE result that changes nothing', () => {
    const f = feeder();
    f.apply({ type: 'put', key: 's', value: 'text' });
    f.apply({ type: 'put', key: 'r', value: new Uint8Array([1, 2]) });
    f.apply({ type: 'put', key: 'n', value: 1 });
    for (const [key, by] of [
      ['s', 1],
      ['r', 1],
      ['n', 1n],
    ] as const) {
      const result = f.apply({ type: 'incr', key, by });
      expect(result).toMatchObject({ type: 'error', code: 'WRONG_TYPE' });
      expect(resultError(result)?.code).toBe('WRONG_TYPE');
    }
    expect(f.state.get(7, 's')).toEqual({ value: 'text', version: 1 });
    expect(f.state.get(7, 'n')).toEqual({ value: 1, version: 3 });
  });

  it('refuses to leave the safe integers', () => {
    const f = feeder();
    f.apply({ type: 'put', key: 'n', value: Number.MAX_SAFE_INTEGER });
    expect(f.apply({ type: 'incr', key: 'n', by: 1 })).toMatchObject({
      type: 'error',
      code: 'INVALID_ARGUMENT',
    });
  });
});

describe('batch', () => {
  it('applies every op in order and reports each result', () => {
    const f = feeder();
    f.apply({ type: 'put', key: 'gone', value: 0 });
    const result = f.apply({
      type: 'batch',
      ops: [
        { type: 'put', key: 'a', value: 1 },
        { type: 'incr', key: 'a', by: 2 },
        { type: 'cas', key: 'b', expected: { version: 0 }, value: 'b' },
        { type: 'delete', key: 'gone' },
      ],
    });
    expect(result).toEqual({
      type: 'batch',
      ok: true,
      results: [
        { type: 'put', version: 2 },
        { type: 'incr', value: 3, version: 2 },
        { type: 'cas', ok: true, version: 2 },
        { type: 'delete', existed: true },
      ],
    });
    expect(f.state.get(7, 'a')).toEqual({ value: 3, version: 2 });
    expect(f.state.count(7)).toBe(2);
  });

  it('is all-or-nothing: one failing cas aborts the whole batch', () => {
    const f = feeder();
    f.apply({ type: 'put', key: 'x', value: 'old' });
    const result = f.apply({
      type: 'batch',
      ops: [
        { type: 'put', key: 'x', value: 'new' },
        { type: 'delete', key: 'x' },
        { type: 'put', key: 'y', value: 1 },
        { type: 'cas', key: 'z', expected: { version: 9 }, value: 1 },
      ],
    });
    expect(result).toEqual({
      type: 'batch',
      ok: false,
      failedOp: 3,
      failure: { type: 'cas', ok: false, version: 0 },
    });
    expect(resultError(result)).toBeUndefined();
    expect(f.state.get(7, 'x')).toEqual({ value: 'old', version: 1 });
    expect(f.state.get(7, 'y')).toBeUndefined();
    expect(f.state.appliedIndex(7)).toBe(2);
    expect(f.state.changes(7, 1)).toEqual([]);
  });

  it('an op error aborts it too and becomes the batch error', () => {
    const f = feeder();
    f.apply({ type: 'put', key: 's', value: 'text' });
    const result = f.apply({
      type: 'batch',
      ops: [
        { type: 'put', key: 'a', value: 1 },
        { type: 'incr', key: 's', by: 1 },
      ],
    });
    expect(result).toMatchObject({ ok: false, failedOp: 1, failure: { code: 'WRONG_TYPE' } });
    expect(resultError(result)?.code).toBe('WRONG_TYPE');
    expect(f.state.get(7, 'a')).toBeUndefined();
  });
});

describe('exec', () => {
  it('runs a registered command inside the apply transaction', () => {
    const f = feeder();
    f.state.defineCommand('transfer', (tx, key, args) => {
      const { to, amount } = args as { to: string; amount: number };
      const from = (tx.get(key) as number | undefined) ?? 0;
      if (from < amount) throw new Error('insufficient funds');
      tx.put(key, from - amount);
      tx.put(to, ((tx.get(to) as number | undefined) ?? 0) + amount);
      return { left: from - amount, version: tx.index };
    });
    f.apply({ type: 'put', key: 'alice', value: 10 });
    const ok = f.apply({
      type: 'exec',
      name: 'transfer',
      key: 'alice',
      args: { to: 'bob', amount: 4 },
    });
    expect(ok).toEqual({ type: 'exec', value: { left: 6, version: 2 } });
    expect(f.state.get(7, 'bob')).toEqual({ value: 4, version: 2 });
    const broke = f.apply({
      type: 'exec',
      name: 'transfer',
      key: 'alice',
      args: { to: 'bob', amount: 100 },
    });
    expect(broke).toEqual({
      type: 'error',
      code: 'COMMAND_FAILED',
      message: 'user command threw: insufficient funds',
    });
    expect(f.state.get(7, 'alice')).toEqual({ value: 6, version: 2 });
  });

  it('an unknown command is an INVALID_ARGUMENT result', () => {
    const f = feeder();
    expect(f.apply({ type: 'exec', name: 'nope', key: 'k' })).toMatchObject({
      type: 'error',
      code: 'INVALID_ARGUMENT',
    });
    expect(f.state.appliedIndex(7)).toBe(1);
  });

  it('writes nothing when it throws after writing', () => {
    const f = feeder();
    f.state.defineCommand('half', (tx) => {
      tx.put('a', 1);
      tx.delete('b');
      throw new TypeError('boom');
    });
    f.apply({ type: 'put', key: 'b', value: 2 });
    expect(f.apply({ type: 'exec', name: 'half', key: 'a' })).toMatchObject({
      code: 'COMMAND_FAILED',
    });
    expect(f.state.get(7, 'a')).toBeUndefined();
    expect(f.state.get(7, 'b')?.value).toBe(2);
  });

  it('a key of another shard fails that command only, even if the command catches it', () => {
    // Shard 7 owns the lower half of the hash space; the hash here is the key's first byte.
    const state = openState({ keyHash: (key) => key[0]! * 2 ** 24 });
    const f = new ShardFeeder(state, 7);
    f.apply({ type: 'shardRange', hashLow: 0, hashHigh: 2 ** 31 });
    state.defineCommand('sneaky', (tx) => {
      tx.put('a-mine', 1);
      try {
        tx.put('\u00ff-theirs', 1);
      } catch {
        // The command swallows the refusal; the state machine still fails it.
      }
      return 'done';
    });
    const [sneaky, next] = state.applyBatch([
      entry(7, 2, { type: 'exec', name: 'sneaky', key: 'a-key' }),
      entry(7, 3, { type: 'put', key: 'b', value: 1 }),
    ]);
    expect(sneaky).toMatchObject({ type: 'error', code: 'INVALID_ARGUMENT' });
    expect(next).toEqual({ type: 'put', version: 3 });
    expect(state.get(7, 'a-mine')).toBeUndefined();
    expect(f.apply({ type: 'put', key: '\u00ff', value: 1 })).toMatchObject({
      code: 'STALE_EPOCH',
    });
  });

  it('returns null for undefined, refuses async commands and non-encodable results', () => {
    const f = feeder();
    f.state.defineCommand('nothing', () => undefined);
    f.state.defineCommand('async', (async () => 1) as never);
    f.state.defineCommand('fn', (() => () => 1) as never);
    expect(f.apply({ type: 'exec', name: 'nothing', key: 'k' })).toEqual({
      type: 'exec',
      value: null,
    });
    expect(f.apply({ type: 'exec', name: 'async', key: 'k' })).toMatchObject({
      code: 'COMMAND_FAILED',
    });
    expect(f.apply({ type: 'exec', name: 'fn', key: 'k' })).toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
  });

  it('sees its own writes and the versions before it', () => {
    const f = feeder();
    f.apply({ type: 'put', key: 'a', value: 'v1' });
    f.state.defineCommand('look', (tx) => {
      const before = tx.entry('a');
      tx.put('a', 'v2');
      const after = tx.entry('a');
      const deleted = tx.delete('a');
      return { before: before ?? null, after: after ?? null, deleted, gone: !tx.get('a') };
    });
    expect(f.apply({ type: 'exec', name: 'look', key: 'a' })).toEqual({
      type: 'exec',
      value: {
        before: { value: 'v1', version: 1 },
        after: { value: 'v2', version: 2 },
        deleted: true,
        gone: true,
      },
    });
    expect(f.state.get(7, 'a')).toBeUndefined();
    expect(f.state.count(7)).toBe(0);
  });

  it('keeps a bounded part of a thrown message, and takes non-Error throws too', () => {
    const f = feeder();
    f.state.defineCommand('long', () => {
      throw new Error('x'.repeat(100_000));
    });
    f.state.defineCommand('string', () => {
      throw 'plain';
    });
    const long = f.apply({ type: 'exec', name: 'long', key: 'k' });
    expect(long).toMatchObject({ code: 'COMMAND_FAILED' });
    expect((long as { message: string }).message.length).toBeLessThan(1100);
    expect(f.apply({ type: 'exec', name: 'string', key: 'k' })).toMatchObject({
      message: 'user command threw: plain',
    });
  });

  it('refuses a second definition of a name', () => {
    const state = openState();
    state.defineCommand('x', () => 1);
    expect(codeOf(() => state.defineCommand('x', () => 2))).toBe('INVALID_ARGUMENT');
  });
});

describe('validation at encode time', () => {
  it('refuses bad keys', () => {
    expect(codeOf(() => encodeCommand({ type: 'put', key: '', value: 1 }))).toBe(
      'INVALID_ARGUMENT',
    );
    expect(
      codeOf(() => encodeCommand({ type: 'put', key: 'x'.repeat(keyBytesMax + 1), value: 1 })),
    ).toBe('KEY_TOO_LARGE');
    expect(codeOf(() => encodeCommand({ type: 'put', key: '\ud800', value: 1 }))).toBe(
      'INVALID_ARGUMENT',
    );
    expect(codeOf(() => encodeCommand({ type: 'put', key: 5 as never, value: 1 }))).toBe(
      'INVALID_ARGUMENT',
    );
    expect(
      codeOf(() => encodeCommand({ type: 'put', key: 'x'.repeat(keyBytesMax), value: 1 })),
    ).toBeUndefined();
  });

  it('refuses values msgpack would change', () => {
    const bad: unknown[] = [
      undefined,
      () => 1,
      Symbol('s'),
      { a: undefined },
      sparse(),
      new Map(),
      new Set(),
      new Date(Number.NaN),
      JSON.parse('{"__proto__": 1}'),
      new (class Point {})(),
      'lone \udc00',
      { '\ud800': 1 },
    ];
    for (const value of bad) {
      expect(codeOf(() => encodeCommand({ type: 'put', key: 'k', value: value as never }))).toBe(
        'INVALID_ARGUMENT',
      );
    }
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(codeOf(() => encodeCommand({ type: 'put', key: 'k', value: cyclic as never }))).toBe(
      'INVALID_ARGUMENT',
    );
  });

  it('refuses values over valueBytesMax and batches over batchOpsMax', () => {
    const big = new Uint8Array(valueBytesMax + 1);
    expect(codeOf(() => encodeCommand({ type: 'put', key: 'k', value: big }))).toBe(
      'VALUE_TOO_LARGE',
    );
    expect(
      codeOf(() => encodeCommand({ type: 'put', key: 'k', value: 'x'.repeat(valueBytesMax) })),
    ).toBe('VALUE_TOO_LARGE');
    const ops = Array.from({ length: 1025 }, () => ({ type: 'delete' as const, key: 'k' }));
    expect(codeOf(() => encodeCommand({ type: 'batch', ops }))).toBe('INVALID_ARGUMENT');
  });

  it('refuses bad incr, cas, session and range arguments', () => {
    const bad: Command[] = [
      { type: 'incr', key: 'k', by: Number.NaN },
      { type: 'incr', key: 'k', by: '1' as never },
      { type: 'cas', key: 'k', expected: { version: -1 }, value: 1 },
      { type: 'cas', key: 'k', expected: {} as never, value: 1 },
      { type: 'put', key: 'k', value: 1, session: { id: '', seq: 1, time: 0 } },
      { type: 'put', key: 'k', value: 1, session: { id: 's', seq: 0, time: 0 } },
      { type: 'shardRange', hashLow: 5, hashHigh: 5 },
      { type: 'exec', name: '', key: 'k' },
      { type: 'exec', name: 'x', key: 'k', args: { f: () => 1 } as never },
      { type: 'bogus' } as never,
    ];
    for (const command of bad) {
      expect(codeOf(() => encodeCommand(command))).toBe('INVALID_ARGUMENT');
    }
  });
});

describe('undecodable entries', () => {
  it('become INVALID_ARGUMENT results and still advance the applied index', () => {
    const state = openState();
    const garbage = [
      new Uint8Array([0xc1]),
      new Uint8Array([0x93, 0x02, 0x01, 0xc0]),
      encodeCommand({ type: 'noop' }).slice(0, 1),
    ];
    const results = state.applyBatch(
      garbage.map((data, i) => ({ shard: 1, index: i + 1, term: 1, data })),
    );
    for (const result of results) expect(result).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(state.appliedIndex(1)).toBe(3);
  });

  it('an empty entry (a new leader no-op) and a ConfChange entry are no-ops', () => {
    const state = openState();
    const results = state.applyBatch([
      { shard: 1, index: 1, term: 2, data: new Uint8Array() },
      { shard: 1, index: 2, term: 2, data: new Uint8Array([1, 2]), type: 2 },
    ]);
    expect(results).toEqual([{ type: 'noop' }, { type: 'noop' }]);
    expect(state.applied(1)).toEqual({ index: 2, term: 2 });
  });
});

describe('results', () => {
  it('round-trip through their encoding', () => {
    const results = [
      { type: 'incr', value: 2n ** 70n, version: 3 },
      { type: 'exec', value: { d: new Date(5), b: Buffer.from([1]) } },
      { type: 'batch', ok: false, failedOp: 1, failure: { type: 'cas', ok: false, version: 0 } },
    ] as const;
    for (const result of results) expect(decodeResult(encodeResult(result))).toEqual(result);
  });
});
