/**
 * Short chaos runs (`npm test` builds dist first) of three `flotilla serve` processes under a
 * client load, four clients with a long deadline and two with a short one; each run heals and
 * checks the history, acknowledged writes and replica convergence. `npm run chaos` runs longer.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { expect, it } from 'vitest';
import { type ChaosOptions, type ChaosSummary, formatSummary, runChaos } from './chaos-run.js';

const cli = resolve('dist/bin/flotilla.js');

async function run(options: Omit<ChaosOptions, 'cli' | 'log'>) {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first`);
  const log: string[] = [];
  const summary: ChaosSummary = await runChaos({ ...options, cli, log: (l) => log.push(l) });
  return { summary, report: [...log, ...formatSummary(summary)].join('\n') };
}

function expectClean(summary: ChaosSummary, report: string): void {
  expect(summary.ok, report).toBe(true);
  expect(summary.lostWrites, report).toEqual([]);
  expect(summary.linearizable, report).toBe(true);
  expect(summary.checkerTimeouts, report).toBe(0);
  expect(summary.shardsConverged, report).toBe(4);
  expect(summary.acked, report).toBeGreaterThan(100);
}

it('survives kills and freezes of real processes with a linearizable history', async () => {
  const { summary, report } = await run({
    durationMs: 15_000,
    cyclesMin: 3,
    nodes: 3,
    seed: 7,
    faultMsMax: 2_000,
    nemeses: ['kill', 'freeze'],
  });
  expectClean(summary, report);
  expect(summary.kills, report).toBeGreaterThanOrEqual(3);
}, 120_000);

// Seed 19 draws, in order: split (cut), one-way blackhole, pair (cut), isolate (blackhole).
it('survives cut and blackholed links between real processes', async () => {
  const { summary, report } = await run({
    durationMs: 15_000,
    nodes: 3,
    seed: 19,
    faultMsMax: 2_000,
    nemeses: ['partition'],
  });
  expectClean(summary, report);
  const kinds = Object.keys(summary.partitions);
  expect(kinds.length, report).toBeGreaterThanOrEqual(3);
  expect(kinds, report).toContain('one-way blackhole');
  const network = summary.network!;
  expect(network.refused + network.reset, report).toBeGreaterThan(0);
  expect(network.droppedBytes, report).toBeGreaterThan(0);
}, 120_000);
