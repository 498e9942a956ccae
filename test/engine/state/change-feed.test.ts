import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFlotillaError } from '../../../engine/errors.js';
import {
  changeBlockCacheBytesMax,
  changesReadMax,
  changeTrimBlocksMax,
} from '../../../engine/limits.js';
import type { Change } from '../../../engine/state/change-feed.js';
import type { KvState } from '../../../engine/state/kv-state.js';
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

  it('keeps a bounded tail and says COMPACTED to a cursor behind it', () => {
    const state = openState({ limits: { changesMax: 3 } });
    const f = new ShardFeeder(state, 1);
    for (let i = 0; i < 10; i++) f.apply({ type: 'put', key: `k${i}`, value: i });
    expect(compactedError(() => state.changes(1, 0))).toBe('COMPACTED');
    expect(compactedError(() => state.changes(1, 6))).toBe('COMPACTED');
    expect(state.changes(1, 7).map((c) => c.index)).toEqual([8, 9, 10]);
    expect(state.changes(1, 10)).toEqual([]);
  });

  it('trims whole entries, so a cursor never lands inside one', () => {
    const state = openState({ limits: { changesMax: 3 } });
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

  it('bounds the feed per node; a trimmed block compacts its shards to their index in it', () => {
    const state = openState({ limits: { changesMax: 4 } });
    const puts = (shard: number, from: number, n: number) =>
      Array.from({ length: n }, (_, k) =>
        entry(shard, from + k, { type: 'put', key: `k${from + k}`, value: from + k }),
      );
    state.applyBatch([...puts(1, 1, 3), ...puts(2, 1, 1)]);
    expect(state.changes(1, 1, 1).map((c) => c.index)).toEqual([2]);
    state.applyBatch(puts(3, 1, 2));
    // Six changes are over the bound (4; its slack 4 >> 3 is 0): the oldest block goes whole,
    // and with it shard 1's changes up to 3 and shard 2's up to 1.
    expect(compactedError(() => state.changes(1, 2))).toBe('COMPACTED');
    expect(compactedError(() => state.changes(2, 0))).toBe('COMPACTED');
    expect(state.changes(1, 3)).toEqual([]);
    expect(state.changes(2, 1)).toEqual([]);
    expect(state.changes(3, 0).map((c) => c.index)).toEqual([1, 2]);
    state.applyBatch([...puts(1, 4, 1), ...puts(3, 3, 1)]);
    expect(state.changes(1, 3).map((c) => c.index)).toEqual([4]);
    expect(state.changes(3, 0).map((c) => c.index)).toEqual([1, 2, 3]);
  });

  it('keeps the newest block even when it alone is over the bound', () => {
    const state = openState({ limits: { changesMax: 2 } });
    const puts = (shard: number, from: number, n: number) =>
      Array.from({ length: n }, (_, k) =>
        entry(shard, from + k, { type: 'put', key: 'k', value: k }),
      );
    state.applyBatch(puts(1, 1, 2));
    state.applyBatch([...puts(1, 3, 3), ...puts(2, 1, 2)]);
    expect(compactedError(() => state.changes(1, 1))).toBe('COMPACTED');
    expect(state.changes(1, 2).map((c) => c.index)).toEqual([3, 4, 5]);
    expect(state.changes(2, 0).map((c) => c.index)).toEqual([1, 2]);
  });

  it('bounds the feed by bytes as well', () => {
    const state = openState({ limits: { changeBytesMax: 2500 } });
    const f = new ShardFeeder(state, 1);
    for (let i = 0; i < 5; i++) f.apply({ type: 'put', key: 'k', value: new Uint8Array(1000) });
    expect(state.changes(1, 3).map((c) => c.index)).toEqual([4, 5]);
    expect(compactedError(() => state.changes(1, 2))).toBe('COMPACTED');
  });

  it('trims at most changeTrimBlocksMax blocks per transaction, the rest later', async () => {
    const dir = tempDir();
    const blocks = changeTrimBlocksMax + 100;
    const state = openState({ dir });
    const f = new ShardFeeder(state, 1);
    for (let i = 0; i < blocks; i++) f.apply({ type: 'put', key: 'k', value: i });
    await closeState(state);
    // Reopened with a much lower bound, the node trims its backlog over two transactions.
    const reopened = openState({ dir, limits: { changesMax: 8 } });
    const g = new ShardFeeder(reopened, 1);
    g.apply({ type: 'put', key: 'k', value: -1 });
    expect(compactedError(() => reopened.changes(1, changeTrimBlocksMax - 1))).toBe('COMPACTED');
    expect(reopened.changes(1, changeTrimBlocksMax)).toHaveLength(blocks + 1 - changeTrimBlocksMax);
    g.apply({ type: 'put', key: 'k', value: -2 });
    const last = blocks + 2;
    expect(compactedError(() => reopened.changes(1, last - 9))).toBe('COMPACTED');
    const kept = reopened.changes(1, last - 8).map((c) => c.index);
    expect(kept).toEqual(Array.from({ length: 8 }, (_, k) => last - 7 + k));
  });

  it('reads blocks larger in all than the block cache, in order, again and again', () => {
    const state = openState();
    const f = new ShardFeeder(state, 1);
    const blocks = Math.ceil(changeBlockCacheBytesMax / 900_000) + 2;
    for (let i = 0; i < blocks; i++) {
      state.applyBatch([
        entry(2, i + 1, { type: 'put', key: 'small', value: i }),
        entry(1, i + 1, { type: 'put', key: 'big', value: new Uint8Array(900_000).fill(i) }),
      ]);
    }
    f.apply({ type: 'delete', key: 'big' });
    for (let pass = 0; pass < 2; pass++) {
      const read = state.changes(1, 0);
      expect(read.map((c) => c.index)).toEqual(Array.from({ length: blocks + 1 }, (_, k) => k + 1));
      for (const [i, c] of read.slice(0, blocks).entries()) {
        expect((c.value as Uint8Array).every((byte) => byte === i)).toBe(true);
      }
      expect(read[blocks]!.type).toBe('delete');
      expect(state.changes(2, blocks - 1).map((c) => c.value)).toEqual([blocks - 1]);
    }
  });

  it('a batch that aborts leaves the feed as it was, for later blocks and trims', async () => {
    const dir = tempDir();
    const state = openState({ dir, limits: { changesMax: 2 } });
    const f = new ShardFeeder(state, 1);
    f.apply({ type: 'put', key: 'a', value: 1 });
    const gap = [
      entry(2, 1, { type: 'put', key: 'b', value: 1 }),
      entry(1, 2, { type: 'put', key: 'a', value: 2 }),
      entry(1, 9, { type: 'put', key: 'a', value: 9 }),
    ];
    expect(() => state.applyBatch(gap)).toThrow();
    for (let i = 2; i <= 5; i++) f.apply({ type: 'put', key: 'a', value: i });
    expect(state.changes(1, 3).map((c) => c.value)).toEqual([4, 5]);
    expect(state.changes(2, 0)).toEqual([]);
    await closeState(state);
    const reopened = openState({ dir, limits: { changesMax: 2 } });
    new ShardFeeder(reopened, 1).apply({ type: 'put', key: 'a', value: 6 });
    expect(compactedError(() => reopened.changes(1, 3))).toBe('COMPACTED');
    expect(reopened.changes(1, 4).map((c) => c.value)).toEqual([5, 6]);
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

  it('a shard dropped and created again reads only its new history, even reopened', async () => {
    const dir = tempDir();
    const state = openState({ dir, limits: { changesMax: 4 } });
    state.applyBatch([
      entry(1, 1, { type: 'put', key: 'a', value: 'old' }),
      entry(2, 1, { type: 'put', key: 'z', value: 'gone' }),
    ]);
    state.applyBatch([entry(1, 2, { type: 'put', key: 'b', value: 'old' })]);
    expect(state.changes(1, 0)).toHaveLength(2);
    state.dropShard(1);
    state.dropShard(2);
    expect(state.changes(1, 0)).toEqual([]);
    state.applyBatch([entry(1, 1, { type: 'put', key: 'a', value: 'new' })]);
    expect(brief(state.changes(1, 0))).toEqual([[1, 1, 'a', 'put', 'new', 1]]);
    // Six records: the oldest block goes. It held shard 1's old history (not its compacted
    // index now) and dropped shard 2 (which stays dropped).
    const pair = [
      { type: 'put' as const, key: 'x', value: 1 },
      { type: 'put' as const, key: 'y', value: 2 },
    ];
    state.applyBatch([entry(3, 1, { type: 'batch', ops: pair })]);
    expect(brief(state.changes(1, 0))).toEqual([[1, 1, 'a', 'put', 'new', 1]]);
    expect(state.shards()).toEqual([1, 3]);
    expect(state.changes(2, 0)).toEqual([]);
    await closeState(state);
    const reopened = openState({ dir, limits: { changesMax: 4 } });
    expect(brief(reopened.changes(1, 0))).toEqual([[1, 1, 'a', 'put', 'new', 1]]);
    expect(reopened.changes(3, 0)).toHaveLength(2);
  });

  it('a shard reads only what it applied after a snapshot install, even reopened', async () => {
    const source = openState();
    const from = new ShardFeeder(source, 1);
    for (let i = 1; i <= 5; i++) from.apply({ type: 'put', key: `s${i}`, value: 'source' });
    const dir = tempDir();
    const target = openState({ dir });
    const old = new ShardFeeder(target, 1);
    for (let i = 1; i <= 8; i++) old.apply({ type: 'put', key: `o${i}`, value: 'replaced' });
    expect(target.changes(1, 0)).toHaveLength(8);
    await target.installSnapshot(1, source.exportSnapshot(1));
    expect(compactedError(() => target.changes(1, 4))).toBe('COMPACTED');
    expect(target.changes(1, 5)).toEqual([]);
    const next = new ShardFeeder(target, 1);
    next.apply({ type: 'put', key: 'n6', value: 'new' });
    next.apply({ type: 'put', key: 'n7', value: 'new' });
    const expected = [
      [1, 6, 'n6', 'put', 'new', 6],
      [1, 7, 'n7', 'put', 'new', 7],
    ];
    expect(brief(target.changes(1, 5))).toEqual(expected);
    await closeState(target);
    const reopened = openState({ dir });
    expect(compactedError(() => reopened.changes(1, 4))).toBe('COMPACTED');
    expect(brief(reopened.changes(1, 5))).toEqual(expected);
  });
});

/** One entry of the model: `puts` keys written to `shard`. */
interface ModelEntry {
  shard: number;
  puts: number;
}

/** The feed as the model sees it: blocks of (shard, index, key) records, and compacted indexes. */
class FeedModel {
  readonly blocks: { shard: number; index: number; key: string }[][] = [];
  readonly compacted = new Map<number, number>();
  readonly applied = new Map<number, number>();

  constructor(private readonly max: number) {}

  /** One apply transaction; returns its entries as items. */
  apply(batch: readonly ModelEntry[]) {
    const block: { shard: number; index: number; key: string }[] = [];
    const items = batch.map(({ shard, puts }) => {
      const index = (this.applied.get(shard) ?? 0) + 1;
      this.applied.set(shard, index);
      const ops = Array.from({ length: puts }, (_, k) => {
        block.push({ shard, index, key: `k${k}` });
        return { type: 'put' as const, key: `k${k}`, value: `${shard}:${index}:${k}` };
      });
      return entry(shard, index, { type: 'batch', ops });
    });
    this.blocks.push(block);
    // Trimmed when over by an eighth, back to the bound, oldest blocks first, never the newest.
    let total = this.blocks.reduce((n, b) => n + b.length, 0);
    if (total > this.max + (this.max >> 3)) {
      while (total > this.max && this.blocks.length > 1) {
        const gone = this.blocks.shift()!;
        total -= gone.length;
        for (const r of gone) {
          this.compacted.set(r.shard, Math.max(this.compacted.get(r.shard) ?? 0, r.index));
        }
      }
    }
    return items;
  }

  /** What a read of `shard` after `cursor` returns (by index and key), or 'COMPACTED'. */
  read(shard: number, cursor: number, limit: number): string[] | 'COMPACTED' {
    if (cursor < (this.compacted.get(shard) ?? 0)) return 'COMPACTED';
    const records = this.blocks.flat().filter((r) => r.shard === shard && r.index > cursor);
    return records.slice(0, limit).map((r) => `${r.index}/${r.key}`);
  }
}

/** Every read of every shard, at every cursor and a few limits, agrees with the model. */
function expectModel(state: KvState, model: FeedModel): void {
  for (const [shard, applied] of model.applied) {
    for (let cursor = 0; cursor <= applied + 1; cursor++) {
      for (const limit of [1, 3, changesReadMax]) {
        let got: string[] | 'COMPACTED';
        try {
          got = state.changes(shard, cursor, limit).map((c) => `${c.index}/${c.key}`);
        } catch (err) {
          if (!isFlotillaError(err, 'COMPACTED')) throw err;
          got = 'COMPACTED';
        }
        expect(got).toEqual(model.read(shard, cursor, limit));
      }
    }
  }
}

describe('change feed reads (against a model)', () => {
  const batchArb = fc.array(
    fc.record({ shard: fc.integer({ min: 1, max: 5 }), puts: fc.integer({ min: 1, max: 3 }) }),
    { minLength: 1, maxLength: 6 },
  );

  it('reads any shard from any cursor across blocks, trims and a reopen', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(batchArb, { minLength: 1, maxLength: 14 }),
        fc.constantFrom(3, 7, 16, 1000),
        fc.nat(14),
        fc.nat(14),
        async (batches, max, readAt, reopenAt) => {
          const dir = tempDir();
          let state = openState({ dir, limits: { changesMax: max } });
          const model = new FeedModel(max);
          for (const [i, batch] of batches.entries()) {
            // A read builds the locator; later batches and trims keep it up to date.
            if (i === readAt) expectModel(state, model);
            if (i === reopenAt) {
              await closeState(state);
              state = openState({ dir, limits: { changesMax: max } });
            }
            state.applyBatch(model.apply(batch));
          }
          expectModel(state, model);
          await closeState(state);
          // Reopened, the locator is rebuilt from the feed alone.
          expectModel(openState({ dir, limits: { changesMax: max } }), model);
        },
      ),
      { numRuns: 40 },
    );
  });
});
