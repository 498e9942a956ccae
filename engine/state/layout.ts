/**
 * Byte layouts of everything the state machine keeps in LMDB. All integers are big-endian so
 * that keys sort numerically; u64 fields hold safe integers (< 2^53).
 *
 * HARD FORMAT: these layouts are on disk (and, for data records and sessions, inside snapshots).
 * Changing one requires bumping `stateFormatVersion`.
 *
 * | database  | key                                 | value                                     |
 * |-----------|-------------------------------------|-------------------------------------------|
 * | data      | shard u32 ‖ user key                | version u64 ‖ stored value (tag ‖ …)      |
 * | meta      | shard u32                           | ShardMeta, `metaBytes` bytes              |
 * | changes   | position u64                        | n u32 ‖ bytes before u64 ‖ n records      |
 * | sessions  | shard u32 ‖ session id              | seq u64 ‖ index u64 ‖ time f64 ‖ result   |
 * | system    | "format"                            | magic "FLOTILLA-STATE" ‖ version u32      |
 * | staging*  | install id u32 ‖ key / session id   | the data / session record as is           |
 *
 * `version` is the log index of the key's last write. A session's `index` (its last use) orders
 * the shard's sessions for eviction and expiry; that order is kept in memory (sessions.ts).
 *
 * The `changes` database is the node's change feed (change-feed.ts): one block per apply
 * transaction, holding every change it made to any shard. A block's key is its position, the
 * number of change records the node wrote to its feed before it (so keys ascend, and the next
 * block's position is the last key plus the last block's n); its value starts with n, its record
 * count, and the key + value bytes of every record written before it. Then come its n records,
 * each type u8 ‖ shard u32 ‖ index u64 ‖ key len u32 ‖ value len u32 ‖ key ‖ value (value empty
 * for a delete): grouped by shard (each shard's records are contiguous, in commit order; the
 * groups in the order the shards first wrote in the transaction).
 */
import { assert } from '../assert.js';
import type { RawChange } from './change-feed.js';

/** Bytes of the shard prefix of every per-shard key. */
export const shardPrefixBytes = 4;
/** Bytes of a data record before the stored value. */
export const dataHeaderBytes = 8;
/** Bytes of a session record before the encoded result. */
export const sessionHeaderBytes = 24;
/** Bytes of a change block's key (its position). */
export const changeKeyBytes = 8;
/** Bytes of a change block before its first record: n u32 ‖ bytes before u64. */
export const changeBlockHeaderBytes = 12;
/** Bytes of a change record before its key. */
export const changeHeaderBytes = 21;

/** Change type byte. HARD. */
export const ChangeTypeByte = { Put: 1, Delete: 2 } as const;

/** The per-shard metadata, stored in one record per shard. */
export interface ShardMeta {
  /** Index of the last entry applied. Invariant: only grows, except on snapshot install. */
  appliedIndex: number;
  /** Term of the entry at `appliedIndex`. */
  appliedTerm: number;
  /**
   * Position in the node's change feed where this shard's current history starts: its records in
   * older blocks belong to an earlier incarnation (before a drop or a snapshot install) and are
   * never read. Set when the shard's metadata is created or a snapshot is installed.
   */
  changesFrom: number;
  /** Changes with an index <= this are gone; a feed cursor below it must resync. */
  changesCompactedIndex: number;
  /** Sessions remembered. Invariant: sessionCount <= sessionsPerShardMax after each entry. */
  sessionCount: number;
  /** The shard owns keys whose routing hash h has hashLow <= h < hashHigh (hashHigh <= 2^32). */
  hashLow: number;
  hashHigh: number;
}

/** Bytes of a meta record: seven u64 fields. */
export const metaBytes = 56;

/** The metadata of a shard that has applied nothing. */
export function emptyMeta(): ShardMeta {
  return {
    appliedIndex: 0,
    appliedTerm: 0,
    changesFrom: 0,
    changesCompactedIndex: 0,
    sessionCount: 0,
    hashLow: 0,
    hashHigh: 2 ** 32,
  };
}

/** Writes a safe integer as u64 big-endian at `offset`. */
export function writeU64(buf: Uint8Array, offset: number, value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, 'a u64 field holds a safe integer >= 0');
  const high = Math.floor(value / 2 ** 32);
  const low = value >>> 0;
  buf[offset] = high >>> 24;
  buf[offset + 1] = high >>> 16;
  buf[offset + 2] = high >>> 8;
  buf[offset + 3] = high;
  buf[offset + 4] = low >>> 24;
  buf[offset + 5] = low >>> 16;
  buf[offset + 6] = low >>> 8;
  buf[offset + 7] = low;
}

