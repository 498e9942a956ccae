import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type FlotillaError, isFlotillaError } from '../../engine/errors.js';
import { keyBytesMax, valueBytesMax } from '../../engine/limits.js';
import { Flotilla } from '../../shards/index.js';
import type { EmbeddedStore } from '../../shards/store.js';
import type { Value, WatchEvent } from '../../shards/types.js';

const dirs: string[] = [];
const stores: EmbeddedStore[] = [];

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-store-'));
  dirs.push(dir);
  return dir;
}

async function openStore(dir = tempDir(), shards = 8): Promise<EmbeddedStore> {
  const store = await Flotilla.open({ dir, shards });
  stores.push(store);
  return store;
}

async function closeStore(store: EmbeddedStore): Promise<void> {
  stores.splice(stores.indexOf(store), 1);
  await store.close();
}

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
    return 'ok';
  } catch (err) {
    return isFlotillaError(err) ? err.code : `untyped: ${String(err)}`;
  }
}

async function take<T>(it: AsyncIterator<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  while (out.length < n) {
    const next = await it.next();
    if (next.done) break;
    out.push(next.value);
  }
  return out;
}

describe('the embedded store: single keys', () => {
  it('puts, gets and deletes with versions', async () => {
    const db = await openStore();
    expect(await db.get('missing')).toBeUndefined();
    const v1 = await db.put('a', { n: 1, tags: ['x'] });
    expect(v1).toBeGreaterThan(0);
    expect(await db.get('a')).toEqual({ n: 1, tags: ['x'] });
    const v2 = await db.put('a', 'two');
    expect(v2).toBeGreaterThan(v1);
    expect(await db.getEntry('a')).toEqual({ value: 'two', version: v2 });
    expect(await db.delete('a')).toBe(true);
    expect(await db.delete('a')).toBe(false);
    expect(await db.get('a')).toBeUndefined();
  });

  it('round-trips every kind of value, bytes as bytes', async () => {
    const db = await openStore();
    const values = [
      null,
      true,
      0,
      -1.5,
      2n ** 70n,
      'text',
      new Date(1_700_000_000_000),
      Uint8Array.of(0, 1, 255),
      [1, [2, { three: 3 }]],
      { nested: { deep: [null, 'x'] } },
    ];
    for (const [i, v] of values.entries()) await db.put(`v${i}`, v);
    for (const [i, v] of values.entries()) {
      const got = await db.get(`v${i}`);
      if (v instanceof Uint8Array) expect(Uint8Array.from(got as Uint8Array)).toEqual(v);
      else expect(got).toEqual(v);
    }
  });

  it('accepts byte-array keys as well as strings', async () => {
    const db = await openStore();
    await db.put(Uint8Array.of(0, 1, 2), 'bytes');
    expect(await db.get(Uint8Array.of(0, 1, 2))).toBe('bytes');
    await db.put('é', 'utf8');
    expect(await db.get(Uint8Array.of(0xc3, 0xa9))).toBe('utf8');
  });

  it('compares and sets by version and by value', async () => {
    const db = await openStore();
    expect(await db.cas('k', { version: 0 }, 'first')).toBe(true);
    expect(await db.cas('k', { version: 0 }, 'again')).toBe(false);
    const entry = await db.getEntry('k');
    expect(await db.cas('k', { version: entry!.version }, 'second')).toBe(true);
    expect(await db.cas('k', { version: entry!.version }, 'stale')).toBe(false);
    expect(await db.cas('k', { value: 'second' }, 'third')).toBe(true);
    expect(await db.cas('k', { value: 'nope' }, 'fourth')).toBe(false);
    expect(await db.get('k')).toBe('third');
  });

  it('increments numbers and bigints atomically, and refuses non-numbers', async () => {
    const db = await openStore();
    expect(await db.incr('n')).toBe(1);
    expect(await db.incr('n', 41)).toBe(42);
    expect(await db.incr('big', 2n ** 64n)).toBe(2n ** 64n);
    await db.put('s', 'text');
    expect(await codeOf(db.incr('s'))).toBe('WRONG_TYPE');
    expect(await db.get('s')).toBe('text');
  });

  it('ends 10,000 concurrent increments of one key at exactly 10,000', async () => {
    const db = await openStore();
    await Promise.all(Array.from({ length: 10_000 }, () => db.incr('counter')));
    expect(await db.get('counter')).toBe(10_000);
  });
});

