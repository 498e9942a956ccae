import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { recordPayloadBytesMax } from '../../wasm/format.js';
import { WasmKernels } from '../../wasm/loader.js';
import { crc32c } from '../../wasm/reference/crc32c.js';
import {
  decodeRecords as decodeRef,
  encodeRecords as encodeRef,
} from '../../wasm/reference/framing.js';
import {
  ascii,
  batchArb,
  boundaries,
  errorOf,
  plain,
  recordArb,
  shifted,
  wasm,
  wasmImpls,
} from './impls.js';

/** Bytes of the encoding as a plain array (a kernel view is only valid until the next call). */
const bytes = (buf: Uint8Array): number[] => Array.from(buf);

/** Where two long buffers first differ (-1 if equal): cheaper than comparing arrays. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

describe.each(wasmImpls)('encode parity with the reference: $name', (impl) => {
  it('produces the reference bytes for random batches', () => {
    fc.assert(
      fc.property(batchArb(12, 300), (records) => {
        expect(bytes(impl.encodeRecords(records))).toEqual(bytes(encodeRef(records)));
      }),
      { numRuns: 150 },
    );
  });

  it('copies payloads from views at odd offsets', () => {
    fc.assert(
      fc.property(recordArb(200), fc.nat({ max: 7 }), (r, shift) => {
        const view = { ...r, payload: shifted(r.payload, shift) };
        expect(bytes(impl.encodeRecords([view]))).toEqual(bytes(encodeRef([r])));
      }),
      { numRuns: 100 },
    );
  });

  it('rejects invalid records with the reference error', () => {
    const good = { type: 1, group: 1, term: 1, index: 1, payload: new Uint8Array(1) };
    for (const bad of [
      { ...good, type: 0 },
      { ...good, type: 256 },
      { ...good, group: -1 },
      { ...good, group: 2 ** 32 },
      { ...good, term: 2 ** 53 },
      { ...good, index: -1 },
      { ...good, index: 1.5 },
    ]) {
      const expected = errorOf(() => encodeRef([good, bad]));
      expect(expected).toBeInstanceOf(RangeError);
      expect(errorOf(() => impl.encodeRecords([good, bad]))).toStrictEqual(expected);
    }
  });
});

describe('encode output in kernel memory', () => {
  it('grows memory for a batch larger than it and re-derives its views', () => {
    const kernels = new WasmKernels();
    const records = Array.from({ length: 40 }, (_, i) => ({
      type: 2,
      group: i,
      term: 3,
      index: i + 1,
      payload: new Uint8Array(100_000 + i).fill(i),
    }));
    const expected = encodeRef(records);
    const encoded = kernels.encodeRecords(records);
    expect(firstDifference(encoded, expected)).toBe(-1);
    expect(kernels.crc32c(encoded.subarray(1))).toBe(crc32c(expected.subarray(1)));
    const small = [{ type: 1, group: 1, term: 1, index: 1, payload: ascii('x') }];
    expect(bytes(kernels.encodeRecords(small))).toEqual(bytes(encodeRef(small)));
  });

  it('decodes and checksums its own output in place', () => {
    const records = Array.from({ length: 300 }, (_, i) => ({
      type: 1 + (i % 4),
      group: i,
      term: 9,
      index: i,
      payload: new Uint8Array(i % 50).fill(i),
    }));
    const expected = plain(decodeRef(encodeRef(records)));
    const expectedCrc = crc32c(encodeRef(records));
    for (const impl of wasmImpls) {
      expect(plain(impl.decodeRecords(impl.encodeRecords(records))), impl.name).toStrictEqual(
        expected,
      );
      expect(impl.crc32c(impl.encodeRecords(records)), impl.name).toBe(expectedCrc);
    }
  });

  it('decodes its own output in place when the offsets it returns need more memory', () => {
    const kernels = new WasmKernels();
    const records = Array.from({ length: 20_000 }, (_, i) => ({
      type: 1,
      group: i,
      term: 2,
      index: i,
      payload: new Uint8Array(40).fill(i & 0xff),
    }));
    const expected = plain(decodeRef(encodeRef(records)));
    expect(plain(kernels.decodeRecords(kernels.encodeRecords(records)))).toStrictEqual(expected);
  });

  it('encodes payloads that are views into its previous output when that grows memory', () => {
    const kernels = new WasmKernels();
    const big = { type: 1, group: 1, term: 1, index: 1, payload: new Uint8Array(1_500_000) };
    big.payload.fill(7, 1000);
    const out = kernels.encodeRecords([big]);
    const again = [{ ...big, payload: out }];
    const expected = encodeRef([{ ...big, payload: encodeRef([big]) }]);
    expect(firstDifference(kernels.encodeRecords(again), expected)).toBe(-1);
  });

  it('encodes payloads that are views into its previous output', () => {
    const first = Array.from({ length: 30 }, (_, i) => ({
      type: 1,
      group: 1,
      term: 1,
      index: i,
      payload: new Uint8Array(200).fill(i + 1),
    }));
    const out = wasm.encodeRecords(first);
    const again = first.map((r, i) => ({ ...r, payload: out.subarray(i * 232, i * 232 + 232) }));
    const expected = encodeRef(again.map((r) => ({ ...r, payload: r.payload.slice() })));
    expect(bytes(wasm.encodeRecords(again))).toEqual(bytes(expected));
  });
});

describe.each(wasmImpls)('decode parity with the reference: $name', (impl) => {
  it('verifies random well-formed batches, followed by zeros or garbage', () => {
    const tail = fc.oneof(
      fc.constant(new Uint8Array(0)),
      fc.uint8Array({ maxLength: 40 }).map((t) => new Uint8Array(t.length)),
      fc.uint8Array({ maxLength: 80 }),
    );
    fc.assert(
      fc.property(batchArb(10, 300), tail, (records, extra) => {
        const enc = encodeRef(records);
        const buf = new Uint8Array(enc.length + extra.length);
        buf.set(enc);
        buf.set(extra, enc.length);
        expect(plain(impl.decodeRecords(buf))).toStrictEqual(plain(decodeRef(buf)));
      }),
      { numRuns: 200 },
    );
  });

  it('agrees on random mutations: flips, overwrites, truncation', () => {
    const mutation = fc.record({
      at: fc.nat(),
      value: fc.integer({ min: 0, max: 255 }),
      cut: fc.nat(),
      truncate: fc.boolean(),
    });
    fc.assert(
      fc.property(batchArb(8, 200), fc.array(mutation, { maxLength: 3 }), (records, muts) => {
        let buf = encodeRef(records);
        for (const m of muts) {
          if (buf.length === 0) break;
          buf[m.at % buf.length] = m.value;
          if (m.truncate) buf = buf.subarray(0, m.cut % (buf.length + 1));
        }
        expect(plain(impl.decodeRecords(buf))).toStrictEqual(plain(decodeRef(buf)));
      }),
      { numRuns: 300 },
    );
  });

  it('agrees on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (buf) => {
        expect(plain(impl.decodeRecords(buf))).toStrictEqual(plain(decodeRef(buf)));
      }),
      { numRuns: 200 },
    );
  });

  it('honours recordsMax, including fractions, zero, negatives and NaN', () => {
    const limits = fc.oneof(
      fc.nat({ max: 12 }),
      fc.double({ min: -2, max: 12, noNaN: true }),
      fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, 2 ** 32, -Infinity),
    );
    fc.assert(
      fc.property(batchArb(10, 100), limits, fc.boolean(), (records, max, zeros) => {
        const enc = encodeRef(records);
        const buf = zeros ? new Uint8Array(enc.length + 50) : enc;
        buf.set(enc);
        expect(plain(impl.decodeRecords(buf, max))).toStrictEqual(plain(decodeRef(buf, max)));
      }),
      { numRuns: 200 },
    );
  });
});

describe.each(wasmImpls)('torn and corrupt records, at every byte: $name', (impl) => {
  const records = [
    { type: 1, group: 3, term: 2, index: 10, payload: ascii('first record') },
    { type: 2, group: 3, term: 2, index: 11, payload: new Uint8Array(0) },
    { type: 9, group: 0xffffffff, term: 2 ** 40, index: 2 ** 52, payload: ascii('x'.repeat(41)) },
  ];
  const enc = encodeRef(records);
  const starts = boundaries(records);

  it('truncation at each byte ends cleanly at a boundary, else torn', () => {
    for (let cut = 0; cut <= enc.length; cut++) {
      const buf = enc.slice(0, cut);
      const complete = starts.filter((s) => s <= cut).length - 1;
      const end = starts[complete]!;
      const result = impl.decodeRecords(buf);
      expect(plain(result), `cut ${cut}`).toStrictEqual(plain(decodeRef(buf)));
      expect(result.count).toBe(complete);
      expect(result.end).toBe(end);
      expect(result.status).toBe(end === cut ? 'ok' : 'torn');
    }
  });

  it('a flipped bit anywhere fails its record, and only its record', () => {
    for (let at = 0; at < enc.length; at++) {
      for (let bit = 0; bit < 8; bit++) {
        const buf = enc.slice();
        buf[at]! ^= 1 << bit;
        const hit = starts.findIndex((s) => s > at) - 1;
        const result = impl.decodeRecords(buf);
        expect(plain(result), `byte ${at} bit ${bit}`).toStrictEqual(plain(decodeRef(buf)));
        expect(result.count).toBe(hit);
        expect(result.end).toBe(starts[hit]);
        const inLength = at - starts[hit]! >= 4 && at - starts[hit]! < 8;
        if (inLength) expect(['corrupt', 'torn']).toContain(result.status);
        else expect([result.status, result.reason]).toEqual(['corrupt', 'checksum']);
      }
    }
  });

  it('a header with a valid checksum but a bad type or flags is corrupt: header', () => {
    // Record 1 is a bare header; record 2 is longer than the smallest window.
    for (const hit of [1, 2]) {
      for (const [offset, value] of [
        [8, 0],
        [9, 1],
        [10, 0x80],
        [11, 1],
      ] as const) {
        const buf = enc.slice();
        const start = starts[hit]!;
        buf[start + offset] = value;
        const crc = crc32c(buf.subarray(start + 4, starts[hit + 1]!));
        new DataView(buf.buffer).setUint32(start, crc, true);
        const result = impl.decodeRecords(buf);
        expect(plain(result)).toStrictEqual(plain(decodeRef(buf)));
        expect([result.status, result.reason, result.count, result.end]).toEqual([
          'corrupt',
          'header',
          hit,
          start,
        ]);
      }
    }
  });

  it('a length beyond the payload limit is corrupt: length; at the limit, torn', () => {
    for (const [length, status] of [
      [recordPayloadBytesMax + 1, 'corrupt'],
      [0xffffffff, 'corrupt'],
      [recordPayloadBytesMax, 'torn'],
    ] as const) {
      const buf = enc.slice();
      new DataView(buf.buffer).setUint32(starts[2]! + 4, length, true);
      const result = impl.decodeRecords(buf);
      expect(plain(result)).toStrictEqual(plain(decodeRef(buf)));
      expect([result.status, result.count, result.end]).toEqual([status, 2, starts[2]]);
    }
  });

  it('zeroed space after the records, even shorter than a header, ends the pass as zero', () => {
    for (const pad of [1, 31, 32, 33, 100]) {
      const buf = new Uint8Array(enc.length + pad);
      buf.set(enc);
      const result = impl.decodeRecords(buf);
      expect(plain(result)).toStrictEqual(plain(decodeRef(buf)));
      expect([result.status, result.count, result.end]).toEqual(['zero', 3, enc.length]);
    }
  });
});

describe('decode of long inputs through a sliding window', () => {
  it('agrees on megabytes of records, with records longer than the window', () => {
    const records = Array.from({ length: 3000 }, (_, i) => ({
      type: 1,
      group: i % 7,
      term: 4,
      index: i,
      payload: new Uint8Array(i % 97 === 0 ? 5000 : (i * 31) % 1500).fill(i & 0xff),
    }));
    const enc = encodeRef(records);
    expect(enc.length).toBeGreaterThan(2 * 1024 * 1024);
    const expected = plain(decodeRef(enc));
    for (const impl of wasmImpls) {
      expect(plain(impl.decodeRecords(enc)), impl.name).toStrictEqual(expected);
    }
    const torn = enc.subarray(0, enc.length - 100);
    const corrupt = enc.slice();
    corrupt[corrupt.length - 3]! ^= 4;
    for (const impl of wasmImpls) {
      expect(plain(impl.decodeRecords(torn)), impl.name).toStrictEqual(plain(decodeRef(torn)));
      const mine = plain(impl.decodeRecords(corrupt));
      expect(mine, impl.name).toStrictEqual(plain(decodeRef(corrupt)));
    }
  });

  it('stops at recordsMax inside a long input', () => {
    const records = Array.from({ length: 200 }, (_, i) => ({
      type: 1,
      group: 0,
      term: 1,
      index: i,
      payload: new Uint8Array(i % 3 === 0 ? 300 : 20),
    }));
    const enc = encodeRef(records);
    for (const impl of wasmImpls) {
      for (const max of [0, 1, 2, 3, 50, 199, 200, 201]) {
        expect(plain(impl.decodeRecords(enc, max))).toStrictEqual(plain(decodeRef(enc, max)));
      }
    }
  });
});
