import { describe, expect, it } from 'vitest';
import { isFlotillaError } from '../../../engine/errors.js';
import { snapshotChunkBytesMax, snapshotInstallsMax } from '../../../engine/limits.js';
import type { ConfState } from '../../../engine/raft/types.js';
import type { KvState } from '../../../engine/state/kv-state.js';
import {
  ChunkKind,
  decodeChunk,
  decodeTrailer,
  encodeChunk,
  encodeTrailer,
} from '../../../engine/state/snapshot-format.js';
import { closeState, entry, openState, ShardFeeder, tempDir } from './helpers.js';

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}

/** A source shard with many keys (some large, to span several chunks) and sessions. */
function populatedSource(): KvState {
  const state = openState();
  const f = new ShardFeeder(state, 3);
  f.apply({ type: 'shardRange', hashLow: 0, hashHigh: 2 ** 32 - 1 });
  const ops = Array.from({ length: 500 }, (_, i) => ({
    type: 'put' as const,
    key: `key-${String(i).padStart(4, '0')}`,
    value: { i, text: 'x'.repeat(i % 50) },
  }));
  f.apply({ type: 'batch', ops });
  for (let i = 0; i < 4; i++) {
    f.apply({ type: 'put', key: `big-${i}`, value: new Uint8Array(200_000).fill(i) });
  }
  f.apply({ type: 'incr', key: 'counter', by: 7n, session: { id: 'client', seq: 1, time: 5 } });
  state.applyBatch([entry(4, 1, { type: 'put', key: 'neighbour', value: 1 })]);
  return state;
}

async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return isFlotillaError(err) ? err.code : String(err);
  }
  return 'resolved';
}

