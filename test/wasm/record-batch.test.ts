import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type RecordInput, recordPayloadBytesMax } from '../../wasm/format.js';
import { WasmKernels } from '../../wasm/loader.js';
import { RecordBatch } from '../../wasm/record-batch.js';
import {
  decodeRecords as decodeRef,
  encodeRecords as encodeRef,
} from '../../wasm/reference/framing.js';
import { allImpls, batchArb, errorOf, plain, shifted } from './impls.js';

function batchOf(records: readonly RecordInput[], batch = new RecordBatch(2)): RecordBatch {
  for (const r of records) batch.add(r.type, r.group, r.term, r.index, r.payload);
  return batch;
}

/** Whether two buffers hold the same bytes (toEqual on megabytes is slow). */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

describe.each(allImpls)('encodeRecordsInto: $name', (impl) => {
  it('frames a batch exactly as encodeRecords, at any offset, touching nothing else', () => {
    fc.assert(
      fc.property(
        batchArb(12, 300),
        fc.nat({ max: 50 }),
        fc.nat({ max: 20 }),
        (records, at, slack) => {
          const batch = batchOf(records);
          const expected = encodeRef(records);
          expect(batch.bytes).toBe(expected.length);
          const out = new Uint8Array(at + expected.length + slack).fill(0xee);
          expect(impl.encodeRecordsInto(batch, out, at)).toBe(expected.length);
          expect(Array.from(out.subarray(at, at + expected.length))).toEqual(Array.from(expected));
          expect(out.subarray(0, at).every((b) => b === 0xee)).toBe(true);
          expect(out.subarray(at + expected.length).every((b) => b === 0xee)).toBe(true);
        },
      ),
      { numRuns: 120 },
    );
  });

  it('reads payloads from views at odd offsets and frames a reused batch afresh', () => {
    const batch = new RecordBatch(1);
    fc.assert(
      fc.property(batchArb(40, 100), fc.nat({ max: 7 }), (records, shift) => {
        batch.clear();
        const views = records.map((r) => ({ ...r, payload: shifted(r.payload, shift) }));
        batchOf(views, batch);
        const out = new Uint8Array(batch.bytes);
        impl.encodeRecordsInto(batch, out, 0);
        expect(Array.from(out)).toEqual(Array.from(encodeRef(records)));
      }),
      { numRuns: 80 },
    );
  });

  it('output verifies; a torn tail reads as torn and a flipped byte as corrupt', () => {
    fc.assert(
      fc.property(batchArb(8, 120), fc.nat(), fc.nat(), (records, cut, flip) => {
        fc.pre(records.length > 0);
        const batch = batchOf(records);
        const out = new Uint8Array(batch.bytes);
        impl.encodeRecordsInto(batch, out, 0);
        const whole = impl.decodeRecords(out);
        expect(whole.status).toBe('ok');
        expect(whole.count).toBe(records.length);
        const lastStart = whole.offsets[records.length - 1]!;
        const torn = out.subarray(0, lastStart + 1 + (cut % (out.length - lastStart - 1 || 1)));
        if (torn.length < out.length) {
          expect(plain(impl.decodeRecords(torn))).toStrictEqual(plain(decodeRef(torn)));
          // The cut record is never passed off as whole ('zero' if its cut header is all zeros).
          const cutResult = impl.decodeRecords(torn);
          expect(cutResult.status).not.toBe('ok');
          expect(cutResult.count).toBe(records.length - 1);
        }
        // A flipped bit anywhere is caught (a flipped length may instead read as torn).
        const damaged = out.slice();
        damaged[flip % damaged.length]! ^= 0x40;
        const result = impl.decodeRecords(damaged);
        expect(['corrupt', 'torn']).toContain(result.status);
        expect(plain(result)).toStrictEqual(plain(decodeRef(damaged)));
        const badCrc = out.slice();
        badCrc[lastStart]! ^= 1;
        const last = impl.decodeRecords(badCrc);
        expect([last.status, last.reason, last.end]).toEqual(['corrupt', 'checksum', lastStart]);
      }),
      { numRuns: 120 },
    );
  });

  it('refuses an output without room, changing none of it', () => {
    const batch = batchOf([{ type: 1, group: 1, term: 1, index: 1, payload: new Uint8Array(8) }]);
    for (const [size, at] of [
      [39, 0],
      [40, 1],
      [40, -1],
      [80, 0.5],
    ] as const) {
      const out = new Uint8Array(size).fill(3);
      expect(() => impl.encodeRecordsInto(batch, out, at)).toThrow(RangeError);
      expect(out.every((b) => b === 3)).toBe(true);
    }
  });

  it('frames an empty batch as nothing', () => {
    expect(impl.encodeRecordsInto(new RecordBatch(), new Uint8Array(0), 0)).toBe(0);
  });
});

