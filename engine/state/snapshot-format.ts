/**
 * The snapshot stream of one shard: a sequence of self-verifying chunks, each at most
 * `snapshotChunkBytesMax` bytes, that can cross the network and arrive over time.
 *
 * HARD FORMAT (snapshots travel between nodes of different builds). Little-endian, like the
 * record frame (wasm/format.ts); u64 = two u32, low word first.
 *
 * Chunk: a 24-byte header, then `length` payload bytes.
 * | offset | size | field                                                      |
 * |-------:|-----:|------------------------------------------------------------|
 * |      0 |    4 | crc32c of bytes [4, 24 + length)                           |
 * |      4 |    4 | magic 0x53534c46 ("FLSS")                                  |
 * |      8 |    1 | format version (`snapshotFormatVersion`)                   |
 * |      9 |    1 | kind: 1 begin, 2 data, 3 end                               |
 * |     10 |    2 | reserved, 0                                                |
 * |     12 |    4 | source shard (u32), the same in every chunk                |
 * |     16 |    4 | sequence number: 0 for begin, then +1 per chunk            |
 * |     20 |    4 | payload length                                             |
 *
 * Begin payload: applied index u64 ‖ applied term u64 ‖ hash low u64 ‖ hash high u64.
 * Data payload: items back to back, each `kind u8 (1 key, 2 session) ‖ key length u32 ‖ key ‖
 * record length u32 ‖ record`, where the key is the user key (or session id) without the shard
 * prefix and the record is the LMDB value as stored (layout.ts). Keys come first, then sessions,
 * each strictly ascending by bytes.
 * End payload: key count u64 ‖ session count u64 ‖ content checksum u32.
 *
 * The content checksum is the crc32c of every item's bytes (as in the data payloads, in order)
 * followed by the begin payload: the same number KvState.checksum() gives for the shard, so a
 * snapshot is verified end to end and replicas compare with one call.
 */

import { crc32c } from '../../wasm/index.js';
import { FlotillaError } from '../errors.js';
import { snapshotFormatVersion } from '../limits.js';

/** Chunk magic ("FLSS" read as little-endian u32). HARD. */
export const snapshotMagic = 0x53534c46;
/** Bytes of a chunk header. HARD. */
export const chunkHeaderBytes = 24;
/** Bytes of the begin payload. */
export const beginPayloadBytes = 32;
/** Bytes of the end payload. */
export const endPayloadBytes = 20;
/** Bytes an item adds to its key and record. */
export const itemOverheadBytes = 9;

/** Chunk kinds. HARD. */
export const ChunkKind = { Begin: 1, Data: 2, End: 3 } as const;
/** Item kinds. HARD. */
export const ItemKind = { Key: 1, Session: 2 } as const;

/** What the begin chunk says about the shard. */
export interface SnapshotHeader {
  appliedIndex: number;
  appliedTerm: number;
  hashLow: number;
  hashHigh: number;
}

/** What the end chunk says about the stream. */
export interface SnapshotTrailer {
  keyCount: number;
  sessionCount: number;
  checksum: number;
}

/** A verified chunk. */
export interface Chunk {
  kind: number;
  shard: number;
  seq: number;
  payload: Uint8Array;
}

function writeU64le(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value >>> 0, true);
  view.setUint32(offset + 4, Math.floor(value / 2 ** 32), true);
}

function readU64le(view: DataView, offset: number): number {
  return view.getUint32(offset, true) + view.getUint32(offset + 4, true) * 2 ** 32;
}

/** A whole chunk around `payload`. */
export function encodeChunk(kind: number, shard: number, seq: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(chunkHeaderBytes + payload.length);
  out.writeUInt32LE(snapshotMagic, 4);
  out[8] = snapshotFormatVersion;
  out[9] = kind;
  out.writeUInt16LE(0, 10);
  out.writeUInt32LE(shard, 12);
  out.writeUInt32LE(seq, 16);
  out.writeUInt32LE(payload.length, 20);
  out.set(payload, chunkHeaderBytes);
  out.writeUInt32LE(crc32c(out.subarray(4)), 0);
  return out;
}

