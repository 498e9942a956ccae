/**
 * Seeds 1..50 of the cluster simulator (see test/support/sim/run.ts): each run checks
 * election safety, log matching, committed entries, apply order, exactly-once, no lost write,
 * liveness after healing and linearizability. Replay a failure with `npm run sim -- --seed S`.
 */
import { describe, expect, it } from 'vitest';
import { expectSeedsPass } from './seeds.js';

describe('cluster simulation', () => {
  it('keeps every property over seeds 1..50', async () => {
    const totals = await expectSeedsPass(1, 50);
    expect(totals.profiles.size).toBeGreaterThan(1);
  }, 600_000);
});
