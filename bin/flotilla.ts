#!/usr/bin/env node
/**
 * The `flotilla` command-line tool.
 */
import { Command, InvalidArgumentError } from 'commander';
import { isFlotillaError } from '../engine/errors.js';
import { Flotilla } from '../shards/index.js';
import { runDev } from './dev.js';
import { serve } from './serve.js';
import { runShell, type ShellStore } from './shell.js';

function positiveInt(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

async function shellCommand(options: { dir: string; shards?: number }): Promise<void> {
  const store = await Flotilla.open({ dir: options.dir, shards: options.shards });
  const stop = () => {
    void store.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await runShell(store as ShellStore, {
      banner: `Flotilla embedded store in ${options.dir} (${store.shardCount} shards). Type 'help'.`,
    });
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await store.close();
  }
}

const program = new Command();
program
  .name('flotilla')
  .description('Flotilla: an embeddable, replicated, sharded key-value store');

program
  .command('shell')
  .description('open an embedded store and run the interactive shell (reads stdin when piped)')
  .option('-d, --dir <dir>', 'store directory', './data')
  .option('-s, --shards <n>', 'shards when creating the store', positiveInt)
  .action(shellCommand);

program
  .command('serve')
  .description('run one node of a cluster until SIGINT or SIGTERM')
  .requiredOption('-c, --config <file>', 'the cluster description (cluster.json)')
  .requiredOption('-n, --node <id>', 'which node of the cluster this process is', positiveInt)
  .option('-d, --data <dir>', "the node's data directory (default ./data/node-<id>)")
  .action(serve);

program
  .command('dev')
  .description(
    'start a local cluster of serve processes on loopback and open the shell connected to it',
  )
  .option('-d, --dir <dir>', 'where cluster.json, the secret and node-N data live', './data')
  .option('-n, --nodes <n>', 'nodes of a new dev cluster', positiveInt, 3)
  .option('-s, --shards <n>', 'shards of a new dev cluster', positiveInt, 16)
  .option(
    '-p, --base-port <port>',
    'first Raft port; client ports start 100 above',
    positiveInt,
    7101,
  )
  .action((options: { dir: string; nodes: number; shards: number; basePort: number }) =>
    runDev(options),
  );

program.parseAsync(process.argv).catch((err: unknown) => {
  const code = isFlotillaError(err) ? `${err.code}: ` : '';
  console.error(`flotilla: ${code}${err instanceof Error ? err.message : String(err)}`);
  process.exit(isFlotillaError(err) && err.code === 'CONFIG' ? 2 : 1);
});
