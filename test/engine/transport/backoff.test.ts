import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../../engine/random.js';
import { Backoff } from '../../../engine/transport/backoff.js';
import { BoundedQueue } from '../../../engine/transport/bounded-queue.js';

describe('Backoff', () => {
  it('doubles its ceiling per failure up to the maximum, with delays in [ceiling/2, ceiling)', () => {
    const b = new Backoff(50, 1000, new SeededRandom(1));
    const ceilings = [50, 100, 200, 400, 800, 1000, 1000, 1000];
    for (const ceiling of ceilings) {
      const d = b.next();
      expect(d).toBeGreaterThanOrEqual(ceiling / 2);
      expect(d).toBeLessThan(ceiling);
    }
    expect(b.attempts).toBe(ceilings.length);
  });

  it('starts over after a reset', () => {
    const b = new Backoff(50, 1000, new SeededRandom(2));
    for (let i = 0; i < 10; i++) b.next();
    b.reset();
    expect(b.next()).toBeLessThan(50);
  });

  it('jitters: two peers with different seeds do not redial in lockstep', () => {
    const a = new Backoff(100, 5000, new SeededRandom(1));
    const b = new Backoff(100, 5000, new SeededRandom(2));
    const same = Array.from({ length: 10 }, () => a.next() === b.next()).filter(Boolean);
    expect(same.length).toBeLessThan(3);
  });
});

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
