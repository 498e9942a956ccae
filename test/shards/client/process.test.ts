/**
 * Flotilla.connect against three real `flotilla serve` processes on loopback (`npm test` builds
 * dist first): a client writes under load, the leader of the hottest shard is SIGKILLed, writes
 * go on, the node restarts, and no acknowledged write is lost nor any increment applied twice.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { FlotillaError } from '../../../engine/errors.js';
import type { RemoteStore } from '../../../shards/client/remote.js';
import { Flotilla } from '../../../shards/index.js';
import { evenRanges, keyHash, rangeIndexOf } from '../../../shards/partition.js';
import {
  clusterJson,
  freePorts,
  sleep,
  TempDirs,
  testSecret,
  writeCluster,
} from '../cluster-support.js';

const cli = resolve('dist/bin/flotilla.js');
const dirs = new TempDirs();
afterAll(() => dirs.cleanup());
beforeAll(() => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first`);
});

/** One `flotilla serve` process. */
class Serve {
  private output = '';
  readonly exited: Promise<unknown>;
  private readonly child: ChildProcess;

  constructor(config: string, node: number, dir: string) {
    const args = [cli, 'serve', '--config', config, '--node', String(node), '--data', dir];
    this.child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (chunk: Buffer) => {
      this.output += chunk.toString();
    });
    this.child.stderr!.on('data', (chunk: Buffer) => {
      this.output += chunk.toString();
    });
    this.exited = new Promise((done) => this.child.once('exit', done));
  }

  async ready(node: number): Promise<void> {
    for (let i = 0; !this.output.includes(`node ${node} ready`); i++) {
      if (i > 1_000) throw new Error(`node ${node} did not start:\n${this.output}`);
      await sleep(20);
    }
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    this.child.kill(signal);
    await this.exited;
  }
}

const running = new Set<Serve>();
const clients: RemoteStore[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await Promise.all([...running].map((p) => p.kill('SIGKILL')));
  running.clear();
});

it('keeps acknowledged writes, and increments once, through a SIGKILL of a leader', async () => {
  const root = dirs.make('flotilla-client-serve-');
  const raw = clusterJson(await freePorts(6), 8);
  const { path } = writeCluster(root, raw);
  const start = async (id: number) => {
    const p = new Serve(path, id, join(root, `node-${id}`));
    running.add(p);
    await p.ready(id);
    return p;
  };
  const procs = new Map<number, Serve>();
  for (const id of [1, 2, 3]) procs.set(id, await start(id));
  const db = await Flotilla.connect(
    raw.nodes.map((n) => n.client),
    { secret: testSecret, timeoutMs: 20_000 },
  );
  clients.push(db);

  const acked = new Map<string, number>();
  const counters = { acked: 0, unknown: 0 };
  let stop = false;
  const writer = async (w: number) => {
    for (let i = 0; !stop; i++) {
      const key = `w${w}-${i % 50}`;
      await db.put(key, i);
      acked.set(key, i);
      try {
        await db.incr('counter');
        counters.acked++;
      } catch (err) {
        if (!(err instanceof FlotillaError && err.details.outcome === 'unknown')) throw err;
        counters.unknown++;
      }
    }
  };
  const load = Promise.all(Array.from({ length: 16 }, (_, w) => writer(w)));
  // Marked handled: should an expectation below fail, closing the client rejects the writers
  // after the test; when it passes, `await load` still reports any writer's error.
  load.catch(() => undefined);
  // The leader of the counter's shard: increments in flight there are retried at the next
  // leader, which must recognise the ones already applied. Wait for the load to be under way
  // and the client to know that leader (the shards elect after the processes start, slower on
  // a loaded machine).
  const counterShard = rangeIndexOf(
    evenRanges(8).map((r) => r.start),
    keyHash(Buffer.from('counter')),
  );
  const leaderOfCounter = () => db.shardMap().shards[counterShard]!.leader;
  await sleep(800);
  for (let i = 0; i < 150 && (counters.acked === 0 || leaderOfCounter() === 0); i++) {
    await sleep(100);
  }
  const victim = leaderOfCounter();
  expect(victim).toBeGreaterThan(0);
  await procs.get(victim)!.kill('SIGKILL');
  running.delete(procs.get(victim)!);
  const before = counters.acked;
  await sleep(2_500);
  expect(counters.acked).toBeGreaterThan(before);
  procs.set(victim, await start(victim));
  await sleep(500);
  stop = true;
  await load;

  for (const [key, value] of acked) expect(await db.get(key)).toBe(value);
  const counter = (await db.get('counter')) as number;
  expect(counter).toBeGreaterThanOrEqual(counters.acked);
  expect(counter).toBeLessThanOrEqual(counters.acked + counters.unknown);
});