describe('snapshots', () => {
  it('export then install reproduces the shard on another replica', async () => {
    const source = populatedSource();
    const chunks = await collect(source.exportSnapshot(3));
    expect(chunks.length).toBeGreaterThan(3);
    for (const chunk of chunks) expect(chunk.length).toBeLessThanOrEqual(snapshotChunkBytesMax);

    const target = openState();
    new ShardFeeder(target, 3).apply({ type: 'put', key: 'stale', value: 'old' });
    const header = await target.installSnapshot(3, chunks);
    expect(header).toEqual({ appliedIndex: 7, appliedTerm: 1, hashLow: 0, hashHigh: 2 ** 32 - 1 });
    expect(target.checksum(3)).toBe(source.checksum(3));
    expect(target.applied(3)).toEqual(source.applied(3));
    expect(target.count(3)).toBe(source.count(3));
    expect(target.hashRange(3)).toEqual(source.hashRange(3));
    expect(target.get(3, 'stale')).toBeUndefined();
    expect(target.get(3, 'big-2')).toEqual(source.get(3, 'big-2'));
    expect([...target.scan(3)].map((e) => e.key.toString())).toEqual(
      [...source.scan(3)].map((e) => e.key.toString()),
    );
    // The session table came along: a retry is still deduplicated on the new replica.
    const retry = {
      type: 'incr',
      key: 'counter',
      by: 7n,
      session: { id: 'client', seq: 1, time: 6 },
    };
    const [result] = target.applyBatch([entry(3, 8, retry as never)]);
    expect(result).toEqual({ type: 'incr', value: 7n, version: 7 });
    // A watcher of the new replica must resync: the feed starts at the snapshot.
    expect(() => target.changes(3, 0)).toThrow(/no longer kept/);
    expect(target.changes(3, 7).map((c) => c.index)).toEqual([]);
  });

  it('exports a consistent read even while the shard keeps changing', async () => {
    const source = populatedSource();
    const before = source.checksum(3);
    const iterator = source.exportSnapshot(3)[Symbol.asyncIterator]();
    const chunks = [(await iterator.next()).value as Uint8Array];
    new ShardFeeder(source, 3).apply({ type: 'put', key: 'key-0000', value: 'changed' });
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      chunks.push(next.value);
    }
    const target = openState();
    await target.installSnapshot(3, chunks);
    expect(target.checksum(3)).toBe(before);
    expect(source.checksum(3)).not.toBe(before);
  });

  it('a truncated stream is rejected with CORRUPT_STATE and changes nothing', async () => {
    const chunks = await collect(populatedSource().exportSnapshot(3));
    const target = openState();
    new ShardFeeder(target, 3).apply({ type: 'put', key: 'keep', value: 1 });
    const before = target.checksum(3);
    for (const cut of [1, chunks.length - 1]) {
      expect(await rejection(target.installSnapshot(3, chunks.slice(0, cut)))).toBe(
        'CORRUPT_STATE',
      );
      expect(target.checksum(3)).toBe(before);
    }
    expect(target.get(3, 'keep')?.value).toBe(1);
    expect(await target.installSnapshot(3, chunks)).toMatchObject({ appliedIndex: 7 });
  });

  it('a damaged, reordered or foreign chunk is rejected with CORRUPT_STATE', async () => {
    const source = populatedSource();
    const chunks = await collect(source.exportSnapshot(3));
    const other = await collect(source.exportSnapshot(4));
    const flipped = Buffer.from(chunks[2]!);
    flipped[flipped.length - 1]! ^= 1;
    const end = decodeChunk(chunks.at(-1)!);
    const lying = encodeTrailer({ ...decodeTrailer(end.payload), keyCount: 1 });
    const streams = [
      [chunks[0]!, chunks[1]!, flipped, ...chunks.slice(3)],
      [chunks[0]!, chunks[2]!, chunks[1]!, ...chunks.slice(3)],
      [chunks[0]!, chunks[1]!, chunks[1]!, ...chunks.slice(2)],
      [...chunks.slice(0, -1), encodeChunk(ChunkKind.End, 3, end.seq, lying)],
      [...chunks, chunks.at(-1)!],
      [other[0]!, ...chunks.slice(1)],
      [chunks[0]!.subarray(0, 10)],
      chunks.slice(1),
    ];
    const target = openState();
    const before = target.checksum(3);
    for (const stream of streams) {
      expect(await rejection(target.installSnapshot(3, stream))).toBe('CORRUPT_STATE');
      expect(target.checksum(3)).toBe(before);
      expect(target.appliedIndex(3)).toBe(0);
    }
  });

  it('chunks may arrive over time through an install handle, into any shard id', async () => {
    const source = populatedSource();
    const target = openState();
    const install = target.beginInstall(9);
    for await (const chunk of source.exportSnapshot(3)) {
      install.write(chunk);
      await new Promise((resolve) => setImmediate(resolve));
    }
    install.commit();
    expect(target.get(9, 'key-0001')).toEqual(source.get(3, 'key-0001'));
    expect(target.count(9)).toBe(source.count(3));
  });

  it('an install left unfinished holds nothing after a restart', async () => {
    const dir = tempDir();
    const chunks = await collect(populatedSource().exportSnapshot(3));
    const target = openState({ dir });
    const install = target.beginInstall(3);
    for (const chunk of chunks.slice(0, -1)) install.write(chunk);
    await closeState(target);
    const reopened = openState({ dir });
    expect(reopened.shards()).toEqual([]);
    expect(await reopened.installSnapshot(3, chunks)).toMatchObject({ appliedIndex: 7 });
  });

  it('stores the membership a snapshot brings in the install transaction itself', async () => {
    const dir = tempDir();
    const chunks = await collect(populatedSource().exportSnapshot(3));
    const conf: ConfState = {
      voters: [1, 2, 4],
      votersOutgoing: [],
      learners: [5],
      learnersNext: [],
      autoLeave: false,
    };
    const target = openState({ dir });
    const rejected = target.beginInstall(3);
    for (const chunk of chunks.slice(0, -1)) rejected.write(chunk);
    expect(() => rejected.commit(conf)).toThrow(/incomplete/);
    expect(target.confState(3)).toBeUndefined();
    const install = target.beginInstall(3);
    for (const chunk of chunks) install.write(chunk);
    install.commit(conf);
    expect(target.confState(3)).toEqual(conf);
    await closeState(target);
    const reopened = openState({ dir });
    expect(reopened.appliedIndex(3)).toBe(7);
    expect(reopened.confState(3)).toEqual(conf);
  });

  it('bounds concurrent installs (BUSY) and refuses chunks after the end', async () => {
    const target = openState();
    const installs = Array.from({ length: snapshotInstallsMax }, (_, i) => target.beginInstall(i));
    expect(() => target.beginInstall(99)).toThrow(/at most/);
    for (const install of installs) install.abort();
    const chunks = await collect(populatedSource().exportSnapshot(3));
    const install = target.beginInstall(3);
    for (const chunk of chunks) install.write(chunk);
    install.commit();
    expect(() => install.write(chunks[0]!)).toThrow(/finished/);
  });
});
