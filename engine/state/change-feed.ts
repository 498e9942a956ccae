/**
 * The change feed: every applied write leaves a change record in LMDB, in the same transaction
 * as the write. The records one apply transaction leaves for a shard form one block, keyed by
 * (shard, index of its last entry), so that a shard's changes read back in commit order and a
 * batch of writes costs one LMDB put, not one per write. Each shard keeps a bounded tail
 * (`changesPerShardMax` records and `changeBytesPerShardMax` bytes, whichever is reached first,
 * and up to an eighth more between trims — or the newest block, when it alone is larger); older
 * blocks are trimmed whole, and
 * `changesCompactedIndex` remembers how far. A reader whose cursor is below that point gets
 * COMPACTED and must re-read the state (a scan) before watching again.
 */
import { FlotillaError } from '../errors.js';
import { changesReadMax } from '../limits.js';
import type { BinaryDb, StateDbs, StateLimits } from './dbs.js';
import {
  ChangeTypeByte,
  changeHeaderBytes,
  changeKey,
  readU64,
  type Scratch,
  type ShardMeta,
  shardEnd,
  shardPrefix,
} from './layout.js';
import { decodeValue, type Value } from './value-codec.js';

/** One applied write, as a watcher sees it. `version` is the index of the entry that wrote it. */
export interface Change {
  shard: number;
  index: number;
  key: Buffer;
  type: 'put' | 'delete';
  /** The new value (put only). */
  value?: Value;
  version: number;
}

/** A change as written, before its value is decoded. */
export interface RawChange {
  shard: number;
  index: number;
  key: Uint8Array;
  /** The stored value for a put, null for a delete. */
  stored: Uint8Array | null;
}

/**
 * Writes the changes one transaction made to one shard (in commit order, at least one) as one
 * block, and accounts for them in the shard's metadata.
 */
export function writeChanges(
  changes: BinaryDb,
  scratch: Scratch,
  meta: ShardMeta,
  shard: number,
  list: readonly RawChange[],
): void {
  const last = list[list.length - 1]!;
  changes.putSync(scratch.changeKey(shard, last.index, list.length), scratch.changeBlock(list));
  meta.changeCount += list.length;
  for (const c of list) {
    meta.changeBytes += c.key.length + (c.stored === null ? 0 : c.stored.length);
  }
}

/**
 * Deletes the shard's oldest change blocks until both retention bounds hold (a block holds
 * whole entries, so every record of an entry goes together), always keeping the newest block.
 * Runs inside the apply transaction.
 */
export function trimChanges(
  dbs: StateDbs,
  shard: number,
  meta: ShardMeta,
  limits: StateLimits,
): void {
  // Trimming opens a cursor, so it waits until a shard is an eighth over its bounds and then
  // trims back to them: amortized over many batches instead of a few records every batch.
  if (
    !overRetention(meta, limits, limits.changesPerShardMax >> 3, limits.changeBytesPerShardMax >> 3)
  ) {
    return;
  }
  const doomed: Buffer[] = [];
  let lastIndex = 0;
  let candidate: { key: Buffer; count: number; bytes: number } | undefined;
  for (const { key, value } of dbs.changes.getRange({
    start: shardPrefix(shard),
    end: shardEnd(shard),
  })) {
    if (candidate !== undefined) {
      // A block goes only when a newer one exists: the newest stays, however large it is.
      doomed.push(candidate.key);
      lastIndex = readU64(candidate.key, 4);
      meta.changeCount -= candidate.count;
      meta.changeBytes -= candidate.bytes;
      candidate = undefined;
    }
    if (!overRetention(meta, limits)) break;
    const count = key.readUInt32BE(12);
    candidate = { key, count, bytes: value.length - count * changeHeaderBytes };
  }
  for (const key of doomed) dbs.changes.removeSync(key);
  if (lastIndex > meta.changesCompactedIndex) meta.changesCompactedIndex = lastIndex;
}