/** Reads a u64 big-endian at `offset` as a number (safe by construction). */
export function readU64(buf: Uint8Array, offset: number): number {
  const high =
    buf[offset]! * 2 ** 24 +
    ((buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!);
  const low =
    buf[offset + 4]! * 2 ** 24 +
    ((buf[offset + 5]! << 16) | (buf[offset + 6]! << 8) | buf[offset + 7]!);
  return high * 2 ** 32 + low;
}

/** A Buffer over exactly the bytes of `buf`, for its typed readers. */
export function asBuffer(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.length);
}

/**
 * Reusable buffers for the keys and records handed to LMDB while applying. LMDB copies a key and
 * a value during the put or get call itself (lmdb-js writes synchronously inside a write
 * transaction), so one buffer serves every call and applying allocates no record per write.
 * Each result is valid until the next call of the same kind (keys and records use separate
 * buffers, so one key and one record can be passed to a put together).
 */
export class Scratch {
  private keyBuf = Buffer.allocUnsafe(4096);
  private recordBuf = Buffer.allocUnsafe(64 * 1024);
  /** Views of the first n bytes of keyBuf / recordBuf, by n (a subarray costs an object). */
  private keyViews: Buffer[] = [];
  private recordViews: Buffer[] = [];

  /** `shard u32 ‖ suffix`: a data or session key. */
  key(shard: number, suffix: Uint8Array): Buffer {
    const length = shardPrefixBytes + suffix.length;
    if (length > this.keyBuf.length) {
      this.keyBuf = Buffer.allocUnsafe(length);
      this.keyViews = [];
    }
    this.keyBuf.writeUInt32BE(shard, 0);
    this.keyBuf.set(suffix, shardPrefixBytes);
    return this.keyOf(length);
  }

  /** `position u64`: the key of one change block. */
  changeKey(position: number): Buffer {
    writeU64(this.keyBuf, 0, position);
    return this.keyOf(changeKeyBytes);
  }

  /** A data record: version ‖ stored value. */
  dataRecord(version: number, stored: Uint8Array): Buffer {
    const out = this.recordOf(dataHeaderBytes + stored.length);
    writeU64(out, 0, version);
    out.set(stored, dataHeaderBytes);
    return out;
  }

  /** A session record: seq ‖ index ‖ time ‖ encoded result (read back by decodeSession). */
  sessionRecord(seq: number, index: number, time: number, result: Uint8Array): Buffer {
    const out = this.recordOf(sessionHeaderBytes + result.length);
    writeU64(out, 0, seq);
    writeU64(out, 8, index);
    out.writeDoubleBE(time, 16);
    out.set(result, sessionHeaderBytes);
    return out;
  }

  /** `shard u32`: the key of a shard's metadata. */
  shardKey(shard: number): Buffer {
    this.keyBuf.writeUInt32BE(shard, 0);
    return this.keyOf(shardPrefixBytes);
  }

  /** A shard's metadata record (as encodeMeta writes it). */
  metaRecord(meta: ShardMeta): Buffer {
    return writeMeta(this.recordOf(metaBytes), meta);
  }

  /**
   * A change block: `count` records, each group of `groups` in turn (see the table above), after
   * `bytesBefore` key + value bytes of earlier blocks. Returns the block and its key + value bytes.
   */
  changeBlock(
    groups: ReadonlyMap<number, readonly RawChange[]>,
    count: number,
    bytesBefore: number,
  ): { block: Buffer; bytes: number } {
    let length = changeBlockHeaderBytes;
    for (const group of groups.values()) {
      for (const c of group) length += changeHeaderBytes + changeBytesOf(c);
    }
    const out = this.recordOf(length);
    out.writeUInt32BE(count, 0);
    writeU64(out, 4, bytesBefore);
    let at = changeBlockHeaderBytes;
    for (const group of groups.values()) {
      for (const c of group) at = writeChangeRecord(out, at, c);
    }
    assert(at === length, 'a change block is filled exactly');
    return { block: out, bytes: length - changeBlockHeaderBytes - count * changeHeaderBytes };
  }

  private keyOf(length: number): Buffer {
    return viewOf(this.keyBuf, this.keyViews, length);
  }

