import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WasmKernels } from '../../wasm/loader.js';
import { crc32c } from '../../wasm/reference/crc32c.js';
import { xxhash32 } from '../../wasm/reference/xxhash32.js';
import { shifted, wasm, wasmImpls } from './impls.js';

const seedArb = fc.oneof(fc.constant(0), fc.constant(0xffffffff), fc.nat({ max: 0xffffffff }));

// Sizes that straddle every path: byte tails, 4/8/16-byte steps, the SIMD fold's 256-byte
// threshold and 128-byte blocks, the in-place threshold (4096) and small windows.
const edgeSizes = [0, 1, 3, 4, 7, 8, 15, 16, 17, 31, 32, 63, 64, 65, 127, 128, 129, 255, 256, 257];
const moreSizes = [383, 384, 385, 511, 1000, 1024, 4095, 4096, 4097, 65536 + 13];

function pattern(n: number, salt: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = (salt * 2654435761) >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

describe.each(wasmImpls)('crc32c parity with the reference: $name', (impl) => {
  it('agrees at every edge size, seeded and unseeded', () => {
    for (const n of [...edgeSizes, ...moreSizes]) {
      const data = pattern(n, n);
      expect(impl.crc32c(data), `size ${n}`).toBe(crc32c(data));
      expect(impl.crc32c(data, 0xdeadbeef), `size ${n} seeded`).toBe(crc32c(data, 0xdeadbeef));
    }
  });

  it('agrees on random bytes at random offsets of a larger buffer', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 3000 }),
        fc.nat({ max: 15 }),
        seedArb,
        (d, s, seed) => {
          const view = shifted(d, s);
          expect(impl.crc32c(view, seed)).toBe(crc32c(d, seed));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('chains at any split point like a single pass', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 2000 }), fc.nat(), (d, cut) => {
        const split = cut % (d.length + 1);
        const head = impl.crc32c(d.subarray(0, split));
        expect(impl.crc32c(d.subarray(split), head)).toBe(crc32c(d));
      }),
      { numRuns: 200 },
    );
  });
});

describe('crc32c on large inputs', () => {
  it('agrees beyond 1 MiB, across window chunks, from odd offsets', () => {
    const data = pattern(3 * 1024 * 1024 + 77, 9);
    const expected = crc32c(data);
    for (const impl of wasmImpls) {
      expect(impl.crc32c(data), impl.name).toBe(expected);
      expect(impl.crc32c(data.subarray(5)), impl.name).toBe(crc32c(data.subarray(5)));
    }
  });

  it('reads an input that already lives in kernel memory in place, small window or not', () => {
    for (const windowBytes of [64, 1024 * 1024]) {
      const kernels = new WasmKernels({ windowBytes });
      const records = [{ type: 1, group: 1, term: 1, index: 1, payload: pattern(70_000, 3) }];
      const encoded = kernels.encodeRecords(records);
      const copy = encoded.slice();
      expect(kernels.crc32c(encoded.subarray(3))).toBe(crc32c(copy.subarray(3)));
    }
  });
});

describe.each(wasmImpls)('xxHash32 parity with the reference: $name', (impl) => {
  it('agrees on single keys at odd offsets, every length up to 100', () => {
    for (let n = 0; n <= 100; n++) {
      const key = pattern(n, n + 1);
      expect(impl.hashKey(shifted(key, n % 7), 12345), `length ${n}`).toBe(xxhash32(key, 12345));
    }
  });

  it('agrees on random keys and seeds, singly and in batches', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 40 }),
        seedArb,
        (keys, seed) => {
          const expected = keys.map((k) => xxhash32(k, seed));
          expect(keys.map((k) => impl.hashKey(k, seed))).toEqual(expected);
          expect(Array.from(impl.hashKeys(keys, seed))).toEqual(expected);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('xxHash32 on inputs that grow kernel memory', () => {
  it('hashes a key larger than the memory it started with', () => {
    const kernels = new WasmKernels();
    const key = pattern(5 * 1024 * 1024 + 3, 4);
    expect(kernels.hashKey(key, 7)).toBe(xxhash32(key, 7));
  });

  it('hashes a batch larger than the memory it started with', () => {
    const kernels = new WasmKernels();
    const keys = Array.from({ length: 3000 }, (_, i) => pattern(1000 + (i % 5), i));
    expect(Array.from(kernels.hashKeys(keys))).toEqual(keys.map((k) => xxhash32(k)));
    expect(kernels.hashKey(keys[1]!)).toBe(xxhash32(keys[1]!));
  });

  it('hashes keys that are views into the last encode output when that grows memory', () => {
    const kernels = new WasmKernels();
    const payload = pattern(1_500_000, 8);
    const encoded = kernels.encodeRecords([{ type: 1, group: 1, term: 1, index: 1, payload }]);
    const keys = [encoded.subarray(0, 1_000_000), encoded.subarray(500_000)];
    const expected = keys.map((k) => xxhash32(k.slice()));
    expect(Array.from(kernels.hashKeys(keys))).toEqual(expected);
  });

  it('hashes keys that are views into the last encode output', () => {
    const records = Array.from({ length: 20 }, (_, i) => ({
      type: 1,
      group: i,
      term: 1,
      index: i,
      payload: pattern(300 + i, i),
    }));
    const encoded = wasm.encodeRecords(records);
    const keys = records.map((_, i) => encoded.subarray(i * 100, i * 100 + 290));
    const expected = keys.map((k) => xxhash32(k.slice()));
    expect(Array.from(wasm.hashKeys(keys))).toEqual(expected);
  });
});
