/**
 * The checker is checked: with a Raft bug planted (RaftConfig.unsafe, test only), the simulator
 * must catch it within 200 seeds, and the failing seed must pass without the bug.
 */
import { describe, expect, it } from 'vitest';
import type { RaftUnsafe } from '../../engine/raft/ready.js';
import type { FailureKind } from '../support/sim/failure.js';
import { optionsForSeed } from '../support/sim/options.js';
import { runSeed } from '../support/sim/run.js';

const seedsMax = 200;

/** Runs seeds 1, 2, ... with `bug` planted until one fails; returns that seed and its failure. */
async function firstFailure(bug: keyof RaftUnsafe) {
  for (let seed = 1; seed <= seedsMax; seed++) {
    const result = await runSeed(optionsForSeed(seed, { unsafe: { [bug]: true } }));
    if (!result.ok) return { seed, kind: result.failure!.kind, message: result.failure!.message };
  }
  return undefined;
}

const safetyKinds: FailureKind[] = [
  'committed-unsafe',
  'committed-changed',
  'leader-completeness',
  'log-matching',
  'apply-order',
  'state-divergence',
  'lost-write',
  'linearizability',
];

describe('planted bugs', () => {
  it('catches a leader that commits an entry of an earlier term by counting replicas', async () => {
    const found = await firstFailure('commitByCountingPreviousTerm');
    expect(found, `not caught within ${seedsMax} seeds`).toBeDefined();
    expect(safetyKinds).toContain(found!.kind);
    const clean = await runSeed(optionsForSeed(found!.seed));
    expect(clean.failure).toBeUndefined();
  }, 600_000);

  it('catches a leader that answers reads without confirming its leadership', async () => {
    const found = await firstFailure('readWithoutQuorum');
    expect(found, `not caught within ${seedsMax} seeds`).toBeDefined();
    expect(found!.kind).toBe('linearizability');
    const clean = await runSeed(optionsForSeed(found!.seed));
    expect(clean.failure).toBeUndefined();
  }, 600_000);
});
