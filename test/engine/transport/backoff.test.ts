import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../../engine/random.js';
import { Backoff } from '../../../engine/transport/backoff.js';

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