describe('the embedded store: batches and user commands', () => {
  it('applies a batch in one shard atomically', async () => {
    const db = await openStore();
    await db.put('{u1}.balance', 10);
    const results = await db.batch([
      { type: 'put', key: '{u1}.name', value: 'ada' },
      { type: 'incr', key: '{u1}.balance', by: 5 },
      { type: 'delete', key: '{u1}.missing' },
    ]);
    expect(results).toEqual([expect.any(Number), 15, false]);
    expect(await db.get('{u1}.name')).toBe('ada');
  });

  it('applies nothing of a batch when one operation fails', async () => {
    const db = await openStore();
    await db.put('{u2}.a', 1);
    const code = await codeOf(
      db.batch([
        { type: 'put', key: '{u2}.b', value: 2 },
        { type: 'cas', key: '{u2}.a', expected: { value: 999 }, value: 3 },
      ]),
    );
    expect(code).toBe('INVALID_ARGUMENT');
    expect(await db.get('{u2}.b')).toBeUndefined();
    expect(await db.get('{u2}.a')).toBe(1);
  });

  it('refuses a batch across shards with a message about hash tags', async () => {
    const db = await openStore(tempDir(), 64);
    let keys = ['x0', 'x1'];
    for (let i = 2; i < 100; i++) keys = [...keys, `x${i}`];
    try {
      await db.batch(keys.map((key) => ({ type: 'put' as const, key, value: 1 })));
      expect.unreachable('a batch over 100 random keys spans shards');
    } catch (err) {
      expect((err as FlotillaError).code).toBe('INVALID_ARGUMENT');
      expect((err as Error).message).toMatch(/hash tag/);
    }
    expect(await db.get('x0')).toBeUndefined();
  });

  it('runs a user command inside the apply transaction of its shard', async () => {
    const db = await openStore();
    db.defineCommand('transfer', (tx, _key, args): Value => {
      const { from, to, amount } = args as { from: string; to: string; amount: number };
      const balance = (tx.get(from) as number | undefined) ?? 0;
      if (balance < amount) return { ok: false, balance };
      tx.put(from, balance - amount);
      tx.put(to, ((tx.get(to) as number | undefined) ?? 0) + amount);
      return { ok: true };
    });
    await db.put('{bank}.alice', 100);
    const args = { from: '{bank}.alice', to: '{bank}.bob', amount: 30 };
    expect(await db.exec('transfer', '{bank}', args)).toEqual({ ok: true });
    expect(await db.get('{bank}.alice')).toBe(70);
    expect(await db.get('{bank}.bob')).toBe(30);
    expect(await db.exec('transfer', '{bank}', { ...args, amount: 500 })).toEqual({
      ok: false,
      balance: 70,
    });
    expect(await codeOf(db.exec('nope', 'k'))).toBe('INVALID_ARGUMENT');
  });
});

