/**
 * Property: random appends, truncations, compactions and snapshots over many groups, then a
 * power loss at a random moment (fault fs). The reopened log equals the model after some prefix
 * of the calls: at least every call whose promise had resolved, at most every call made. The
 * recovered log then keeps working: more calls, a clean reopen, and it still equals the model.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { command, pace, scenario, seen } from './crash-scenario.js';

describe('crash recovery (property)', () => {
  it('recovers exactly a prefix of the calls that includes every acknowledged one', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        fc.constantFrom(0, 2048, 1 << 20),
        fc.array(fc.record({ cmd: command, pace }), { minLength: 10, maxLength: 150, size: 'max' }),
        fc.integer({ min: 0, max: 16 }),
        fc.array(command, { maxLength: 8 }),
        scenario,
      ),
      { numRuns: 400 },
    );
    expect(seen.rewrittenBytes).toBeGreaterThan(0);
    expect(seen.deletions).toBeGreaterThan(0);
    expect(seen.crashesWithPending).toBeGreaterThan(10);
    expect(seen.lostCalls).toBeGreaterThan(0);
  });
});
