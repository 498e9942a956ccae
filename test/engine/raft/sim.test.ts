/**
 * Seeded simulation of the Raft core (test/support/raft-sim.ts): hundreds of chaos runs, each
 * checking safety on every Ready and liveness after healing. A failing seed is printed; replay it
 * with `SEED=<n> npx vitest run test/engine/raft/sim.test.ts`.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation, simOptionsForSeed } from '../../support/raft-sim.js';

const replay = process.env.SEED;
const seedCount = Number(process.env.SIM_SEEDS ?? 800);
const turns = process.env.SIM_TURNS === undefined ? undefined : Number(process.env.SIM_TURNS);
const seeds =
  replay !== undefined ? [Number(replay)] : Array.from({ length: seedCount }, (_, k) => k + 1);

describe('Raft simulation', () => {
  it(`keeps every safety invariant and recovers liveness over ${seeds.length} seeds`, () => {
    let applied = 0;
    for (const seed of seeds) {
      const options = simOptionsForSeed(seed, turns);
      try {
        const result = runSimulation(options);
        applied += result.applied.reduce((a, b) => a + b, 0);
      } catch (err) {
        const shape = JSON.stringify(options);
        throw new Error(
          `seed ${seed} failed (${shape}): ${(err as Error).message}\n` +
            `replay: SEED=${seed}${turns === undefined ? '' : ` SIM_TURNS=${turns}`} ` +
            'npx vitest run test/engine/raft/sim.test.ts',
          { cause: err },
        );
      }
    }
    expect(applied).toBeGreaterThan(seeds.length * 10);
  });
});