  private recordOf(length: number): Buffer {
    if (length > this.recordBuf.length) {
      this.recordBuf = Buffer.allocUnsafe(Math.max(length, this.recordBuf.length * 2));
      this.recordViews = [];
    }
    return viewOf(this.recordBuf, this.recordViews, length);
  }
}

/** The key + value bytes of a change record. */
export function changeBytesOf(c: RawChange): number {
  return c.key.length + (c.stored === null ? 0 : c.stored.length);
}

/** Writes one change record at `at` of `out`; returns where the next one starts. */
function writeChangeRecord(out: Buffer, at: number, c: RawChange): number {
  out[at] = c.stored === null ? ChangeTypeByte.Delete : ChangeTypeByte.Put;
  out.writeUInt32BE(c.shard, at + 1);
  writeU64(out, at + 5, c.index);
  out.writeUInt32BE(c.key.length, at + 13);
  out.writeUInt32BE(c.stored === null ? 0 : c.stored.length, at + 17);
  out.set(c.key, at + changeHeaderBytes);
  if (c.stored !== null) out.set(c.stored, at + changeHeaderBytes + c.key.length);
  return at + changeHeaderBytes + changeBytesOf(c);
}

/** Lengths up to which Scratch keeps its views (bounding them to a few hundred kB). */
const scratchViewBytesMax = 1024;

/** The view of the first `length` bytes of `buf`, kept in `views` when short enough. */
function viewOf(buf: Buffer, views: Buffer[], length: number): Buffer {
  const kept = views[length];
  if (kept !== undefined) return kept;
  const view = buf.subarray(0, length);
  if (length <= scratchViewBytesMax) views[length] = view;
  return view;
}

/** The 4-byte prefix of every key of `shard`. */
export function shardPrefix(shard: number): Buffer {
  const out = Buffer.allocUnsafe(shardPrefixBytes);
  out.writeUInt32BE(shard, 0);
  return out;
}

/** The key just past every key of `shard`, or undefined for the last possible shard. */
export function shardEnd(shard: number): Buffer | undefined {
  return shard === 0xffffffff ? undefined : shardPrefix(shard + 1);
}

/** `shard u32 ‖ suffix`: a data or session key. */
export function prefixedKey(shard: number, suffix: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(shardPrefixBytes + suffix.length);
  out.writeUInt32BE(shard, 0);
  out.set(suffix, shardPrefixBytes);
  return out;
}

/** Encodes shard metadata. */
export function encodeMeta(meta: ShardMeta): Buffer {
  return writeMeta(Buffer.allocUnsafe(metaBytes), meta);
}

/** Writes shard metadata into the first `metaBytes` of `out` (returned). */
function writeMeta(out: Buffer, meta: ShardMeta): Buffer {
  writeU64(out, 0, meta.appliedIndex);
  writeU64(out, 8, meta.appliedTerm);
  writeU64(out, 16, meta.changesFrom);
  writeU64(out, 24, meta.changesCompactedIndex);
  writeU64(out, 32, meta.sessionCount);
  writeU64(out, 40, meta.hashLow);
  writeU64(out, 48, meta.hashHigh);
  return out;
}

/** Decodes shard metadata; undefined when the record has the wrong size. */
export function decodeMeta(buf: Uint8Array): ShardMeta | undefined {
  if (buf.length !== metaBytes) return undefined;
  return {
    appliedIndex: readU64(buf, 0),
    appliedTerm: readU64(buf, 8),
    changesFrom: readU64(buf, 16),
    changesCompactedIndex: readU64(buf, 24),
    sessionCount: readU64(buf, 32),
    hashLow: readU64(buf, 40),
    hashHigh: readU64(buf, 48),
  };
}

/** `position u64`: the key of one change block. */
export function changeKey(position: number): Buffer {
  const out = Buffer.allocUnsafe(changeKeyBytes);
  writeU64(out, 0, position);
  return out;
}

/** A session record: the last request's sequence number, where and when it ran, its result. */
export interface SessionRecord {
  seq: number;
  index: number;
  time: number;
  result: Uint8Array;
}

/** Decodes a session record; undefined when it is too short. */
export function decodeSession(buf: Uint8Array): SessionRecord | undefined {
  if (buf.length < sessionHeaderBytes) return undefined;
  return {
    seq: readU64(buf, 0),
    index: readU64(buf, 8),
    time: asBuffer(buf).readDoubleBE(16),
    result: buf.subarray(sessionHeaderBytes),
  };
}
