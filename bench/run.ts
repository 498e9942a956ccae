/**
 * `npm run bench -- [suite...] [--quick] [--json FILE]`: runs tinybench suites from
 * bench/suites/ and prints a table per suite; --json writes one report (or an array of them).
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchReport, type BenchSuite, formatTable, machine } from './harness.js';

const suitesDir = join(dirname(fileURLToPath(import.meta.url)), 'suites');

interface Args {
  suites: string[];
  quick: boolean;
  json?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { suites: [], quick: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') args.quick = true;
    else if (a === '--json') {
      const file = argv[++i];
      if (file === undefined) throw new Error('--json needs a file name');
      args.json = file;
    } else if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
    else args.suites.push(a);
  }
  return args;
}

function availableSuites(): string[] {
  return readdirSync(suitesDir)
    .filter((f) => f.endsWith('.js'))
    .map((f) => f.slice(0, -3))
    .sort();
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const available = availableSuites();
  const chosen = args.suites.length > 0 ? args.suites : available;
  for (const name of chosen) {
    if (!available.includes(name)) {
      throw new Error(`unknown suite '${name}'; available: ${available.join(', ')}`);
    }
  }
  const reports: BenchReport[] = [];
  for (const name of chosen) {
    const mod = (await import(join(suitesDir, `${name}.js`))) as { default: BenchSuite };
    const suite = mod.default;
    const scratchDir = mkdtempSync(
      join(process.env.BENCH_DIR ?? tmpdir(), `flotilla-bench-${name}-`),
    );
    console.log(`\n# ${suite.name}: ${suite.description}${args.quick ? ' (quick)' : ''}`);
    try {
      const results = await suite.run({
        quick: args.quick,
        scratchDir,
        log: (line) => console.error(`  ${line}`),
      });
      console.log(formatTable(results));
      reports.push({
        suite: suite.name,
        ...machine(),
        quick: args.quick,
        date: new Date().toISOString(),
        results,
      });
    } finally {
      rmSync(scratchDir, { recursive: true, force: true });
    }
  }
  if (args.json !== undefined) {
    const doc = reports.length === 1 ? reports[0] : reports;
    writeFileSync(args.json, `${JSON.stringify(doc, null, 2)}\n`);
    console.log(`\nwrote ${args.json}`);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
