/**
 * Fuzzing the record framing decoder (wasm/format.ts), through the active kernel (wasm/index.ts)
 * and the pure-TypeScript reference: any bytes give a DecodeResult whose records all re-verify,
 * whose `end` is on a record boundary, whose status is the documented one for the bytes at
 * `end`, and on which both implementations agree. Nothing throws.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  crc32c,
  type DecodeResult,
  decodeRecords,
  encodeRecords,
  headerFlagsOffset,
  headerIndexOffset,
  headerLengthOffset,
  headerReservedOffset,
  headerTermOffset,
  headerTypeOffset,
  type RecordInput,
  recordGroup,
  recordHeaderBytes,
  recordIndex,
  recordPayload,
  recordPayloadBytesMax,
  recordTerm,
  recordType,
} from '../../wasm/index.js';
import { decodeRecords as decodeRecordsRef } from '../../wasm/reference/framing.js';
import { decodeOverheadBytes, fuzzParams, fuzzTimeoutMs, growthDuring } from './fuzz-support.js';
import { type Field, mutate, mutationsArb } from './mutate.js';

const recordArb: fc.Arbitrary<RecordInput> = fc.record({
  type: fc.integer({ min: 1, max: 255 }),
  group: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 0xffffffff })),
  term: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.maxSafeNat()),
  index: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.maxSafeNat()),
  payload: fc.uint8Array({ maxLength: 96 }),
});

/** A valid encoding: records, then optionally the zeroed tail of a preallocated file. */
interface Seed {
  records: RecordInput[];
  bytes: Uint8Array;
  padding: number;
}

const seedArb: fc.Arbitrary<Seed> = fc
  .tuple(
    fc.array(recordArb, { maxLength: 6 }),
    fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 80 })),
  )
  .map(([records, padding]) => {
    // The kernel's output may be a view into its memory: copy before the next call.
    const framed = encodeRecords(records).slice();
    const bytes = new Uint8Array(framed.length + padding);
    bytes.set(framed);
    return { records, bytes, padding };
  });

function u32(buf: Uint8Array, at: number): number {
  return new DataView(buf.buffer, buf.byteOffset, buf.length).getUint32(at, true);
}

/** The header fields of every record of a valid encoding, for 'field' mutations. */
function fieldsOf(records: readonly RecordInput[]): Field[] {
  const fields: Field[] = [];
  let at = 0;
  for (const r of records) {
    fields.push({ at: at + headerLengthOffset, width: 4, littleEndian: true });
    fields.push({ at: at + headerTypeOffset, width: 1, littleEndian: true });
    fields.push({ at: at + headerFlagsOffset, width: 1, littleEndian: true });
    fields.push({ at: at + headerReservedOffset, width: 2, littleEndian: true });
    fields.push({ at: at + headerTermOffset, width: 8, littleEndian: true });
    fields.push({ at: at + headerIndexOffset, width: 8, littleEndian: true });
    at += recordHeaderBytes + r.payload.length;
  }
  return fields;
}

/** Recomputes the CRC of every record whose header still announces a length that fits. */
function reseal(buf: Uint8Array): Uint8Array {
  const out = buf.slice();
  const view = new DataView(out.buffer);
  let at = 0;
  while (at + recordHeaderBytes <= out.length) {
    const length = view.getUint32(at + headerLengthOffset, true);
    const end = at + recordHeaderBytes + length;
    if (length > recordPayloadBytesMax || end > out.length) break;
    view.setUint32(at, crc32c(out.subarray(at + 4, end)), true);
    at = end;
  }
  return out;
}

function isZero(buf: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] !== 0) return false;
  return true;
}

/** Whether the record at `at` is present in full and passes every check of the format. */
function verifies(buf: Uint8Array, at: number): boolean {
  if (at + recordHeaderBytes > buf.length) return false;
  const length = u32(buf, at + headerLengthOffset);
  const end = at + recordHeaderBytes + length;
  if (length > recordPayloadBytesMax || end > buf.length) return false;
  if (crc32c(buf.subarray(at + 4, end)) !== u32(buf, at)) return false;
  return buf[at + headerTypeOffset] !== 0 && isZero(buf, at + headerFlagsOffset, at + 12);
}

/** A plain copy of a result: the kernel's offsets may live in its memory. */
function copyResult(r: DecodeResult) {
  const out: {
    count: number;
    offsets: number[];
    end: number;
    status: string;
    reason?: string;
  } = { count: r.count, offsets: Array.from(r.offsets), end: r.end, status: r.status };
  if (r.reason !== undefined) out.reason = r.reason;
  return out;
}

type Plain = ReturnType<typeof copyResult>;