describe('the embedded store: bad input', () => {
  it('rejects bad keys, values and arguments with typed errors and changes nothing', async () => {
    const db = await openStore();
    const bad = db as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    expect(await codeOf(() => bad.put!(undefined, 1))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(() => bad.put!('', 1))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(() => db.put('k'.repeat(keyBytesMax + 1), 1))).toBe('KEY_TOO_LARGE');
    expect(await codeOf(() => db.put('k', 'v'.repeat(valueBytesMax + 1)))).toBe('VALUE_TOO_LARGE');
    expect(await codeOf(() => bad.put!('k', () => 1))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(() => bad.put!('k', undefined))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(() => bad.incr!('k', 'x'))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(() => bad.cas!('k', {}, 1))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(() => db.batch([]))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(() => bad.get!('k', { consistency: 'eventual' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(() => bad.get!(undefined))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(() => bad.getEntry!('\ud800'))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(() => db.get('k'.repeat(keyBytesMax + 1)))).toBe('KEY_TOO_LARGE');
    expect(await codeOf(() => db.get('€'.repeat(1334), { consistency: 'stale' }))).toBe(
      'KEY_TOO_LARGE',
    );
    expect(await db.get('k')).toBeUndefined();
  });

  it('rejects every call after close with CLOSED', async () => {
    const db = await openStore();
    await closeStore(db);
    expect(await codeOf(() => db.get('k'))).toBe('CLOSED');
    expect(await codeOf(() => db.put('k', 1))).toBe('CLOSED');
    await db.close();
  });

  it('refuses to open with a bad shard count or directory', async () => {
    const bad = Flotilla.open as (o: unknown) => Promise<unknown>;
    expect(await codeOf(() => bad({}))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(() => bad({ dir: tempDir(), shards: 0 }))).toBe('INVALID_ARGUMENT');
  });
});

describe('the embedded store: scan', () => {
  it('yields keys in order across shards, with prefix, range, limit and reverse', async () => {
    const db = await openStore(tempDir(), 16);
    const keys = Array.from({ length: 200 }, (_, i) => `item:${String(i).padStart(3, '0')}`);
    await Promise.all(keys.map((k, i) => db.put(k, i)));
    await db.put('other', 'x');
    const all: string[] = [];
    for await (const [k] of db.scan({ prefix: 'item:' })) all.push(k as string);
    expect(all).toEqual(keys);
    const ranged: [unknown, unknown][] = [];
    for await (const kv of db.scan({ start: 'item:010', end: 'item:015' })) ranged.push(kv);
    expect(ranged).toEqual([10, 11, 12, 13, 14].map((i) => [keys[i], i]));
    const last: string[] = [];
    for await (const [k] of db.scan({ prefix: 'item:' }, { reverse: true, limit: 3 })) {
      last.push(k as string);
    }
    expect(last).toEqual(['item:199', 'item:198', 'item:197']);
  });
});

describe('the embedded store: watch', () => {
  it('delivers committed changes after the watch starts, filtered by prefix', async () => {
    const db = await openStore();
    await db.put('w:before', 0);
    const feed = db.watch({ prefix: 'w:' });
    await db.put('w:a', 1);
    await db.put('nope', 2);
    await db.delete('w:a');
    const events = await take(feed, 2);
    expect(events.map((e) => [e.key, e.type, e.value])).toEqual([
      ['w:a', 'put', 1],
      ['w:a', 'delete', undefined],
    ]);
    await feed.return?.();
  });

  it('resumes from a cursor across a restart without gaps or duplicates', async () => {
    const dir = tempDir();
    const db = await openStore(dir);
    const feed = db.watch();
    for (let i = 0; i < 50; i++) await db.put(`k${i}`, i);
    await db.batch([
      { type: 'put', key: '{t}.a', value: 'a' },
      { type: 'put', key: '{t}.b', value: 'b' },
    ]);
    const first = await take(feed, 26);
    const cursor = first.at(-1)!.cursor;
    await feed.return?.();
    await closeStore(db);
    const again = await openStore(dir);
    const resumed = again.watch({ from: cursor });
    const rest: WatchEvent[] = await take(resumed, 26);
    await resumed.return?.();
    const seen = [...first, ...rest].map((e) => e.key).sort();
    const expected = [...Array.from({ length: 50 }, (_, i) => `k${i}`), '{t}.a', '{t}.b'].sort();
    expect(seen).toEqual(expected);
  });

  it('refuses a malformed cursor', async () => {
    const db = await openStore();
    expect(await codeOf(() => db.watch({ from: 'garbage' }))).toBe('INVALID_ARGUMENT');
  });
});

describe('the embedded store: durability', () => {
  it('keeps every acknowledged write across close and reopen', async () => {
    const dir = tempDir();
    const db = await openStore(dir, 4);
    await Promise.all(Array.from({ length: 500 }, (_, i) => db.put(`d${i}`, i)));
    await closeStore(db);
    const again = await openStore(dir, 4);
    for (let i = 0; i < 500; i += 37) expect(await again.get(`d${i}`)).toBe(i);
    expect((await again.status()).keys).toBe(500);
  });

  it('opens a store of 10,000 shards', async () => {
    const db = await openStore(tempDir(), 10_000);
    await db.put('x', 1);
    expect(await db.get('x')).toBe(1);
    expect(db.shardCount).toBe(10_000);
  });
});

describe('the embedded store: crashes and corruption', () => {
  const writer = join(process.cwd(), 'test', 'support', 'crash-writer.mjs');
  const built = existsSync(join(process.cwd(), 'dist', 'shards', 'index.js'));

  it.skipIf(!built)('keeps every acknowledged write after SIGKILL mid-load', async () => {
    const dir = tempDir();
    for (let round = 0; round < 3; round++) {
      const acked = await runUntilKilled(writer, dir, 150 + round * 100);
      const db = await openStore(dir, 8);
      for (const i of acked) expect(await db.get(`w${i}`)).toEqual({ i, pad: 'x'.repeat(64) });
      await closeStore(db);
    }
  });

  it('refuses to open when a log segment is corrupt before its tail (CORRUPT_LOG)', async () => {
    const dir = tempDir();
    const db = await openStore(dir, 2);
    for (let i = 0; i < 200; i++) await db.put(`c${i}`, 'v'.repeat(100));
    await closeStore(db);
    const logDir = join(dir, 'log');
    const segment = join(
      logDir,
      readdirSync(logDir)
        .filter((f) => f.endsWith('.seg'))
        .sort()[0]!,
    );
    const bytes = readFileSync(segment);
    bytes[4096] = bytes[4096]! ^ 0xff;
    writeFileSync(segment, bytes);
    const error = await Flotilla.open({ dir, shards: 2 }).then(
      (s) => s.close().then(() => undefined),
      (err: unknown) => err,
    );
    expect(isFlotillaError(error, 'CORRUPT_LOG')).toBe(true);
    expect((error as FlotillaError).message).toMatch(/\.seg/);
  });
});

/** Runs the crash writer until `acks` writes are acknowledged, SIGKILLs it, returns the acks. */
function runUntilKilled(script: string, dir: string, acks: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, dir, '8', '32'], { stdio: 'pipe' });
    const acked: number[] = [];
    let stderr = '';
    let buffered = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout.on('data', (d: Buffer) => {
      buffered += d.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        if (!line.startsWith('ack ')) continue;
        acked.push(Number(line.slice(4)));
        if (acked.length === acks) child.kill('SIGKILL');
      }
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(acked);
      else reject(new Error(`crash writer exited with ${code}: ${stderr}`));
    });
  });
}
