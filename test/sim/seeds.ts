/**
 * Runs a range of simulator seeds for the seed test files (split so that vitest runs them in
 * parallel) and fails with the seed, the run's shape, its last events and the replay command.
 */
import { expect } from 'vitest';
import { failureReport } from '../support/sim/cli.js';
import { optionsForSeed } from '../support/sim/options.js';
import { runSeed, type SimResult } from '../support/sim/run.js';

/** What a range of seeds did in total. */
export interface RangeTotals {
  ops: number;
  unknown: number;
  faults: number;
  snapshots: number;
  moves: number;
  transfers: number;
  profiles: Set<string>;
}

/** Runs seeds [first, first + count) and expects every one to pass. */
export async function expectSeedsPass(first: number, count: number): Promise<RangeTotals> {
  const totals: RangeTotals = {
    ops: 0,
    unknown: 0,
    faults: 0,
    snapshots: 0,
    moves: 0,
    transfers: 0,
    profiles: new Set(),
  };
  for (let seed = first; seed < first + count; seed++) {
    const result: SimResult = await runSeed(optionsForSeed(seed));
    if (!result.ok) throw new Error(failureReport(result, [], 40).join('\n'));
    totals.ops += result.stats.ops;
    totals.unknown += result.stats.unknown;
    totals.faults += result.stats.faults;
    totals.snapshots += result.stats.snapshotsInstalled;
    totals.moves += result.stats.moves;
    totals.transfers += result.stats.transfers;
    totals.profiles.add(result.options.profile);
  }
  // The runs did real work: operations, faults, operations whose outcome was unknown,
  // followers that caught up by snapshot, replicas moved and leaderships handed over.
  expect(totals.ops).toBeGreaterThan(count * 100);
  expect(totals.moves).toBeGreaterThan(0);
  expect(totals.transfers).toBeGreaterThan(0);
  expect(totals.faults).toBeGreaterThan(count * 5);
  expect(totals.unknown).toBeGreaterThan(0);
  expect(totals.snapshots).toBeGreaterThan(0);
  return totals;
}
