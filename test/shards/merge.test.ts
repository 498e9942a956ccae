import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareBytes, mergeSortedAsync } from '../../shards/merge.js';

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of it) out.push(v);
  return out;
}

describe('mergeSortedAsync', () => {
  it('yields the sorted union of sorted sources', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(fc.integer({ min: -50, max: 50 }))), async (lists) => {
        const sources = lists.map((l) => [...l].sort((a, b) => a - b));
        const merged = await collect(mergeSortedAsync(sources, (a, b) => a - b));
        expect(merged).toEqual(lists.flat().sort((a, b) => a - b));
      }),
    );
  });

  it('merges in reverse when the comparison is reversed', async () => {
    const merged = await collect(mergeSortedAsync([[9, 5, 1], [8, 2], []], (a, b) => b - a));
    expect(merged).toEqual([9, 8, 5, 2, 1]);
  });

  it('pulls lazily and closes every source when the consumer stops early', async () => {
    let pulled = 0;
    let closed = 0;
    async function* source(values: number[]) {
      try {
        for (const v of values) {
          pulled++;
          yield v;
        }
      } finally {
        closed++;
      }
    }
    const merged = mergeSortedAsync([source([1, 3, 5, 7]), source([2, 4, 6, 8])], (a, b) => a - b);
    const taken: number[] = [];
    for await (const v of merged) {
      taken.push(v);
      if (taken.length === 3) break;
    }
    expect(taken).toEqual([1, 2, 3]);
    expect(pulled).toBeLessThanOrEqual(5);
    expect(closed).toBe(2);
  });

  it('orders keys byte-wise', () => {
    const a = Uint8Array.of(1, 2);
    const b = Uint8Array.of(1, 2, 0);
    const c = Uint8Array.of(2);
    expect([c, b, a].sort(compareBytes)).toEqual([a, b, c]);
  });
});
