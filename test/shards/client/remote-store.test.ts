import { afterEach, describe, expect, it } from 'vitest';
import { FlotillaError } from '../../../engine/errors.js';
import { keyBytesMax, valueBytesMax } from '../../../engine/limits.js';
import { wirePackr } from '../../../shards/client/protocol.js';
import type { RemoteStore } from '../../../shards/client/remote.js';
import { Flotilla } from '../../../shards/index.js';
import type { Value, WatchEvent } from '../../../shards/types.js';
import { codeOf, type Served, secret, serveStore, sleep, startBrokenNode } from './support.js';

let served: Served | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

/** A remote client of a freshly served single-node store of `shards` shards. */
async function client(shards = 8, tuning = {}): Promise<RemoteStore> {
  served = await serveStore(shards, { tuning });
  return served.connect();
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

describe('a remote store: single keys', () => {
  it('puts, gets and deletes with versions', async () => {
    const db = await client();
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

  it('round-trips every kind of value, bytes as bytes, at every consistency', async () => {
    const db = await client();
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
    for (const consistency of ['linearizable', 'lease', 'stale'] as const) {
      for (const [i, v] of values.entries()) {
        const got = await db.get(`v${i}`, { consistency });
        if (v instanceof Uint8Array) expect(Uint8Array.from(got as Uint8Array)).toEqual(v);
        else expect(got).toEqual(v);
      }
    }
  });

  it('accepts byte-array keys as well as strings', async () => {
    const db = await client();
    await db.put(Uint8Array.of(0, 1, 2), 'bytes');
    expect(await db.get(Uint8Array.of(0, 1, 2))).toBe('bytes');
    await db.put('é', 'utf8');
    expect(await db.get(Uint8Array.of(0xc3, 0xa9))).toBe('utf8');
  });

  it('compares and sets by version and by value', async () => {
    const db = await client();
    expect(await db.cas('k', { version: 0 }, 'first')).toBe(true);
    expect(await db.cas('k', { version: 0 }, 'again')).toBe(false);
    const entry = await db.getEntry('k');
    expect(await db.cas('k', { version: entry!.version }, 'second')).toBe(true);
    expect(await db.cas('k', { version: entry!.version }, 'stale')).toBe(false);
    expect(await db.cas('k', { value: 'second' }, 'third')).toBe(true);
    expect(await db.cas('k', { value: 'nope' }, 'fourth')).toBe(false);
    expect(await db.get('k')).toBe('third');
  });

  it('increments numbers and bigints, and refuses non-numbers with the node error', async () => {
    const db = await client();
    expect(await db.incr('n')).toBe(1);
    expect(await db.incr('n', 41)).toBe(42);
    expect(await db.incr('big', 2n ** 64n)).toBe(2n ** 64n);
    await db.put('s', 'text');
    expect(await codeOf(db.incr('s'))).toBe('WRONG_TYPE');
    expect(await db.get('s')).toBe('text');
  });

  it('ends 3,000 concurrent increments of one key at exactly 3,000', async () => {
    const db = await client();
    await Promise.all(Array.from({ length: 3_000 }, () => db.incr('counter')));
    expect(await db.get('counter')).toBe(3_000);
  });

  it('stores and reads back a largest value', async () => {
    const db = await client();
    const big = Buffer.alloc(valueBytesMax, 9);
    await db.put('big', big);
    expect(Buffer.compare((await db.get('big')) as Buffer, big)).toBe(0);
  });
});

describe('a remote store: batches and user commands', () => {
  it('applies a batch in one shard atomically', async () => {
    const db = await client();
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
    const db = await client();
    await db.put('{u2}.a', 1);
    const code = await codeOf(
      db.batch([
        { type: 'put', key: '{u2}.b', value: 2 },
        { type: 'cas', key: '{u2}.a', expected: { value: 999 }, value: 3 },
      ]),
    );
    expect(code).toBe('INVALID_ARGUMENT');
    expect(await db.get('{u2}.b')).toBeUndefined();
  });

  it('runs a command defined on the node, and refuses to define one from the client', async () => {
    const db = await client();
    served!.store.defineCommand('transfer', (tx, _key, args): Value => {
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
    expect(await db.get('{bank}.bob')).toBe(30);
    expect(await codeOf(db.exec('nope', 'k'))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(() => db.defineCommand('local', () => null))).toBe('INVALID_ARGUMENT');
  });
});

describe('a remote store: bad input and life cycle', () => {
  it('rejects bad keys, values and arguments with typed errors and changes nothing', async () => {
    const db = await client();
    const bad = db as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    expect(await codeOf(() => bad.put!(undefined, 1))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(() => db.put('k'.repeat(keyBytesMax + 1), 1))).toBe('KEY_TOO_LARGE');
    expect(await codeOf(() => db.put('k', 'v'.repeat(valueBytesMax + 1)))).toBe('VALUE_TOO_LARGE');
    expect(await codeOf(() => bad.put!('k', () => 1))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(() => bad.incr!('k', 'x'))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(() => bad.get!('k', { consistency: 'eventual' }))).toBe('INVALID_ARGUMENT');
    expect(await db.get('k')).toBeUndefined();
  });

  it('refuses bad connect arguments', async () => {
    const connect = Flotilla.connect as (e: unknown, o: unknown) => Promise<unknown>;
    expect(await codeOf(connect([], { secret }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(connect(['nohost'], { secret }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(connect(['127.0.0.1:1'], { secret: 'short' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(connect(['127.0.0.1:1'], { secret, timeoutMs: -1 }))).toBe(
      'INVALID_ARGUMENT',
    );
  });

  it('fails with PROTOCOL, promptly, when a node answers bytes that do not parse', async () => {
    for (const answer of [Uint8Array.of(0xc1), wirePackr.pack([1, 2, 3])]) {
      const broken = await startBrokenNode(answer);
      try {
        const connect = Flotilla.connect([`127.0.0.1:${broken.port}`], {
          secret,
          timeoutMs: 5_000,
        });
        const started = Date.now();
        expect(await codeOf(connect)).toBe('PROTOCOL');
        expect(Date.now() - started).toBeLessThan(4_000);
      } finally {
        await broken.close();
      }
    }
  });

  it('reports UNAVAILABLE when no endpoint answers', async () => {
    const connect = Flotilla.connect(['127.0.0.1:1'], { secret, timeoutMs: 300 });
    expect(await codeOf(connect)).toBe('UNAVAILABLE');
  });

  it('rejects every call after close with CLOSED, and closes its connections', async () => {
    const db = await client();
    await db.put('k', 1);
    expect(served!.server.connectionCount()).toBe(1);
    await db.close();
    expect(await codeOf(() => db.get('k'))).toBe('CLOSED');
    expect(await codeOf(() => db.put('k', 1))).toBe('CLOSED');
    for (let i = 0; i < 50 && served!.server.connectionCount() > 0; i++) await sleep(10);
    expect(served!.server.connectionCount()).toBe(0);
  });

  it('reports the status of every node', async () => {
    const db = await client(4);
    await db.put('x', 1);
    const status = (await db.status()) as { shards: number; nodes: { status: { keys: number } }[] };
    expect(status.shards).toBe(4);
    expect(status.nodes[0]!.status.keys).toBe(1);
  });
});

describe('a remote store: scan', () => {
  it('yields keys in order across shards, with prefix, range, limit and reverse', async () => {
    const db = await client(16);
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

  it('reassembles pages the node cut at its byte budget, forwards and backwards', async () => {
    const db = await client(2, { responseBytesTarget: 2_000 });
    const keys = Array.from({ length: 600 }, (_, i) => `p:${String(i).padStart(4, '0')}`);
    await Promise.all(keys.map((k) => db.put(k, 'v'.repeat(100))));
    const forward: string[] = [];
    for await (const [k] of db.scan({ prefix: 'p:' })) forward.push(k as string);
    expect(forward).toEqual(keys);
    const backward: string[] = [];
    for await (const [k] of db.scan({ prefix: 'p:' }, { reverse: true, consistency: 'stale' })) {
      backward.push(k as string);
    }
    expect(backward).toEqual([...keys].reverse());
  });
});

describe('a remote store: watch', () => {
  it('delivers committed changes after the watch starts, filtered by prefix', async () => {
    const db = await client();
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

  it('sees changes made by another client, and resumes from a cursor in a new client', async () => {
    const db = await client(4, { responseBytesTarget: 1_000 });
    const writer = await served!.connect();
    const feed = db.watch();
    for (let i = 0; i < 40; i++) await writer.put(`k${i}`, 'x'.repeat(100));
    await writer.batch([
      { type: 'put', key: '{t}.a', value: 'a' },
      { type: 'put', key: '{t}.b', value: 'b' },
    ]);
    const first = await take(feed, 21);
    const cursor = first.at(-1)!.cursor;
    await feed.return?.();
    await db.close();
    const again = await served!.connect();
    const resumed = again.watch({ from: cursor });
    const rest: WatchEvent[] = await take(resumed, 21);
    await resumed.return?.();
    const seen = [...first, ...rest].map((e) => e.key).sort();
    const expected = [...Array.from({ length: 40 }, (_, i) => `k${i}`), '{t}.a', '{t}.b'].sort();
    expect(seen).toEqual(expected);
  });
});

describe('a remote store: exactly-once writes and deadlines', () => {
  it('retries a write whose answer was lost as a TIMEOUT, and it is applied once', async () => {
    let faults = 1;
    served = await serveStore(4, {
      faults: {
        afterPropose: () =>
          faults-- > 0
            ? new FlotillaError('TIMEOUT', 'injected after the commit', { outcome: 'unknown' })
            : undefined,
      },
    });
    const db = await served.connect();
    expect(await db.incr('counter')).toBe(1);
    expect(faults).toBe(-1);
    expect(await db.get('counter')).toBe(1);
  });

  it('retries a write whose connection died after the commit, and it is applied once', async () => {
    let faults = 3;
    served = await serveStore(4, {
      faults: { afterPropose: () => (faults-- > 0 ? 'close' : undefined) },
    });
    const db = await served.connect();
    expect(await db.incr('counter', 5)).toBe(5);
    expect(await db.batch([{ type: 'incr', key: 'counter', by: 1 }])).toEqual([6]);
    expect(await db.get('counter')).toBe(6);
  });

  it('answers TIMEOUT with outcome unknown when the deadline passes in doubt', async () => {
    served = await serveStore(4, {
      faults: {
        afterPropose: () =>
          new FlotillaError('TIMEOUT', 'injected after the commit', { outcome: 'unknown' }),
      },
    });
    const db = await served.connect({ timeoutMs: 400 });
    const err = (await db.incr('counter').then(
      () => undefined,
      (e: unknown) => e,
    )) as FlotillaError;
    expect(err.code).toBe('TIMEOUT');
    expect(err.details.outcome).toBe('unknown');
    // Every retry carried the same session number: the increment happened exactly once.
    expect(await db.get('counter')).toBe(1);
  });

  it('answers TIMEOUT with outcome not-applied when no node could take the write', async () => {
    served = await serveStore(2);
    const db = await served.connect({ timeoutMs: 300 });
    await served.server.close();
    // Once the client has seen its connection end, nothing it sends can reach a node. (A write
    // sent before it noticed would be in doubt: the socket might still have delivered it.)
    await sleep(100);
    const err = (await db.put('k', 1).then(
      () => undefined,
      (e: unknown) => e,
    )) as FlotillaError;
    expect(err.code).toBe('TIMEOUT');
    expect(err.details.outcome, err.message).toBe('not-applied');
  });

  it('keeps writes of many concurrent callers to one shard exactly once', async () => {
    let n = 0;
    served = await serveStore(1, {
      // Every third answer is lost: the write was applied, the client hears TIMEOUT.
      faults: {
        afterPropose: () =>
          ++n % 3 === 0
            ? new FlotillaError('TIMEOUT', 'injected', { outcome: 'unknown' })
            : undefined,
      },
    });
    const db = await served.connect();
    const sums = await Promise.all(Array.from({ length: 300 }, () => db.incr('c')));
    expect(await db.get('c')).toBe(300);
    expect(new Set(sums).size).toBe(300);
  });
});
