#!/usr/bin/env node
/**
 * check-history: is a recorded client history (JSON lines, test/support/history.ts) linearizable?
 *
 *   node dist/bin/check-history.js [--steps N] [--no-minimize] FILE
 *
 * Exit status: 0 linearizable, 1 not linearizable, 2 bad input or usage, 3 inconclusive (a
 * partition's search ran out of steps).
 */
import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { HistoryFormatError, parseHistory } from '../test/support/history.js';
import { checkHistory, formatFailure } from '../test/support/linearizability.js';

const usage = 'usage: check-history [--steps N] [--no-minimize] FILE';

/** Runs the tool on `args` (without node and script), writing lines to `print`; the exit code. */
export function runCheckHistory(args: string[], print: (line: string) => void): number {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (err) {
    print(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const stepsMax = values.steps === undefined ? undefined : Number(values.steps);
  if (
    positionals.length !== 1 ||
    (stepsMax !== undefined && !(Number.isSafeInteger(stepsMax) && stepsMax > 0))
  ) {
    print(usage);
    return 2;
  }
  const file = positionals[0]!;
  let ops: ReturnType<typeof parseHistory>;
  try {
    ops = parseHistory(readFileSync(file, 'utf8'));
  } catch (err) {
    if (!(err instanceof HistoryFormatError) && !isFileError(err)) throw err;
    print(`${file}: ${(err as Error).message}`);
    return 2;
  }
  const result = checkHistory(ops, { stepsMax, minimize: !values['no-minimize'] });
  for (const failure of result.failures) print(formatFailure(failure));
  for (const t of result.timedOut) {
    const keys = t.keys.join(', ');
    print(`keys {${keys}}: no verdict, ${t.ops} ops, search stopped after ${t.steps} steps`);
  }
  const summary = `${ops.length} ops (${result.ignored} ignored), ${result.partitions} partitions`;
  if (result.failures.length > 0) {
    print(`NOT LINEARIZABLE: ${result.failures.length} failing partitions; ${summary}`);
    return 1;
  }
  if (result.timedOut.length > 0) {
    print(`INCONCLUSIVE: ${result.timedOut.length} partitions timed out; ${summary}`);
    return 3;
  }
  print(`linearizable: ${summary}`);
  return 0;
}

function parse(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    options: { steps: { type: 'string' }, 'no-minimize': { type: 'boolean' } },
  });
}

function isFileError(err: unknown): boolean {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

const invokedAs = process.argv[1];
if (invokedAs !== undefined && import.meta.url === pathToFileURL(realpathSync(invokedAs)).href) {
  process.exitCode = runCheckHistory(process.argv.slice(2), (line) => {
    console.log(line);
  });
}
