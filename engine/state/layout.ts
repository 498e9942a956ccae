/**
 * Byte layouts of everything the state machine keeps in LMDB. All integers are big-endian so
 * that keys sort numerically; u64 fields hold safe integers (< 2^53).
 *
 * HARD FORMAT: these layouts are on disk (and, for data records and sessions, inside snapshots).
 * Changing one requires bumping `stateFormatVersion`.
 *
 * | database  | key                                      | value                                 |
 * |-----------|------------------------------------------|---------------------------------------|
 * | data      | shard u32 ‖ user key                     | version u64 ‖ stored value (tag ‖ …)  |
 * | meta      | shard u32                                | ShardMeta, `metaBytes` bytes          |
 * | changes   | shard u32 ‖ index u64 ‖ ordinal u32      | type u8 ‖ key len u32 ‖ key ‖ value?  |
 * | sessions  | shard u32 ‖ session id                   | seq u64 ‖ index u64 ‖ time f64 ‖ result |
 * | ages      | shard u32 ‖ index u64                    | time f64 ‖ session id                 |
 * | system    | "format"                                 | magic "FLOTILLA-STATE" ‖ version u32  |
 * | staging*  | install id u32 ‖ user key / session id   | the data / session record as is       |
 *
 * `version` is the log index of the key's last write. `ages` orders each shard's sessions by the
 * index of their last use, for eviction and expiry.
 */
import { assert } from '../assert.js';

/** Bytes of the shard prefix of every per-shard key. */
export const shardPrefixBytes = 4;
/** Bytes of a data record before the stored value. */
export const dataHeaderBytes = 8;
/** Bytes of a session record before the encoded result. */
export const sessionHeaderBytes = 24;
/** Bytes of an `ages` value before the session id. */
export const ageHeaderBytes = 8;
/** Bytes of a change key. */
export const changeKeyBytes = 16;
/** Bytes of a change value before the key. */
export const changeHeaderBytes = 5;

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
  const view = viewOf(buf);
  view.setUint32(offset, Math.floor(value / 2 ** 32));
  view.setUint32(offset + 4, value >>> 0);
}

/** Reads a u64 big-endian at `offset` as a number (safe by construction). */
export function readU64(buf: Uint8Array, offset: number): number {
  const view = viewOf(buf);
  return view.getUint32(offset) * 2 ** 32 + view.getUint32(offset + 4);
}

/** A DataView over exactly the bytes of `buf`. */
export function viewOf(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
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

/** A data record: version ‖ stored value. */
export function dataRecord(version: number, stored: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(dataHeaderBytes + stored.length);
  writeU64(out, 0, version);
  out.set(stored, dataHeaderBytes);
  return out;
}

/** Encodes shard metadata. */
export function encodeMeta(meta: ShardMeta): Buffer {
  const out = Buffer.allocUnsafe(metaBytes);
  const fields = [
    meta.appliedIndex,
    meta.appliedTerm,
    meta.keyCount,
    meta.changeCount,
    meta.changeBytes,
    meta.changesCompactedIndex,
    meta.sessionCount,
    meta.hashLow,
    meta.hashHigh,
  ];
  for (let i = 0; i < fields.length; i++) writeU64(out, i * 8, fields[i]!);
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

/** `shard ‖ index ‖ ordinal`: the key of one change record. */
export function changeKey(shard: number, index: number, ordinal: number): Buffer {
  const out = Buffer.allocUnsafe(changeKeyBytes);
  out.writeUInt32BE(shard, 0);
  writeU64(out, 4, index);
  out.writeUInt32BE(ordinal, 12);
  return out;
}

/** `shard ‖ index`: the key of a session's entry in the age index. */
export function ageKey(shard: number, index: number): Buffer {
  const out = Buffer.allocUnsafe(shardPrefixBytes + 8);
  out.writeUInt32BE(shard, 0);
  writeU64(out, 4, index);
  return out;
}

/** A session record: the last request's sequence number, where and when it ran, its result. */
export interface SessionRecord {
  seq: number;
  index: number;
  time: number;
  result: Uint8Array;
}

/** Encodes a session record. */
export function encodeSession(record: SessionRecord): Buffer {
  const out = Buffer.allocUnsafe(sessionHeaderBytes + record.result.length);
  writeU64(out, 0, record.seq);
  writeU64(out, 8, record.index);
  out.writeDoubleBE(record.time, 16);
  out.set(record.result, sessionHeaderBytes);
  return out;
}

/** Decodes a session record; undefined when it is too short. */
export function decodeSession(buf: Uint8Array): SessionRecord | undefined {
  if (buf.length < sessionHeaderBytes) return undefined;
  return {
    seq: readU64(buf, 0),
    index: readU64(buf, 8),
    time: viewOf(buf).getFloat64(16),
    result: buf.subarray(sessionHeaderBytes),
  };
}

/** An `ages` value: the session's last time ‖ its id. */
export function encodeAge(time: number, id: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(ageHeaderBytes + id.length);
  out.writeDoubleBE(time, 0);
  out.set(id, ageHeaderBytes);
  return out;
}