/** Whether the shard keeps more than its bounds plus a slack of records and bytes. */
function overRetention(
  meta: ShardMeta,
  limits: StateLimits,
  slackCount = 0,
  slackBytes = 0,
): boolean {
  return (
    meta.changeCount > limits.changesPerShardMax + slackCount ||
    meta.changeBytes > limits.changeBytesPerShardMax + slackBytes
  );
}

/** Deletes every change record of a shard (drop, snapshot install). */
export function clearChanges(dbs: StateDbs, shard: number): void {
  clearRange(dbs.changes, shardPrefix(shard), shardEnd(shard));
}

/** Keys deleted per cursor pass when clearing a range, bounding the keys held in memory. */
const clearPassKeys = 1024;

/** Deletes every key in [start, end) of `db`, inside the current write transaction. */
export function clearRange(db: BinaryDb, start: Buffer, end: Buffer | undefined): void {
  for (;;) {
    const keys: Buffer[] = [];
    for (const key of db.getKeys({ start, end, limit: clearPassKeys })) keys.push(key as Buffer);
    for (const key of keys) db.removeSync(key);
    if (keys.length < clearPassKeys) return;
  }
}

/**
 * The shard's changes with index > `afterIndex`, in commit order, at most `limit` (and at most
 * `changesReadMax`). Throws COMPACTED when changes after `afterIndex` were already trimmed.
 */
export function readChanges(
  dbs: StateDbs,
  shard: number,
  meta: ShardMeta,
  afterIndex: number,
  limit: number,
): Change[] {
  if (afterIndex < meta.changesCompactedIndex) {
    throw new FlotillaError(
      'COMPACTED',
      `shard ${shard}: changes up to index ${meta.changesCompactedIndex} are no longer kept ` +
        `(cursor ${afterIndex}); re-read the state and watch from its applied index`,
    );
  }
  // "At most 2.5" is at most 2: LMDB would round a fractional limit up.
  const max = Math.min(Math.floor(limit), changesReadMax);
  const out: Change[] = [];
  // No entry has an index beyond the largest safe integer (nor a key for one).
  if (max <= 0 || afterIndex >= Number.MAX_SAFE_INTEGER) return out;
  // The first block that can hold index afterIndex + 1 is the first that ends at or after it.
  const start = changeKey(shard, afterIndex + 1, 0);
  for (const { value } of dbs.changes.getRange({ start, end: shardEnd(shard) })) {
    for (let at = 0; at < value.length && out.length < max; ) {
      const index = readU64(value, at + 1);
      const keyLength = value.readUInt32BE(at + 9);
      const storedLength = value.readUInt32BE(at + 13);
      if (index > afterIndex) out.push(decodeChange(shard, index, value, at));
      at += changeHeaderBytes + keyLength + storedLength;
    }
    if (out.length >= max) break;
  }
  return out;
}

/** The change whose record starts at `at` of a block. */
function decodeChange(shard: number, index: number, block: Buffer, at: number): Change {
  const keyStart = at + changeHeaderBytes;
  const keyEnd = keyStart + block.readUInt32BE(at + 9);
  const key = Buffer.from(block.subarray(keyStart, keyEnd));
  if (block[at] === ChangeTypeByte.Delete) {
    return { shard, index, key, type: 'delete', version: index };
  }
  const value = decodeValue(block.subarray(keyEnd, keyEnd + block.readUInt32BE(at + 13)));
  return { shard, index, key, type: 'put', value, version: index };
}

/** A change as a listener receives it. */
export function materialize(raw: RawChange): Change {
  const key = Buffer.from(raw.key);
  if (raw.stored === null) {
    return { shard: raw.shard, index: raw.index, key, type: 'delete', version: raw.index };
  }
  const value = decodeValue(raw.stored);
  return { shard: raw.shard, index: raw.index, key, type: 'put', value, version: raw.index };
}
