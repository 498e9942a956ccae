import { describe, expect, it } from 'vitest';
import { isFlotillaError } from '../../../engine/errors.js';
import type { Change } from '../../../engine/state/change-feed.js';
import { closeState, entry, openState, ShardFeeder, tempDir } from './helpers.js';

const brief = (changes: readonly Change[]) =>
  changes.map((c) => [c.shard, c.index, c.key.toString(), c.type, c.value, c.version]);

function compactedError(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isFlotillaError(err, 'COMPACTED') ? err.code : String(err);
  }
  return undefined;
}

describe('change feed', () => {
  it('records every write in commit order, per shard, with op order inside an entry', () => {
    const state = openState();
    state.applyBatch([
      entry(1, 1, { type: 'put', key: 'a', value: 1 }),
      entry(2, 1, { type: 'put', key: 'z', value: 'other shard' }),
      entry(1, 2, {
        type: 'batch',
        ops: [
          { type: 'incr', key: 'a', by: 1 },
          { type: 'put', key: 'b', value: 'x' },
          { type: 'delete', key: 'a' },
          { type: 'delete', key: 'never' },
        ],
      }),
      entry(1, 3, { type: 'cas', key: 'b', expected: { version: 99 }, value: 'no' }),
    ]);
    expect(brief(state.changes(1, 0))).toEqual([
      [1, 1, 'a', 'put', 1, 1],
      [1, 2, 'a', 'put', 2, 2],
      [1, 2, 'b', 'put', 'x', 2],
      [1, 2, 'a', 'delete', undefined, 2],
    ]);
    expect(brief(state.changes(1, 1, 2))).toEqual([
      [1, 2, 'a', 'put', 2, 2],
      [1, 2, 'b', 'put', 'x', 2],
    ]);
    expect(brief(state.changes(2, 0))).toEqual([[2, 1, 'z', 'put', 'other shard', 1]]);
  });

  it('tells listeners after each batch commits, not for a batch that aborted', () => {
    const state = openState();
    const seen: (readonly Change[])[] = [];
    const stop = state.onChanges((changes) => seen.push(changes));
    state.applyBatch([
      entry(1, 1, { type: 'put', key: 'a', value: 1 }),
      entry(3, 1, { type: 'put', key: 'c', value: 3 }),
    ]);
    expect(() => state.applyBatch([entry(1, 5, { type: 'put', key: 'a', value: 2 })])).toThrow();
    state.applyBatch([entry(1, 2, { type: 'delete', key: 'a' })]);
    stop();
    state.applyBatch([entry(1, 3, { type: 'put', key: 'a', value: 3 })]);
    expect(seen.map(brief)).toEqual([
      [
        [1, 1, 'a', 'put', 1, 1],
        [3, 1, 'c', 'put', 3, 1],
      ],
      [[1, 2, 'a', 'delete', undefined, 2]],
    ]);
  });

  it('keeps a bounded tail per shard and says COMPACTED to a cursor behind it', () => {
    const state = openState({ limits: { changesPerShardMax: 3 } });
    const f = new ShardFeeder(state, 1);
    for (let i = 0; i < 10; i++) f.apply({ type: 'put', key: `k${i}`, value: i });
    expect(compactedError(() => state.changes(1, 0))).toBe('COMPACTED');
    expect(compactedError(() => state.changes(1, 6))).toBe('COMPACTED');
    expect(state.changes(1, 7).map((c) => c.index)).toEqual([8, 9, 10]);
    expect(state.changes(1, 10)).toEqual([]);
  });

  it('trims whole entries, so a cursor never lands inside one', () => {
    const state = openState({ limits: { changesPerShardMax: 3 } });
    const f = new ShardFeeder(state, 1);
    for (let i = 0; i < 3; i++) {
      f.apply({
        type: 'batch',
        ops: [
          { type: 'put', key: 'x', value: i },
          { type: 'put', key: 'y', value: i },
        ],
      });
    }
    expect(compactedError(() => state.changes(1, 1))).toBe('COMPACTED');
    expect(state.changes(1, 2).map((c) => [c.index, c.key.toString()])).toEqual([
      [3, 'x'],
      [3, 'y'],
    ]);
  });

  it('keeps the changes of one apply batch together: read from inside it, trimmed whole', () => {
    const state = openState({ limits: { changesPerShardMax: 4 } });
    const batch = (from: number, n: number) =>
      Array.from({ length: n }, (_, k) =>
        entry(1, from + k, { type: 'put', key: `k${from + k}`, value: from + k }),
      );
    state.applyBatch([...batch(1, 3), entry(2, 1, { type: 'put', key: 'z', value: 0 })]);
    expect(state.changes(1, 1, 1).map((c) => c.index)).toEqual([2]);
    // Six changes are over the bound (4; its slack 4 >> 3 is 0): the older batch goes whole.
    state.applyBatch(batch(4, 3));
    expect(compactedError(() => state.changes(1, 2))).toBe('COMPACTED');
    expect(state.changes(1, 4, 1).map((c) => c.index)).toEqual([5]);
    expect(state.changes(1, 3).map((c) => c.index)).toEqual([4, 5, 6]);
    state.applyBatch(batch(7, 1));
    expect(state.changes(1, 3).map((c) => c.index)).toEqual([4, 5, 6, 7]);
    expect(state.changes(2, 0).map((c) => c.key.toString())).toEqual(['z']);
  });

  it('keeps the newest batch even when it alone is over the bound', () => {
    const state = openState({ limits: { changesPerShardMax: 2 } });
    const puts = (from: number, n: number) =>
      Array.from({ length: n }, (_, k) => entry(1, from + k, { type: 'put', key: 'k', value: k }));
    state.applyBatch(puts(1, 2));
    state.applyBatch(puts(3, 5));
    expect(compactedError(() => state.changes(1, 1))).toBe('COMPACTED');
    expect(state.changes(1, 2).map((c) => c.index)).toEqual([3, 4, 5, 6, 7]);
  });

  it('bounds the tail by bytes as well', () => {
    const state = openState({ limits: { changeBytesPerShardMax: 2500 } });
    const f = new ShardFeeder(state, 1);
    for (let i = 0; i < 5; i++) f.apply({ type: 'put', key: 'k', value: new Uint8Array(1000) });
    expect(state.changes(1, 3).map((c) => c.index)).toEqual([4, 5]);
    expect(compactedError(() => state.changes(1, 2))).toBe('COMPACTED');
  });

  it('resumes from a cursor across close and reopen', async () => {
    const dir = tempDir();
    const state = openState({ dir });
    const f = new ShardFeeder(state, 5);
    f.apply({ type: 'put', key: 'a', value: 1 });
    f.apply({ type: 'put', key: 'b', value: 2 });
    const cursor = state.changes(5, 0).at(-1)!.index;
    await closeState(state);
    const reopened = openState({ dir });
    new ShardFeeder(reopened, 5).apply({ type: 'put', key: 'c', value: 3 });
    expect(brief(reopened.changes(5, cursor))).toEqual([[5, 3, 'c', 'put', 3, 3]]);
  });
});
