/**
 * Suite `store`: the embedded store against raw LMDB with the same durability.
 * Rows: `<op>/<callers>c/<shards>s/flotilla` and `<op>/<callers>c/lmdb`.
 */
import { join } from 'node:path';
import { open } from 'lmdb';
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

const suite: BenchSuite = {
  name: 'store',
  description: 'embedded store put/get/incr vs raw LMDB with the same durability',
  async run(ctx) {
    const callers = [1, 64, 1024];
    const durationMs = ctx.quick ? 300 : 3000;
    ctx.log('raw lmdb baseline');
    return rawLmdbRows(ctx.scratchDir, callers, durationMs);
  },
};

export default suite;
