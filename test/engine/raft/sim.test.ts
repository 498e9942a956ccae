/**
 * Seeded simulation of the Raft core (test/support/raft-sim.ts): hundreds of chaos runs, each
 * checking safety on every Ready and liveness after healing. A failing seed is printed; replay it
 * with `SEED=<n> npx vitest run test/engine/raft/sim.test.ts` (SIM_SEEDS and SIM_TURNS change the
 * number of seeds and the chaos length).
 */
import { describe, expect, it } from 'vitest';
import { runSimulation, simOptionsForSeed } from '../../support/raft-sim.js';

const replay = process.env.SEED;
const seedCount = Number(process.env.SIM_SEEDS ?? 600);
const turns = process.env.SIM_TURNS === undefined ? undefined : Number(process.env.SIM_TURNS);
const seeds =
  replay !== undefined ? [Number(replay)] : Array.from({ length: seedCount }, (_, k) => k + 1);
/** Seeds per test case, so that no single case nears the test timeout on a loaded machine. */
const chunk = 50;

function runSeed(seed: number): number {
  const options = simOptionsForSeed(seed, turns);
  try {
    return runSimulation(options).applied.reduce((a, b) => a + b, 0);
  } catch (err) {
    const shape = JSON.stringify(options);
    const replayTurns = turns === undefined ? '' : ` SIM_TURNS=${turns}`;
    throw new Error(
      `seed ${seed} failed (${shape}): ${(err as Error).message}\n` +
        `replay: SEED=${seed}${replayTurns} npx vitest run test/engine/raft/sim.test.ts`,
      { cause: err },
    );
  }
}

describe('Raft simulation', () => {
  for (let start = 0; start < seeds.length; start += chunk) {
    const batch = seeds.slice(start, start + chunk);
    const name = `keeps every safety invariant and recovers liveness, seeds ${batch[0]}..${batch[batch.length - 1]}`;
    it(name, () => {
      let applied = 0;
      for (const seed of batch) applied += runSeed(seed);
      expect(applied).toBeGreaterThan(batch.length * 10);
    });
  }
});
