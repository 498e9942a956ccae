/**
 * Suite `store`: the embedded store against raw LMDB with the same durability.
 * Rows: `<op>/<callers>c/<shards>s/flotilla` and `<op>/<callers>c/lmdb`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { open } from 'lmdb';
import { Flotilla } from '../../shards/index.js';
import { type BenchRow, type BenchSuite, runClosedLoop } from '../harness.js';

const valueBytes = 100;
const keySpace = 100_000;

function keyOf(caller: number, n: number): string {
  return `key-${(caller * 7919 + n) % keySpace}`;
}

async function rawLmdbRows(
  dir: string,
  callers: number[],
  durationMs: number,
): Promise<BenchRow[]> {
  // overlappingSync off: a put's promise resolves only after its commit is synced to disk.
  const db = open<Uint8Array, string>({
    path: join(dir, 'raw-lmdb'),
    overlappingSync: false,
    encoding: 'binary',
  });
  const value = new Uint8Array(valueBytes).fill(7);
  const rows: BenchRow[] = [];
  try {
    for (let i = 0; i < keySpace; i++) db.put(`key-${i}`, value);
    await db.flushed;
    for (const c of callers) {
      rows.push(
        await runClosedLoop({
          name: `put/${c}c/lmdb`,
          callers: c,
          durationMs,
          bytesPerOp: valueBytes,
          op: (caller, n) => db.put(keyOf(caller, n), value),
        }),
      );
      rows.push(
        await runClosedLoop({
          name: `get/${c}c/lmdb`,
          callers: c,
          durationMs,
          bytesPerOp: valueBytes,
          op: async (caller, n) => db.get(keyOf(caller, n)),
        }),
      );
    }
  } finally {
    await db.close();
  }
  return rows;
}

async function flotillaRows(
  dir: string,
  shards: number,
  callers: number[],
  durationMs: number,
): Promise<BenchRow[]> {
  const db = await Flotilla.open({ dir: join(dir, `flotilla-${shards}`), shards });
  const value = new Uint8Array(valueBytes).fill(7);
  const rows: BenchRow[] = [];
  try {
    const preload = 10_000;
    for (let i = 0; i < keySpace; i += preload) {
      const upTo = Math.min(keySpace, i + preload);
      const writes: Promise<number>[] = [];
      for (let k = i; k < upTo; k++) writes.push(db.put(`key-${k}`, value));
      await Promise.all(writes);
    }
    for (const c of callers) {
      for (const op of ['put', 'get', 'incr'] as const) {
        rows.push(
          await runClosedLoop({
            name: `${op}/${c}c/${shards}s/flotilla`,
            callers: c,
            durationMs,
            bytesPerOp: op === 'incr' ? 0 : valueBytes,
            op:
              op === 'put'
                ? (caller, n) => db.put(keyOf(caller, n), value)
                : op === 'get'
                  ? (caller, n) => db.get(keyOf(caller, n))
                  : (caller, n) => db.incr(`counter-${(caller * 31 + n) % 1024}`),
          }),
        );
      }
    }
  } finally {
    await db.close();
  }
  return rows;
}

function ratioNotes(rows: BenchRow[]): void {
  const byName = new Map(rows.map((r) => [r.name, r]));
  for (const r of rows) {
    const [op, callers, shards, impl] = r.name.split('/');
    if (impl !== 'flotilla' || (op !== 'put' && op !== 'get')) continue;
    const raw = byName.get(`${op}/${callers}/lmdb`);
    if (raw === undefined) continue;
    r.note = `${(r.opsPerSec / raw.opsPerSec).toFixed(2)}x raw lmdb (${shards})`;
  }
}

/**
 * Opens a store of `shards` shards in a fresh process, then idles: reports the time to open (the
 * first write included) and the resident memory after idling. A child process keeps the
 * measurement free of this process's heap.
 */
function openAndIdleRow(dir: string, shards: number, idleMs: number): BenchRow {
  const index = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'shards', 'index.js');
  const script = `
    const { Flotilla } = await import(${JSON.stringify(index)});
    const t0 = performance.now();
    const db = await Flotilla.open({ dir: ${JSON.stringify(dir)}, shards: ${shards} });
    await db.put('k', 1);
    const openMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, ${idleMs}));
    globalThis.gc?.();
    const rss = process.memoryUsage().rss;
    await db.close();
    console.log(JSON.stringify({ openMs, rss }));`;
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
  const { openMs, rss } = JSON.parse(out.trim().split('\n').at(-1)!) as {
    openMs: number;
    rss: number;
  };
  return {
    name: `open/${shards}s/flotilla`,
    opsPerSec: 1000 / openMs,
    bytesPerSec: 0,
    p50Us: openMs * 1000,
    p99Us: openMs * 1000,
    samples: 1,
    note: `open ${openMs.toFixed(0)} ms; RSS after ${idleMs} ms idle ${(rss / 2 ** 20).toFixed(0)} MiB`,
  };
}

const suite: BenchSuite = {
  name: 'store',
  description: 'embedded store put/get/incr vs raw LMDB with the same durability',
  async run(ctx) {
    const callers = [1, 64, 1024];
    const durationMs = ctx.quick ? 300 : 3000;
    ctx.log('raw lmdb baseline');
    const rows = await rawLmdbRows(ctx.scratchDir, callers, durationMs);
    for (const shards of [16, 256]) {
      ctx.log(`flotilla, ${shards} shards`);
      rows.push(...(await flotillaRows(ctx.scratchDir, shards, callers, durationMs)));
    }
    ratioNotes(rows);
    ctx.log('open 10,000 shards');
    const openDir = mkdtempSync(join(ctx.scratchDir, 'open-'));
    rows.push(openAndIdleRow(openDir, 10_000, ctx.quick ? 1000 : 5000));
    return rows;
  },
};

export default suite;