/** The status the format prescribes for the bytes at `end`. */
function expectStatus(buf: Uint8Array, r: Plain, recordsMax: number): void {
  const rest = buf.length - r.end;
  switch (r.status) {
    case 'ok':
      expect(rest === 0 || r.count === recordsMax).toBe(true);
      expect(r.reason).toBeUndefined();
      return;
    case 'zero':
      expect(rest).toBeGreaterThan(0);
      expect(isZero(buf, r.end, Math.min(buf.length, r.end + recordHeaderBytes))).toBe(true);
      expect(r.reason).toBeUndefined();
      return;
    case 'torn':
      expect(rest).toBeGreaterThan(0);
      expect(isZero(buf, r.end, Math.min(buf.length, r.end + recordHeaderBytes))).toBe(false);
      if (rest >= recordHeaderBytes) {
        const length = u32(buf, r.end + headerLengthOffset);
        expect(length).toBeLessThanOrEqual(recordPayloadBytesMax);
        expect(recordHeaderBytes + length).toBeGreaterThan(rest);
      }
      expect(r.reason).toBeUndefined();
      return;
    case 'corrupt': {
      expect(rest).toBeGreaterThanOrEqual(recordHeaderBytes);
      expect(verifies(buf, r.end)).toBe(false);
      const length = u32(buf, r.end + headerLengthOffset);
      if (r.reason === 'length') {
        expect(length).toBeGreaterThan(recordPayloadBytesMax);
      } else {
        expect(['checksum', 'header']).toContain(r.reason);
        expect(recordHeaderBytes + length).toBeLessThanOrEqual(rest);
        const end = r.end + recordHeaderBytes + length;
        const crcOk = crc32c(buf.subarray(r.end + 4, end)) === u32(buf, r.end);
        expect(crcOk).toBe(r.reason === 'header');
      }
      return;
    }
    default:
      throw new Error(`undocumented status ${String(r.status)}`);
  }
}

/** Every property a result of decoding `buf` must have, for both implementations. */
function checkDecode(buf: Uint8Array, recordsMax: number | undefined): Plain {
  const max = recordsMax ?? Number.POSITIVE_INFINITY;
  const { result: active, bytes } = growthDuring(() => copyResult(decodeRecords(buf, recordsMax)));
  expect(bytes).toBeLessThan(decodeOverheadBytes + 16 * buf.length);
  const reference = copyResult(decodeRecordsRef(buf, recordsMax));
  expect(active).toEqual(reference);
  expect(active.count).toBe(active.offsets.length);
  expect(active.count).toBeLessThanOrEqual(max);
  expect(active.end).toBeGreaterThanOrEqual(0);
  expect(active.end).toBeLessThanOrEqual(buf.length);
  let at = 0;
  for (const offset of active.offsets) {
    expect(offset).toBe(at);
    expect(verifies(buf, offset)).toBe(true);
    at = offset + recordHeaderBytes + u32(buf, offset + headerLengthOffset);
  }
  expect(active.end).toBe(at);
  expectStatus(buf, active, max);
  // The verified prefix alone decodes to the same records, cleanly.
  const prefix = copyResult(decodeRecords(buf.subarray(0, active.end)));
  expect(prefix).toEqual({ count: active.count, offsets: active.offsets, end: at, status: 'ok' });
  return active;
}

const recordsMaxArb = fc.option(fc.integer({ min: 0, max: 8 }), { nil: undefined });

describe('fuzz: record framing (wasm/index.ts and wasm/reference)', () => {
  it(
    'decodes every valid encoding exactly',
    () => {
      fc.assert(
        fc.property(seedArb, ({ records, bytes, padding }) => {
          const r = checkDecode(bytes, undefined);
          expect(r.count).toBe(records.length);
          expect(r.status).toBe(padding > 0 ? 'zero' : 'ok');
          records.forEach((rec, i) => {
            const at = r.offsets[i]!;
            expect(recordType(bytes, at)).toBe(rec.type);
            expect(recordGroup(bytes, at)).toBe(rec.group);
            expect(recordTerm(bytes, at)).toBe(rec.term);
            expect(recordIndex(bytes, at)).toBe(rec.index);
            expect(recordPayload(bytes, at)).toEqual(rec.payload);
          });
        }),
        fuzzParams('framing valid', 300),
      );
    },
    fuzzTimeoutMs,
  );

  it(
    'gives a consistent result for mutated encodings, resealed or not',
    () => {
      const seen = new Set<string>();
      fc.assert(
        fc.property(
          seedArb,
          seedArb,
          mutationsArb(5),
          fc.boolean(),
          recordsMaxArb,
          (seed, donor, mutations, resealed, recordsMax) => {
            const ctx = { fields: fieldsOf(seed.records), donors: [donor.bytes] };
            const mutated = mutate(seed.bytes, mutations, ctx);
            const r = checkDecode(resealed ? reseal(mutated) : mutated, recordsMax);
            // Where verification stopped, and whether it got past a first record to get there.
            seen.add(`${r.status}/${r.reason ?? ''}/${r.count > 0 ? 'deep' : 'first'}`);
          },
        ),
        fuzzParams('framing mutated', 3000),
      );
      // The mutations reached every outcome, behind at least one good record too.
      for (const status of ['ok/', 'zero/', 'torn/', 'corrupt/length', 'corrupt/checksum']) {
        expect(seen).toContain(`${status}/deep`);
      }
      expect(seen).toContain('corrupt/header/first');
    },
    fuzzTimeoutMs,
  );

  it(
    'gives a consistent result for random bytes',
    () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 256 }), recordsMaxArb, (bytes, recordsMax) => {
          checkDecode(bytes, recordsMax);
        }),
        fuzzParams('framing random', 1000),
      );
    },
    fuzzTimeoutMs,
  );
});
