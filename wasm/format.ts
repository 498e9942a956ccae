/**
 * The record frame: the one binary layout shared by the log on disk and the wire between nodes.
 *
 * HARD FORMAT: every constant in this file fixes bytes on disk. Changing one makes existing logs
 * unreadable; bump the log's format version instead.
 *
 * A record is a 32-byte little-endian header followed by `length` payload bytes:
 *
 * | offset | size | field                                                              |
 * |-------:|-----:|--------------------------------------------------------------------|
 * |      0 |    4 | crc32c (Castagnoli) of bytes [4, 32 + length): header rest+payload |
 * |      4 |    4 | length: payload bytes (u32)                                        |
 * |      8 |    1 | type: 1..255 (0 never starts a record: zeroed, preallocated space)  |
 * |      9 |    1 | flags: 0 (reserved)                                                |
 * |     10 |    2 | reserved: 0                                                        |
 * |     12 |    4 | group (u32)                                                        |
 * |     16 |    8 | term (u64, as two u32: low word first)                             |
 * |     24 |    8 | index (u64, as two u32: low word first)                            |
 * |     32 |    n | payload                                                            |
 *
 * Records are packed back to back with no padding. Terms and indexes are JavaScript numbers, so
 * they must stay below 2^53.
 */
export const recordHeaderBytes = 32;
/** Largest payload a single record may carry; a longer length field is corruption. */
export const recordPayloadBytesMax = 64 * 1024 * 1024;
/** Largest term or index a record may carry (JavaScript's safe integer range). */
export const recordNumberMax = Number.MAX_SAFE_INTEGER;

export const headerCrcOffset = 0;
export const headerLengthOffset = 4;
export const headerTypeOffset = 8;
export const headerFlagsOffset = 9;
export const headerReservedOffset = 10;
export const headerGroupOffset = 12;
export const headerTermOffset = 16;
export const headerIndexOffset = 24;

/** One record to encode. `type` is 1..255; `group` a u32; `term` and `index` safe integers. */
export interface RecordInput {
  type: number;
  group: number;
  term: number;
  index: number;
  payload: Uint8Array;
}

/** How a decode pass ended. */
export type DecodeStatus =
  /** Every byte of the buffer was consumed by valid records. */
  | 'ok'
  /** A 32-byte all-zero header was reached: the end of the written part of a preallocated file. */
  | 'zero'
  /** The buffer ends inside a header or inside the payload a valid-looking header announces. */
  | 'torn'
  /** A record is present in full but fails verification. */
  | 'corrupt';

/** Why a record failed verification. */
export type CorruptReason = 'checksum' | 'length' | 'header';

/** The outcome of verifying a buffer of records. */
export interface DecodeResult {
  /** Records verified, from the start of the buffer. */
  count: number;
  /** Start offset of each verified record (`count` entries). */
  offsets: Uint32Array;
  /** Offset just past the last verified record. */
  end: number;
  status: DecodeStatus;
  /** For 'corrupt': what failed at `end`. */
  reason?: CorruptReason;
}

function u32At(buf: Uint8Array, offset: number): number {
  return (
    (buf[offset]! |
      (buf[offset + 1]! << 8) |
      (buf[offset + 2]! << 16) |
      (buf[offset + 3]! << 24)) >>>
    0
  );
}

/** Type byte of the record at `offset` of a verified buffer. */
export function recordType(buf: Uint8Array, offset: number): number {
  return buf[offset + headerTypeOffset]!;
}

/** Group of the record at `offset` of a verified buffer. */
export function recordGroup(buf: Uint8Array, offset: number): number {
  return u32At(buf, offset + headerGroupOffset);
}

/** Term of the record at `offset` of a verified buffer. */
export function recordTerm(buf: Uint8Array, offset: number): number {
  return (
    u32At(buf, offset + headerTermOffset) + u32At(buf, offset + headerTermOffset + 4) * 2 ** 32
  );
}

/** Index of the record at `offset` of a verified buffer. */
export function recordIndex(buf: Uint8Array, offset: number): number {
  return (
    u32At(buf, offset + headerIndexOffset) + u32At(buf, offset + headerIndexOffset + 4) * 2 ** 32
  );
}

/** Payload length of the record at `offset` of a verified buffer. */
export function recordPayloadLength(buf: Uint8Array, offset: number): number {
  return u32At(buf, offset + headerLengthOffset);
}

/** Total bytes (header + payload) of the record at `offset` of a verified buffer. */
export function recordBytes(buf: Uint8Array, offset: number): number {
  return recordHeaderBytes + recordPayloadLength(buf, offset);
}

/** The payload of the record at `offset` of a verified buffer, as a view (no copy). */
export function recordPayload(buf: Uint8Array, offset: number): Uint8Array {
  const start = offset + recordHeaderBytes;
  return buf.subarray(start, start + recordPayloadLength(buf, offset));
}

/** Bytes the encoding of `records` occupies. */
export function encodedBytes(records: readonly RecordInput[]): number {
  let total = 0;
  for (const r of records) total += recordHeaderBytes + r.payload.length;
  return total;
}

/** Throws RangeError when a record cannot be framed (a programmer error in the caller). */
export function checkRecordInput(r: RecordInput): void {
  checkRecordFields(r.type, r.group, r.term, r.index, r.payload.length);
}

/** As `checkRecordInput`, for a record given field by field. */
export function checkRecordFields(
  type: number,
  group: number,
  term: number,
  index: number,
  payloadBytes: number,
): void {
  if (!Number.isInteger(type) || type < 1 || type > 255) {
    throw new RangeError(`record type must be 1..255, got ${type}`);
  }
  if (!Number.isInteger(group) || group < 0 || group > 0xffffffff) {
    throw new RangeError(`record group must be a u32, got ${group}`);
  }
  if (!Number.isSafeInteger(term) || term < 0) {
    throw new RangeError(`record term must be a safe non-negative integer, got ${term}`);
  }
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new RangeError(`record index must be a safe non-negative integer, got ${index}`);
  }
  if (payloadBytes > recordPayloadBytesMax) {
    throw new RangeError(`record payload of ${payloadBytes} B exceeds ${recordPayloadBytesMax}`);
  }
}
