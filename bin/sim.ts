#!/usr/bin/env node
/**
 * sim: the deterministic cluster simulator (test/support/sim/) from the command line.
 *
 *   npm run sim -- --seeds 500
 *   npm run sim -- --seed 42 --history h.jsonl      (also: SEED=42 npm run sim)
 *
 * See test/support/sim/cli.ts for every flag.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { runSimCli } from '../test/support/sim/cli.js';

const invokedAs = process.argv[1];
if (invokedAs !== undefined && import.meta.url === pathToFileURL(realpathSync(invokedAs)).href) {
  process.exitCode = await runSimCli(
    process.argv.slice(2),
    (line) => {
      console.log(line);
    },
    process.env,
  );
}
