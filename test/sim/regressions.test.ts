/**
 * Seeds that once failed, kept as regression tests (each note says what broke and where).
 */
import { describe, expect, it } from 'vitest';
import { failureReport } from '../support/sim/cli.js';
import { optionsForSeed } from '../support/sim/options.js';
import { runSeed } from '../support/sim/run.js';

const seeds: { seed: number; what: string }[] = [
  {
    seed: 84,
    what:
      'engine: a membership change proposed by a new leader at an index where a proposal of ' +
      'an older term was still awaited hit an assertion instead of failing the old one DROPPED',
  },
  {
    seed: 5214,
    what:
      'engine: a replica that crashed after installing a snapshot but before its log recorded ' +
      'the marker refused to start (state ahead of log); it now restarts its log from it',
  },
  {
    seed: 783,
    what:
      'engine: the host applied a committed entry early, as already durable, although this ' +
      "turn's write was replacing the follower's conflicting entry at that index; a crash " +
      'then left the state ahead of a log holding the old entry',
  },
];

describe('simulator regressions', () => {
  for (const { seed, what } of seeds) {
    it(`seed ${seed}: ${what}`, async () => {
      const result = await runSeed(optionsForSeed(seed));
      expect(result.ok, failureReport(result, [], 40).join('\n')).toBe(true);
    }, 120_000);
  }
});
