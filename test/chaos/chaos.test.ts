/**
 * A short chaos run (`npm test` builds dist first): three `flotilla serve` processes under a
 * client load, SIGKILLs with restarts and SIGSTOP freezes for 15 seconds and at least three
 * kill/restart cycles, then heal and check the history, acknowledged writes and replica
 * convergence. `npm run chaos` runs longer.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { expect, it } from 'vitest';
import { formatSummary, runChaos } from './chaos-run.js';

const cli = resolve('dist/bin/flotilla.js');

it('survives kills and freezes of real processes with a linearizable history', async () => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first`);
  const log: string[] = [];
  const summary = await runChaos({
    cli,
    durationMs: 15_000,
    cyclesMin: 3,
    nodes: 3,
    seed: 7,
    faultMsMax: 2_000,
    log: (line) => log.push(line),
  });
  const report = [...log, ...formatSummary(summary)].join('\n');
  expect(summary.ok, report).toBe(true);
  expect(summary.kills, report).toBeGreaterThanOrEqual(3);
  expect(summary.acked, report).toBeGreaterThan(100);
  expect(summary.checkerTimeouts, report).toBe(0);
  expect(summary.shardsConverged, report).toBe(4);
}, 120_000);
