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
 * | changes   | shard u32 ‖ last index u64 ‖ n u32  | n change records (below)                  |
 * | sessions  | shard u32 ‖ session id              | seq u64 ‖ index u64 ‖ time f64 ‖ result   |
 * | system    | "format"                            | magic "FLOTILLA-STATE" ‖ version u32      |
 * | staging*  | install id u32 ‖ key / session id   | the data / session record as is           |
 *
 * `version` is the log index of the key's last write. A session's `index` (its last use) orders
 * the shard's sessions for eviction and expiry; that order is kept in memory (sessions.ts). A
 * `changes` value is a block: the changes one apply transaction made to one shard, whole entries,
 * keyed by the index of its last entry; each change record is type u8 ‖ index u64 ‖ key len u32 ‖
 * value len u32 ‖ key ‖ value (value empty for a delete).
 */
import { assert } from '../assert.js';
import type { RawChange } from './change-feed.js';

/** Bytes of the shard prefix of every per-shard key. */
export const shardPrefixBytes = 4;
/** Bytes of a data record before the stored value. */
export const dataHeaderBytes = 8;
/** Bytes of a session record before the encoded result. */
export const sessionHeaderBytes = 24;
/** Bytes of a change block's key. */
export const changeKeyBytes = 16;
/** Bytes of a change record before its key. */
export const changeHeaderBytes = 17;

/** Change type byte. HARD. */
export const ChangeTypeByte = { Put: 1, Delete: 2 } as const;

/** The per-shard metadata, stored in one record per shard. */
export interface ShardMeta {
  /** Index of the last entry applied. Invariant: only grows, except on snapshot install. */
  appliedIndex: number;
  /** Term of the entry at `appliedIndex`. */
  appliedTerm: number;
  /** Keys stored for the shard. */
  keyCount: number;
  /** Change records retained, and their key + value bytes. */
  changeCount: number;
  changeBytes: number;
  /** Changes with an index <= this are gone; a feed cursor below it must resync. */
  changesCompactedIndex: number;
  /** Sessions remembered. Invariant: sessionCount <= sessionsPerShardMax after each entry. */
  sessionCount: number;
  /** The shard owns keys whose routing hash h has hashLow <= h < hashHigh (hashHigh <= 2^32). */
  hashLow: number;
  hashHigh: number;
}

/** Bytes of a meta record: nine u64 fields. */
export const metaBytes = 72;

/** The metadata of a shard that has applied nothing. */
export function emptyMeta(): ShardMeta {
  return {
    appliedIndex: 0,
    appliedTerm: 0,
    keyCount: 0,
    changeCount: 0,
    changeBytes: 0,
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

  /** `shard ‖ last index ‖ count`: the key of one change block. */
  changeKey(shard: number, lastIndex: number, count: number): Buffer {
    const out = this.keyBuf;
    out.writeUInt32BE(shard, 0);
    writeU64(out, 4, lastIndex);
    out.writeUInt32BE(count, 12);
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

  /** A change block: the records of `changes`, in order (see the table above). */
  changeBlock(changes: readonly RawChange[]): Buffer {
    let length = 0;
    for (const c of changes) {
      length += changeHeaderBytes + c.key.length + (c.stored === null ? 0 : c.stored.length);
    }
    const out = this.recordOf(length);
    let at = 0;
    for (const c of changes) {
      const storedBytes = c.stored === null ? 0 : c.stored.length;
      out[at] = c.stored === null ? ChangeTypeByte.Delete : ChangeTypeByte.Put;
      writeU64(out, at + 1, c.index);
      out.writeUInt32BE(c.key.length, at + 9);
      out.writeUInt32BE(storedBytes, at + 13);
      out.set(c.key, at + changeHeaderBytes);
      if (c.stored !== null) out.set(c.stored, at + changeHeaderBytes + c.key.length);
      at += changeHeaderBytes + c.key.length + storedBytes;
    }
    return out;
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
  writeU64(out, 16, meta.keyCount);
  writeU64(out, 24, meta.changeCount);
  writeU64(out, 32, meta.changeBytes);
  writeU64(out, 40, meta.changesCompactedIndex);
  writeU64(out, 48, meta.sessionCount);
  writeU64(out, 56, meta.hashLow);
  writeU64(out, 64, meta.hashHigh);
  return out;
}

/** Decodes shard metadata; undefined when the record has the wrong size. */
export function decodeMeta(buf: Uint8Array): ShardMeta | undefined {
  if (buf.length !== metaBytes) return undefined;
  return {
    appliedIndex: readU64(buf, 0),
    appliedTerm: readU64(buf, 8),
    keyCount: readU64(buf, 16),
    changeCount: readU64(buf, 24),
    changeBytes: readU64(buf, 32),
    changesCompactedIndex: readU64(buf, 40),
    sessionCount: readU64(buf, 48),
    hashLow: readU64(buf, 56),
    hashHigh: readU64(buf, 64),
  };
}

/** `shard ‖ last index ‖ count`: the key of one change block. */
export function changeKey(shard: number, lastIndex: number, count: number): Buffer {
  const out = Buffer.allocUnsafe(changeKeyBytes);
  out.writeUInt32BE(shard, 0);
  writeU64(out, 4, lastIndex);
  out.writeUInt32BE(count, 12);
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