/** Verifies one chunk's framing and checksum; throws CORRUPT_STATE. */
export function decodeChunk(chunk: Uint8Array): Chunk {
  if (chunk.length < chunkHeaderBytes) throw corrupt(`a chunk of ${chunk.length} bytes is torn`);
  const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.length);
  if (view.getUint32(4, true) !== snapshotMagic) throw corrupt('a chunk has the wrong magic');
  const verified = view.getUint32(0, true) === crc32c(chunk.subarray(4));
  // Only a chunk that verifies was written by another version; any other is damaged.
  if (!verified) throw corrupt('a chunk fails its checksum');
  if (chunk[8] !== snapshotFormatVersion) {
    throw new FlotillaError(
      'VERSION_MISMATCH',
      `snapshot format ${chunk[8]}; this build reads ${snapshotFormatVersion}`,
    );
  }
  const length = view.getUint32(20, true);
  if (chunkHeaderBytes + length !== chunk.length) {
    throw corrupt(`a chunk announces ${length} payload bytes and has ${chunk.length - 24}`);
  }
  if (view.getUint16(10, true) !== 0) throw corrupt('a chunk has its reserved bytes set');
  return {
    kind: chunk[9]!,
    shard: view.getUint32(12, true),
    seq: view.getUint32(16, true),
    payload: chunk.subarray(chunkHeaderBytes),
  };
}

/** The begin payload. */
export function encodeHeader(header: SnapshotHeader): Buffer {
  const out = Buffer.allocUnsafe(beginPayloadBytes);
  const view = new DataView(out.buffer, out.byteOffset, out.length);
  writeU64le(view, 0, header.appliedIndex);
  writeU64le(view, 8, header.appliedTerm);
  writeU64le(view, 16, header.hashLow);
  writeU64le(view, 24, header.hashHigh);
  return out;
}

/** Reads a begin payload; throws CORRUPT_STATE. */
export function decodeHeader(payload: Uint8Array): SnapshotHeader {
  if (payload.length !== beginPayloadBytes) throw corrupt('the begin chunk has the wrong size');
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const header = {
    appliedIndex: readU64le(view, 0),
    appliedTerm: readU64le(view, 8),
    hashLow: readU64le(view, 16),
    hashHigh: readU64le(view, 24),
  };
  const sane =
    Number.isSafeInteger(header.appliedIndex) &&
    Number.isSafeInteger(header.appliedTerm) &&
    header.hashLow < header.hashHigh &&
    header.hashHigh <= 2 ** 32;
  if (!sane) throw corrupt('the begin chunk holds impossible values');
  return header;
}

/** The end payload. */
export function encodeTrailer(trailer: SnapshotTrailer): Buffer {
  const out = Buffer.allocUnsafe(endPayloadBytes);
  const view = new DataView(out.buffer, out.byteOffset, out.length);
  writeU64le(view, 0, trailer.keyCount);
  writeU64le(view, 8, trailer.sessionCount);
  view.setUint32(16, trailer.checksum, true);
  return out;
}

/** Reads an end payload; throws CORRUPT_STATE. */
export function decodeTrailer(payload: Uint8Array): SnapshotTrailer {
  if (payload.length !== endPayloadBytes) throw corrupt('the end chunk has the wrong size');
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  return {
    keyCount: readU64le(view, 0),
    sessionCount: readU64le(view, 8),
    checksum: view.getUint32(16, true),
  };
}

/** The bytes of one item. */
export function encodeItem(kind: number, key: Uint8Array, record: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(itemOverheadBytes + key.length + record.length);
  out[0] = kind;
  out.writeUInt32LE(key.length, 1);
  out.set(key, 5);
  out.writeUInt32LE(record.length, 5 + key.length);
  out.set(record, 9 + key.length);
  return out;
}

/** One item of a data payload. */
export interface Item {
  kind: number;
  key: Uint8Array;
  record: Uint8Array;
  /** The item's own bytes, for the checksum. */
  bytes: Uint8Array;
}

/** Splits a data payload into items; throws CORRUPT_STATE when it does not parse exactly. */
export function decodeItems(payload: Uint8Array): Item[] {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const items: Item[] = [];
  let at = 0;
  while (at < payload.length) {
    if (at + 5 > payload.length) throw corrupt('an item header is torn');
    const kind = payload[at]!;
    const keyLength = view.getUint32(at + 1, true);
    const recordAt = at + 5 + keyLength;
    if (recordAt + 4 > payload.length) throw corrupt('an item key is torn');
    const recordLength = view.getUint32(recordAt, true);
    const end = recordAt + 4 + recordLength;
    if (end > payload.length) throw corrupt('an item record is torn');
    items.push({
      kind,
      key: payload.subarray(at + 5, recordAt),
      record: payload.subarray(recordAt + 4, end),
      bytes: payload.subarray(at, end),
    });
    at = end;
  }
  return items;
}

/** A CORRUPT_STATE error about a snapshot stream. */
export function corrupt(message: string): FlotillaError {
  return new FlotillaError('CORRUPT_STATE', `snapshot rejected: ${message}`);
}