describe('RecordBatch', () => {
  it('rejects fields encodeRecords rejects, with the same error, and keeps what it had', () => {
    const good = { type: 1, group: 1, term: 1, index: 1, payload: new Uint8Array(1) };
    const bads = [
      { ...good, type: 0 },
      { ...good, type: 256 },
      { ...good, type: 1.5 },
      { ...good, group: -1 },
      { ...good, group: 2 ** 32 },
      { ...good, term: 2 ** 53 },
      { ...good, term: -1 },
      { ...good, index: -1 },
      { ...good, index: 1.5 },
    ];
    for (const bad of bads) {
      const batch = batchOf([good]);
      const expected = errorOf(() => encodeRef([bad]));
      expect(expected).toBeInstanceOf(RangeError);
      expect(errorOf(() => batchOf([bad], batch))).toStrictEqual(expected);
      expect(batch.count).toBe(1);
      expect(batch.bytes).toBe(33);
    }
  });

  it('rejects a payload longer than a record may carry', () => {
    const payload = { length: recordPayloadBytesMax + 1 } as unknown as Uint8Array;
    expect(() => new RecordBatch().add(1, 1, 1, 1, payload)).toThrow(RangeError);
  });

  it('grows past its first capacity and clears to empty', () => {
    const batch = new RecordBatch(1);
    const records = Array.from({ length: 100 }, (_, i) => ({
      type: 1 + (i % 3),
      group: i,
      term: 2 ** 40 + i,
      index: 2 ** 50 + i,
      payload: new Uint8Array(i % 7).fill(i),
    }));
    batchOf(records, batch);
    expect(batch.count).toBe(100);
    expect(batch.payload(99)).toBe(records[99]!.payload);
    batch.clear();
    expect(batch.count).toBe(0);
    expect(batch.bytes).toBe(0);
  });
});

describe('encodeRecordsInto in WASM', () => {
  it('grows kernel memory for a batch larger than it', () => {
    const kernels = new WasmKernels();
    const records = Array.from({ length: 30 }, (_, i) => ({
      type: 2,
      group: i,
      term: 3,
      index: i + 1,
      payload: new Uint8Array(100_000 + i).fill(i),
    }));
    const batch = batchOf(records);
    const out = new Uint8Array(batch.bytes);
    kernels.encodeRecordsInto(batch, out, 0);
    expect(same(out, encodeRef(records))).toBe(true);
  });

  it('frames payloads that are views into its last encodeRecords output, even when it grows', () => {
    const kernels = new WasmKernels();
    const big = { type: 1, group: 1, term: 1, index: 1, payload: new Uint8Array(2_000_000) };
    big.payload.fill(9, 500);
    const live = kernels.encodeRecords([big]);
    const batch = batchOf([
      { ...big, payload: live },
      { ...big, index: 2 },
    ]);
    const expected = encodeRef([
      { ...big, payload: encodeRef([big]) },
      { ...big, index: 2 },
    ]);
    const out = new Uint8Array(batch.bytes);
    kernels.encodeRecordsInto(batch, out, 0);
    expect(same(out, expected)).toBe(true);
  });

  it('refuses an output in kernel memory', () => {
    const kernels = new WasmKernels();
    const live = kernels.encodeRecords([
      { type: 1, group: 1, term: 1, index: 1, payload: new Uint8Array(100) },
    ]);
    const batch = batchOf([{ type: 1, group: 1, term: 1, index: 1, payload: new Uint8Array(1) }]);
    expect(() => kernels.encodeRecordsInto(batch, live, 0)).toThrow(RangeError);
  });
});
