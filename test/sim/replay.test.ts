/**
 * A seed replays exactly: the same events (trace digest), the same history and the same verdict;
 * and the command line runs, reports and writes histories the checker reads.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseHistory } from '../support/history.js';
import { checkHistory } from '../support/linearizability.js';
import { runSimCli } from '../support/sim/cli.js';
import { optionsForSeed } from '../support/sim/options.js';
import { runSeed } from '../support/sim/run.js';

describe('replay', () => {
  it('runs a seed twice to the same events, history and verdict', async () => {
    const a = await runSeed(optionsForSeed(5));
    const b = await runSeed(optionsForSeed(5));
    expect(a.ok).toBe(true);
    expect(b.digest).toBe(a.digest);
    expect(b.history).toEqual(a.history);
    expect(b.stats).toEqual(a.stats);
    const other = await runSeed(optionsForSeed(6));
    expect(other.digest).not.toBe(a.digest);
  }, 120_000);
});

describe('sim command line', () => {
  it('runs one seed, prints its trace and writes its history for the checker', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sim-cli-'));
    try {
      const file = join(dir, 'history.jsonl');
      const lines: string[] = [];
      const code = await runSimCli(['--seed', '2', '--history', file], (l) => lines.push(l));
      expect(code).toBe(0);
      expect(lines.some((l) => l.startsWith('seed 2 ok:'))).toBe(true);
      expect(lines.some((l) => l.includes('chaos starts'))).toBe(true);
      const ops = parseHistory(readFileSync(file, 'utf8'));
      expect(ops.length).toBeGreaterThan(100);
      expect(checkHistory(ops).ok).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('stops at the first failing seed, prints its replay command, and it replays', async () => {
    const lines: string[] = [];
    const args = ['--seeds', '200', '--plant', 'commitByCountingPreviousTerm'];
    expect(await runSimCli(args, (l) => lines.push(l))).toBe(1);
    const replay = lines.find((l) => l.startsWith('replay: '));
    const match = /^replay: npm run sim -- --seed (\d+) --plant commitByCountingPreviousTerm$/.exec(
      replay ?? '',
    );
    expect(match, lines.join('\n')).not.toBeNull();
    const options = optionsForSeed(Number(match![1]), {
      unsafe: { commitByCountingPreviousTerm: true },
    });
    const a = await runSeed(options);
    const b = await runSeed(options);
    expect(a.failure).toBeDefined();
    expect(b.failure).toEqual(a.failure);
    expect(b.digest).toBe(a.digest);
    expect(lines).toContain(`trace ${a.digest}, last events:`);
  }, 300_000);

  it('refuses bad usage with exit status 2', async () => {
    const lines: string[] = [];
    expect(await runSimCli(['--nodes', '9'], (l) => lines.push(l))).toBe(2);
    expect(await runSimCli(['--plant', 'nothing'], (l) => lines.push(l))).toBe(2);
    expect(lines.join('\n')).toContain('usage: sim');
  });
});
