/**
 * The change feed: every applied write leaves a change record in LMDB, in the same transaction
 * as the write, keyed by (shard, index, ordinal) so that a shard's changes read back in commit
 * order. Each shard keeps a bounded tail (`changesPerShardMax` records and
 * `changeBytesPerShardMax` bytes, whichever is reached first); older records are trimmed whole
 * entries at a time, and `changesCompactedIndex` remembers how far. A reader whose cursor is
 * below that point gets COMPACTED and must re-read the state (a scan) before watching again.
 */
import { FlotillaError } from '../errors.js';
import { changesReadMax } from '../limits.js';
import type { BinaryDb, StateDbs, StateLimits } from './dbs.js';
import {
  ChangeTypeByte,
  changeHeaderBytes,
  changeKey,
  readU64,
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

/** Writes a change record and accounts for it in the shard's metadata. */
export function writeChange(
  changes: BinaryDb,
  meta: ShardMeta,
  change: RawChange,
  ordinal: number,
): void {
  const storedBytes = change.stored === null ? 0 : change.stored.length;
  const record = Buffer.allocUnsafe(changeHeaderBytes + change.key.length + storedBytes);
  record[0] = change.stored === null ? ChangeTypeByte.Delete : ChangeTypeByte.Put;
  record.writeUInt32BE(change.key.length, 1);
  record.set(change.key, changeHeaderBytes);
  if (change.stored !== null) record.set(change.stored, changeHeaderBytes + change.key.length);
  changes.putSync(changeKey(change.shard, change.index, ordinal), record);
  meta.changeCount += 1;
  meta.changeBytes += change.key.length + storedBytes;
}

/**
 * Deletes the shard's oldest change records until both retention bounds hold, always removing
 * every record of an entry together. Runs inside the apply transaction.
 */
export function trimChanges(
  dbs: StateDbs,
  shard: number,
  meta: ShardMeta,
  limits: StateLimits,
): void {
  if (!overRetention(meta, limits)) return;
  const doomed: Buffer[] = [];
  let lastIndex = 0;
  for (const { key, value } of dbs.changes.getRange({
    start: shardPrefix(shard),
    end: shardEnd(shard),
  })) {
    const index = readU64(key, 4);
    if (index !== lastIndex && !overRetention(meta, limits)) break;
    doomed.push(key);
    lastIndex = index;
    meta.changeCount -= 1;
    meta.changeBytes -= value.length - changeHeaderBytes;
  }
  for (const key of doomed) dbs.changes.removeSync(key);
  if (lastIndex > meta.changesCompactedIndex) meta.changesCompactedIndex = lastIndex;
}

function overRetention(meta: ShardMeta, limits: StateLimits): boolean {
  return (
    meta.changeCount > limits.changesPerShardMax || meta.changeBytes > limits.changeBytesPerShardMax
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
  const max = Math.min(limit, changesReadMax);
  const out: Change[] = [];
  if (max <= 0) return out;
  const start = changeKey(shard, afterIndex + 1, 0);
  for (const { key, value } of dbs.changes.getRange({ start, end: shardEnd(shard), limit: max })) {
    out.push(decodeChange(shard, readU64(key, 4), value));
  }
  return out;
}

/** A change from its stored record. */
export function decodeChange(shard: number, index: number, record: Uint8Array): Change {
  const keyLength = Buffer.from(record.buffer, record.byteOffset, record.length).readUInt32BE(1);
  const key = Buffer.from(record.subarray(changeHeaderBytes, changeHeaderBytes + keyLength));
  if (record[0] === ChangeTypeByte.Delete) {
    return { shard, index, key, type: 'delete', version: index };
  }
  const value = decodeValue(record.subarray(changeHeaderBytes + keyLength));
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
