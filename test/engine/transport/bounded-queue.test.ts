import { describe, expect, it } from 'vitest';
import { BoundedQueue } from '../../../engine/transport/bounded-queue.js';

describe('BoundedQueue', () => {
  it('accepts a batch whole or refuses it whole, by items and by bytes', () => {
    const q = new BoundedQueue<string>(3, 100);
    expect(q.offer(['a', 'b'], [10, 10])).toBe(true);
    expect(q.offer(['c', 'd'], [10, 10])).toBe(false);
    expect(q.offer(['c'], [81])).toBe(false);
    expect(q.offer(['c'], [80])).toBe(true);
    expect([q.length, q.bytes]).toEqual([3, 100]);
  });

  it('takes the longest prefix within a byte budget, but always one item', () => {
    const q = new BoundedQueue<number>(10, 2000);
    q.offer([1, 2, 3, 4], [300, 300, 300, 300]);
    expect(q.take(650, 10)).toEqual([1, 2]);
    expect(q.take(10, 10)).toEqual([3]);
    expect(q.take(1000, 10)).toEqual([4]);
    expect(q.take(1000, 10)).toEqual([]);
    expect([q.length, q.bytes]).toEqual([0, 0]);
  });

  it('keeps FIFO order across many offers and takes, and counts what clear drops', () => {
    const q = new BoundedQueue<number>(5000, 1e9);
    const out: number[] = [];
    for (let i = 0; i < 3000; i++) {
      q.offer([i], [1]);
      if (i % 3 === 0) out.push(...q.take(2, 2));
    }
    out.push(...q.take(1e9, 1500));
    expect(out).toEqual(out.map((_, i) => i));
    expect(q.clear()).toBe(3000 - out.length);
    expect(q.length).toBe(0);
  });
});
