/**
 * `flotilla dev` (what `npm start` runs): a local cluster of `flotilla serve` child processes on
 * loopback, with the interactive shell connected to it through `Flotilla.connect`.
 *
 * The first run writes `<dir>/cluster.json` and a random `<dir>/secret`; later runs reuse them and
 * the nodes' data in `<dir>/node-N`. Leadership changes are printed as the nodes report them, and
 * the shell gains `nodes`, `shards`, `leader <key>`, `kill <node>` and `restart <node>`. Ctrl-C
 * (or `quit`) stops every child.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { FlotillaError } from '../engine/errors.js';
import { loadClusterConfig } from '../shards/cluster-config.js';
import { Flotilla } from '../shards/index.js';
import { runShell, type ShellCommands, type ShellStore } from './shell.js';

/** Options of the dev command. */
export interface DevOptions {
  dir: string;
  nodes: number;
  shards: number;
  basePort: number;
}

/** Milliseconds a node may take to print its ready line. */
const nodeStartMs = 30_000;

interface Child {
  id: number;
  process: ChildProcess | undefined;
  state: 'starting' | 'up' | 'killed' | 'exited';
}

/** Writes cluster.json and the secret on the first run; returns the config path. */
function ensureCluster(options: DevOptions): string {
  mkdirSync(options.dir, { recursive: true });
  const configPath = join(options.dir, 'cluster.json');
  if (existsSync(configPath)) return configPath;
  const secretPath = join(options.dir, 'secret');
  if (!existsSync(secretPath)) {
    writeFileSync(secretPath, `${randomBytes(24).toString('hex')}\n`, { mode: 0o600 });
  }
  const nodes = Array.from({ length: options.nodes }, (_, i) => ({
    id: i + 1,
    raft: `127.0.0.1:${options.basePort + i}`,
    client: `127.0.0.1:${options.basePort + 100 + i}`,
  }));
  const config = {
    clusterId: 'dev',
    secretFile: 'secret',
    shards: options.shards,
    replicas: Math.min(3, options.nodes),
    nodes,
  };
  writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`);
  return configPath;
}

/** Supervises the serve processes of the dev cluster. */
class DevCluster {
  readonly children = new Map<number, Child>();

  constructor(
    private readonly cli: string,
    private readonly configPath: string,
    private readonly dir: string,
    private readonly print: (line: string) => void,
  ) {}

  /** Starts node `id` and resolves once it is ready. */
  start(id: number): Promise<void> {
    const child: Child = { id, process: undefined, state: 'starting' };
    this.children.set(id, child);
    const args = [this.cli, 'serve', '--config', this.configPath, '--node', String(id)];
    args.push('--data', join(this.dir, `node-${id}`));
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.process = proc;
    return new Promise<void>((resolveReady, reject) => {
      const timer = setTimeout(() => {
        reject(
          new FlotillaError('UNAVAILABLE', `node ${id} did not start within ${nodeStartMs} ms`),
        );
      }, nodeStartMs);
      const lines = createInterface({ input: proc.stdout! });
      lines.on('line', (line) => {
        if (child.state === 'starting' && line.includes(' ready:')) {
          child.state = 'up';
          clearTimeout(timer);
          resolveReady();
        }
        this.print(`[node ${id}] ${line}`);
      });
      createInterface({ input: proc.stderr! }).on('line', (line) => {
        this.print(`[node ${id}] ${line}`);
      });
      proc.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (child.state === 'starting') {
          reject(new FlotillaError('UNAVAILABLE', `node ${id} exited before it was ready`));
        }
        if (child.state !== 'killed') child.state = 'exited';
        this.print(`[node ${id}] exited (${signal ?? `code ${code}`})`);
      });
    });
  }

  kill(id: number): string {
    const child = this.children.get(id);
    if (child?.process === undefined || child.state !== 'up') return `node ${id} is not running`;
    child.state = 'killed';
    child.process.kill('SIGKILL');
    return `node ${id} killed (SIGKILL)`;
  }

  /** Stops every child with SIGTERM and waits for them. */
  async stopAll(): Promise<void> {
    const exits: Promise<unknown>[] = [];
    for (const child of this.children.values()) {
      const proc = child.process;
      if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) continue;
      exits.push(new Promise((r) => proc.once('exit', r)));
      proc.kill('SIGTERM');
    }
    await Promise.all(exits);
  }
}

function shellCommands(
  cluster: DevCluster,
  store: Awaited<ReturnType<typeof Flotilla.connect>>,
): ShellCommands {
  const nodeArg = (args: string[]) => {
    const id = Number(args[0]);
    if (!cluster.children.has(id)) throw new Error(`no node ${args[0] ?? ''}; try 'nodes'`);
    return id;
  };
  return {
    nodes: {
      usage: 'nodes',
      help: 'the nodes of the dev cluster and their processes',
      run: async () =>
        [...cluster.children.values()]
          .map((c) => `node ${c.id}: ${c.state}${c.process?.pid ? ` (pid ${c.process.pid})` : ''}`)
          .join('\n'),
    },
    shards: {
      usage: 'shards',
      help: 'every shard: hash range, replicas and leader',
      run: async () => {
        await store.status().catch(() => undefined);
        return store
          .shardMap()
          .shards.map(
            (s) =>
              `shard ${s.id}: [${s.hashLow}, ${s.hashHigh}) replicas ${s.replicas.join(',')} ` +
              `leader ${s.leader || '?'}`,
          )
          .join('\n');
      },
    },
    leader: {
      usage: 'leader <key>',
      help: "the shard of a key and that shard's leader",
      run: async (args) => {
        if (args[0] === undefined) throw new Error('usage: leader <key>');
        const map = store.shardMap();
        const shard = store.shardOf(args[0]);
        const info = map.shards.find((s) => s.id === shard);
        return `key ${JSON.stringify(args[0])}: shard ${shard}, leader ${info?.leader || '?'}`;
      },
    },
    kill: {
      usage: 'kill <node>',
      help: 'SIGKILL a node (watch the failover)',
      run: async (args) => cluster.kill(nodeArg(args)),
    },
    restart: {
      usage: 'restart <node>',
      help: 'start a killed node again from its data',
      run: async (args) => {
        const id = nodeArg(args);
        const child = cluster.children.get(id)!;
        if (child.state === 'up' || child.state === 'starting') return `node ${id} is running`;
        await cluster.start(id);
        return `node ${id} restarted`;
      },
    },
  };
}

/** Runs the dev cluster and its shell until quit, end of input or Ctrl-C. */
export async function runDev(options: DevOptions): Promise<void> {
  const dir = resolve(options.dir);
  const configPath = ensureCluster({ ...options, dir });
  const config = loadClusterConfig(configPath);
  const cli = process.argv[1]!;
  const cluster = new DevCluster(cli, configPath, dir, (line) => process.stdout.write(`${line}\n`));
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= cluster.stopAll();
    return stopping;
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    await Promise.all(config.nodes.map((n) => cluster.start(n.id)));
    const secret = readFileSync(config.secretFile, 'utf8').trim();
    const endpoints = config.nodes.map((n) => n.client);
    const store = await Flotilla.connect(endpoints, { secret, clusterId: config.clusterId });
    try {
      await runShell(store as unknown as ShellStore, {
        extra: shellCommands(cluster, store),
        banner:
          `Flotilla dev cluster: ${config.nodes.length} nodes, ${config.shards} shards, ` +
          `data in ${dir}. Clients: ${endpoints.join(' ')}. Type 'help'.`,
      });
    } finally {
      await store.close();
    }
  } finally {
    await stop();
  }
}
