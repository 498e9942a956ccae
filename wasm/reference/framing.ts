/**
 * Record framing, the plain-TypeScript specification of the WASM kernel (layout in ../format.ts).
 */
import {
  checkRecordInput,
  type DecodeResult,
  encodedBytes,
  headerFlagsOffset,
  headerGroupOffset,
  headerIndexOffset,
  headerLengthOffset,
  headerReservedOffset,
  headerTermOffset,
  headerTypeOffset,
  type RecordInput,
  recordHeaderBytes,
  recordPayloadBytesMax,
} from '../format.js';
import { batchHeaderWords, checkOutputRoom, type RecordBatch } from '../record-batch.js';
import { crc32c } from './crc32c.js';

function putU32(buf: Uint8Array, offset: number, value: number): void {
  buf[offset] = value & 0xff;
  buf[offset + 1] = (value >>> 8) & 0xff;
  buf[offset + 2] = (value >>> 16) & 0xff;
  buf[offset + 3] = (value >>> 24) & 0xff;
}

function getU32(buf: Uint8Array, offset: number): number {
  return (
    (buf[offset]! |
      (buf[offset + 1]! << 8) |
      (buf[offset + 2]! << 16) |
      (buf[offset + 3]! << 24)) >>>
    0
  );
}

function putU64(buf: Uint8Array, offset: number, value: number): void {
  putU32(buf, offset, value >>> 0);
  putU32(buf, offset + 4, Math.floor(value / 2 ** 32));
}

/** Encodes `records` back to back into a new buffer. */
export function encodeRecords(records: readonly RecordInput[]): Uint8Array {
  const out = new Uint8Array(encodedBytes(records));
  let at = 0;
  for (const r of records) {
    checkRecordInput(r);
    putU32(out, at + headerLengthOffset, r.payload.length);
    out[at + headerTypeOffset] = r.type;
    out[at + headerFlagsOffset] = 0;
    out[at + headerReservedOffset] = 0;
    out[at + headerReservedOffset + 1] = 0;
    putU32(out, at + headerGroupOffset, r.group);
    putU64(out, at + headerTermOffset, r.term);
    putU64(out, at + headerIndexOffset, r.index);
    out.set(r.payload, at + recordHeaderBytes);
    const end = at + recordHeaderBytes + r.payload.length;
    putU32(out, at, crc32c(out.subarray(at + 4, end)));
    at = end;
  }
  return out;
}

/** Frames the records of `batch` back to back into `out` from `at`; returns the bytes written. */
export function encodeRecordsInto(batch: RecordBatch, out: Uint8Array, at: number): number {
  checkOutputRoom(out, at, batch.bytes);
  const words = batch.headers;
  let to = at;
  for (let k = 0; k < batch.count; k++) {
    const w = k * batchHeaderWords;
    const payload = batch.payload(k);
    putU32(out, to + headerLengthOffset, payload.length);
    out[to + headerTypeOffset] = words[w]!;
    out[to + headerFlagsOffset] = 0;
    out[to + headerReservedOffset] = 0;
    out[to + headerReservedOffset + 1] = 0;
    putU32(out, to + headerGroupOffset, words[w + 1]!);
    putU32(out, to + headerTermOffset, words[w + 2]!);
    putU32(out, to + headerTermOffset + 4, words[w + 3]!);
    putU32(out, to + headerIndexOffset, words[w + 4]!);
    putU32(out, to + headerIndexOffset + 4, words[w + 5]!);
    out.set(payload, to + recordHeaderBytes);
    const end = to + recordHeaderBytes + payload.length;
    putU32(out, to, crc32c(out.subarray(to + 4, end)));
    to = end;
  }
  return to - at;
}

function isZero(buf: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] !== 0) return false;
  return true;
}

/**
 * Verifies the records of `buf` from its start and reports where verification stopped.
 * `recordsMax` bounds how many records are verified (the rest is left for another call).
 */
export function decodeRecords(
  buf: Uint8Array,
  recordsMax = Number.POSITIVE_INFINITY,
): DecodeResult {
  const offsets: number[] = [];
  let at = 0;
  const finish = (status: DecodeResult['status'], reason?: DecodeResult['reason']) => {
    const result: DecodeResult = {
      count: offsets.length,
      offsets: Uint32Array.from(offsets),
      end: at,
      status,
    };
    if (reason !== undefined) result.reason = reason;
    return result;
  };
  while (at < buf.length && offsets.length < recordsMax) {
    const remaining = buf.length - at;
    if (remaining < recordHeaderBytes) {
      return isZero(buf, at, buf.length) ? finish('zero') : finish('torn');
    }
    if (isZero(buf, at, at + recordHeaderBytes)) return finish('zero');
    const length = getU32(buf, at + headerLengthOffset);
    if (length > recordPayloadBytesMax) return finish('corrupt', 'length');
    if (recordHeaderBytes + length > remaining) return finish('torn');
    const end = at + recordHeaderBytes + length;
    if (crc32c(buf.subarray(at + 4, end)) !== getU32(buf, at)) return finish('corrupt', 'checksum');
    const reservedOk =
      buf[at + headerFlagsOffset] === 0 &&
      buf[at + headerReservedOffset] === 0 &&
      buf[at + headerReservedOffset + 1] === 0;
    if (buf[at + headerTypeOffset] === 0 || !reservedOk) return finish('corrupt', 'header');
    offsets.push(at);
    at = end;
  }
  return finish('ok');
}
