/**
 * Suite `cluster`: three `flotilla serve` processes on loopback, 64 shards of three replicas,
 * driven through `Flotilla.connect` from this process. Every acknowledged write is fsynced on a
 * quorum. Rows: `write/<clients>c/cluster` and `read/<clients>c/cluster` (100-byte values,
 * linearizable reads) with throughput and latency percentiles, and `failover/cluster`: the time
 * from SIGKILL of the node leading the most shards until a write to each of its shards succeeds
 * (p50/p99 over those shards).
 *
 * "Clients" are concurrent callers, each issuing its next request when the previous one
 * returned; every 32 of them share one `Flotilla.connect` (one connection per node).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RemoteStore } from '../../shards/client/remote.js';
import { Flotilla } from '../../shards/index.js';
import { evenRanges, keyHash, rangeIndexOf } from '../../shards/partition.js';
import { freePorts } from '../../test/support/free-ports.js';
import { type BenchRow, type BenchSuite, percentile, runClosedLoop } from '../harness.js';

const shards = 64;
const valueBytes = 100;
const keySpace = 100_000;
const clientCounts = [64, 256];
const callersPerConnect = 32;
const secret = 'the cluster bench secret, long enough';
const readyTimeoutMs = 30_000;

const flotillaBin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'flotilla.js');

function keyOf(caller: number, n: number): string {
  return `key-${(caller * 7919 + n * 104_729) % keySpace}`;
}

/** One `flotilla serve` child process. */
class NodeProcess {
  private output = '';
  private exited = false;

  private constructor(
    readonly id: number,
    readonly child: ChildProcess,
  ) {
    child.stdout?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString('utf8');
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString('utf8');
    });
    child.on('exit', () => {
      this.exited = true;
    });
  }

  /** Starts node `id` of the cluster in `configPath`, with its data under `dir`. */
  static start(id: number, configPath: string, dir: string): NodeProcess {
    const args = [flotillaBin, 'serve', '--config', configPath, '--node', String(id)];
    const child = spawn(process.execPath, [...args, '--data', join(dir, `node-${id}`)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new NodeProcess(id, child);
  }

  /** Resolves once the node printed its ready line; rejects with its output if it exits. */
  async ready(): Promise<void> {
    const deadline = Date.now() + readyTimeoutMs;
    while (!this.output.includes(`node ${this.id} ready`)) {
      if (this.exited || Date.now() > deadline) {
        throw new Error(`node ${this.id} did not start:\n${this.output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Sends `signal` and waits for the process to end. */
  async stop(signal: NodeJS.Signals): Promise<void> {
    if (this.exited) return;
    const ended = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill(signal);
    await ended;
  }
}

/** Writes cluster.json and its secret file; returns the config path and the client endpoints. */
async function writeConfig(dir: string): Promise<{ path: string; endpoints: string[] }> {
  const ports = await freePorts(6);
  const nodes = [1, 2, 3].map((id) => ({
    id,
    raft: `127.0.0.1:${ports[id - 1]}`,
    client: `127.0.0.1:${ports[id + 2]}`,
  }));
  writeFileSync(join(dir, 'secret'), secret);
  const path = join(dir, 'cluster.json');
  const config = { clusterId: 'bench', secretFile: 'secret', shards, replicas: 3, nodes };
  writeFileSync(path, JSON.stringify(config));
  return { path, endpoints: nodes.map((n) => n.client) };
}

/** Writes every key once, so that reads find values and every shard has a leader. */
async function preload(db: RemoteStore, value: Uint8Array): Promise<void> {
  const batch = 2_000;
  for (let i = 0; i < keySpace; i += batch) {
    const writes: Promise<number>[] = [];
    for (let k = i; k < Math.min(keySpace, i + batch); k++) writes.push(db.put(`key-${k}`, value));
    await Promise.all(writes);
  }
}

async function loadRows(
  endpoints: string[],
  durationMs: number,
  value: Uint8Array,
): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const clients of clientCounts) {
    const connects = Math.ceil(clients / callersPerConnect);
    const stores = await Promise.all(
      Array.from({ length: connects }, () => Flotilla.connect(endpoints, { secret })),
    );
    const storeOf = (caller: number) => stores[caller % connects]!;
    const note = `${connects} connects, ${shards} shards x 3 replicas`;
    try {
      rows.push({
        ...(await runClosedLoop({
          name: `write/${clients}c/cluster`,
          callers: clients,
          durationMs,
          bytesPerOp: valueBytes,
          op: (caller, n) => storeOf(caller).put(keyOf(caller, n), value),
        })),
        note,
      });
      rows.push({
        ...(await runClosedLoop({
          name: `read/${clients}c/cluster`,
          callers: clients,
          durationMs,
          bytesPerOp: valueBytes,
          op: (caller, n) => storeOf(caller).get(keyOf(caller, n)),
        })),
        note: `${note}, linearizable`,
      });
    } finally {
      for (const s of stores) await s.close();
    }
  }
  return rows;
}

/** SIGKILLs the node leading the most shards; times the first write to each of its shards. */
async function failoverRow(db: RemoteStore, procs: NodeProcess[], value: Uint8Array) {
  const map = db.shardMap();
  const led = new Map<number, number[]>();
  for (const s of map.shards) led.set(s.leader, [...(led.get(s.leader) ?? []), s.id]);
  const [victim, victimShards] = [...led].sort((a, b) => b[1].length - a[1].length)[0]!;
  const starts = evenRanges(shards).map((r) => r.start);
  const keys = victimShards.map((shard) => {
    for (let i = 0; ; i++) {
      const key = `failover-${shard}-${i}`;
      if (rangeIndexOf(starts, keyHash(Buffer.from(key))) + 1 === shard) return key;
    }
  });
  const t0 = performance.now();
  await procs.find((p) => p.id === victim)!.stop('SIGKILL');
  const resumedUs = await Promise.all(
    keys.map(async (key) => {
      await db.put(key, value);
      return (performance.now() - t0) * 1000;
    }),
  );
  return {
    name: 'failover/cluster',
    opsPerSec: 0,
    bytesPerSec: 0,
    p50Us: percentile(Float64Array.from(resumedUs), 50),
    p99Us: percentile(Float64Array.from(resumedUs), 99),
    samples: resumedUs.length,
    note: `SIGKILL of node ${victim}, leader of ${victimShards.length} shards`,
  };
}

const suite: BenchSuite = {
  name: 'cluster',
  description: 'three flotilla serve processes on loopback through Flotilla.connect',
  async run(ctx) {
    const durationMs = ctx.quick ? 2_000 : 10_000;
    const { path, endpoints } = await writeConfig(ctx.scratchDir);
    const procs = [1, 2, 3].map((id) => NodeProcess.start(id, path, ctx.scratchDir));
    const value = new Uint8Array(valueBytes).fill(7);
    try {
      await Promise.all(procs.map((p) => p.ready()));
      ctx.log('three nodes ready; preloading');
      const db = await Flotilla.connect(endpoints, { secret, timeoutMs: 30_000 });
      try {
        await preload(db, value);
        const rows = await loadRows(endpoints, durationMs, value);
        ctx.log('failover');
        rows.push(await failoverRow(db, procs, value));
        return rows;
      } finally {
        await db.close();
      }
    } finally {
      await Promise.all(procs.map((p) => p.stop('SIGTERM')));
    }
  },
};

export default suite;
