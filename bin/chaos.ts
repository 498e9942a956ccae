#!/usr/bin/env node
/**
 * chaos: a chaos run against real `flotilla serve` processes (see test/chaos/chaos-run.ts).
 *
 *   npm run chaos -- --minutes M [--cycles C] [--nodes 3..5] [--seed S] [--history FILE]
 *                    [--nemesis kill,freeze,partition] [--hasty-ms MS] [--hasty-clients H]
 *
 * (`npm run chaos` builds first, then runs `node dist/bin/chaos.js`.) Faults go on for M minutes
 * and, with --cycles, until at least C kill/restart cycles are done. --nemesis picks the fault
 * loops (default all three; `partition` routes node-to-node traffic through proxies it cuts and
 * blackholes). Besides four clients with a 15 s deadline, H clients (default 2) use a deadline
 * of MS milliseconds (default 600), so that partitions leave writes with unknown outcomes. Prints the faults as
 * they happen and a summary; exit status 0 when every check passed, 1 when one failed, 2 on bad
 * usage.
 */
import { realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  allNemeses,
  formatSummary,
  hastyTimeoutMsDefault,
  type Nemesis,
  runChaos,
} from '../test/chaos/chaos-run.js';

const usage =
  'usage: chaos --minutes M [--cycles C] [--nodes 3..5] [--seed S] [--history FILE] [--quiet]\n' +
  '             [--nemesis kill,freeze,partition] [--hasty-ms MS] [--hasty-clients 0..8]';

/** The nemeses named in `text` ("kill,partition"), or undefined when one is unknown or none. */
function parseNemeses(text: string | undefined): Nemesis[] | undefined {
  if (text === undefined) return [...allNemeses];
  const names = text.split(',').map((n) => n.trim());
  const known = new Set<string>(allNemeses);
  if (names.length === 0 || names.some((n) => !known.has(n))) return undefined;
  return [...new Set(names)] as Nemesis[];
}

/** Runs the tool on `args` (without node and script); resolves with the exit code. */
export async function runChaosCli(args: string[], print: (line: string) => void): Promise<number> {
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse(args).values;
  } catch (err) {
    print(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  const minutes = Number(values.minutes);
  const nodes = Number(values.nodes ?? '3');
  const cycles = Number(values.cycles ?? '0');
  const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
  const nemeses = parseNemeses(values.nemesis);
  const hastyMs = Number(values['hasty-ms'] ?? hastyTimeoutMsDefault);
  const hastyClients = Number(values['hasty-clients'] ?? '2');
  const valid =
    nemeses !== undefined &&
    Number.isFinite(hastyMs) &&
    hastyMs > 0 &&
    Number.isInteger(hastyClients) &&
    hastyClients >= 0 &&
    hastyClients <= 8 &&
    Number.isFinite(minutes) &&
    minutes > 0 &&
    Number.isInteger(nodes) &&
    nodes >= 3 &&
    nodes <= 5 &&
    Number.isSafeInteger(cycles) &&
    cycles >= 0 &&
    Number.isSafeInteger(seed);
  if (!valid) {
    print(usage);
    return 2;
  }
  const started = Date.now();
  const stamp = (line: string) => print(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${line}`);
  const summary = await runChaos({
    cli: join(dirname(fileURLToPath(import.meta.url)), 'flotilla.js'),
    durationMs: Math.round(minutes * 60_000),
    nodes,
    seed,
    cyclesMin: cycles,
    nemeses,
    hastyTimeoutMs: hastyMs,
    hastyClients,
    historyFile: values.history,
    log: values.quiet === true ? undefined : stamp,
  });
  for (const line of formatSummary(summary)) print(line);
  return summary.ok ? 0 : 1;
}

function parse(args: string[]) {
  return parseArgs({
    args,
    options: {
      minutes: { type: 'string' },
      nodes: { type: 'string' },
      cycles: { type: 'string' },
      seed: { type: 'string' },
      history: { type: 'string' },
      quiet: { type: 'boolean' },
      nemesis: { type: 'string' },
      'hasty-ms': { type: 'string' },
      'hasty-clients': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
}

const invokedAs = process.argv[1];
if (invokedAs !== undefined && import.meta.url === pathToFileURL(realpathSync(invokedAs)).href) {
  process.exitCode = await runChaosCli(process.argv.slice(2), (line) => console.log(line));
}
