/**
 * The kernel implementations under test, behind one shape, plus the generators the property
 * tests share. Every suite runs the reference twin and WASM instances side by side.
 */
import fc from 'fast-check';
import type { DecodeResult, RecordInput } from '../../wasm/format.js';
import { WasmKernels } from '../../wasm/loader.js';
import type { RecordBatch } from '../../wasm/record-batch.js';
import { crc32c } from '../../wasm/reference/crc32c.js';
import { decodeRecords, encodeRecords, encodeRecordsInto } from '../../wasm/reference/framing.js';
import { xxhash32 } from '../../wasm/reference/xxhash32.js';

/** The kernel surface every implementation offers. */
export interface Impl {
  name: string;
  crc32c(data: Uint8Array, seed?: number): number;
  encodeRecords(records: readonly RecordInput[]): Uint8Array;
  encodeRecordsInto(batch: RecordBatch, out: Uint8Array, at: number): number;
  decodeRecords(buf: Uint8Array, recordsMax?: number): DecodeResult;
  hashKey(key: Uint8Array, seed?: number): number;
  hashKeys(keys: readonly Uint8Array[], seed?: number): Uint32Array;
}

/** The specification. */
export const reference: Impl = {
  name: 'reference',
  crc32c,
  encodeRecords,
  encodeRecordsInto,
  decodeRecords,
  hashKey: xxhash32,
  hashKeys: (keys, seed = 0) => Uint32Array.from(keys, (k) => xxhash32(k, seed)),
};

function wrap(name: string, kernels: WasmKernels): Impl {
  return {
    name,
    crc32c: (data, seed) => kernels.crc32c(data, seed),
    encodeRecords: (records) => kernels.encodeRecords(records),
    encodeRecordsInto: (batch, out, at) => kernels.encodeRecordsInto(batch, out, at),
    decodeRecords: (buf, recordsMax) => kernels.decodeRecords(buf, recordsMax),
    hashKey: (key, seed) => kernels.hashKey(key, seed),
    hashKeys: (keys, seed) => kernels.hashKeys(keys, seed),
  };
}

/** WASM with the default 1 MiB window. */
export const wasm = wrap('wasm', new WasmKernels());
/** WASM with the smallest window, so every multi-record input crosses window boundaries. */
export const wasmTinyWindow = wrap('wasm/window=64', new WasmKernels({ windowBytes: 64 }));
/** WASM with a window a few records wide. */
export const wasmSmallWindow = wrap('wasm/window=256', new WasmKernels({ windowBytes: 256 }));

/** Every WASM instance. */
export const wasmImpls: readonly Impl[] = [wasm, wasmTinyWindow, wasmSmallWindow];
/** Every implementation, reference first. */
export const allImpls: readonly Impl[] = [reference, ...wasmImpls];

/** ASCII bytes of `s`. */
export const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

/** `data` copied to a fresh buffer at byte offset `shift`, returned as a view of it. */
export function shifted(data: Uint8Array, shift: number): Uint8Array {
  const backing = new Uint8Array(data.length + shift + 3);
  backing.set(data, shift);
  return backing.subarray(shift, shift + data.length);
}

/** One record, with payloads up to `payloadMax` bytes and terms/indexes over the full range. */
export function recordArb(payloadMax: number): fc.Arbitrary<RecordInput> {
  const safe = fc.oneof(
    fc.integer({ min: 0, max: 1000 }),
    fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    fc.constantFrom(0, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER),
  );
  return fc.record({
    type: fc.integer({ min: 1, max: 255 }),
    group: fc.oneof(fc.integer({ min: 0, max: 100 }), fc.constant(0xffffffff), fc.nat()),
    term: safe,
    index: safe,
    payload: fc.uint8Array({ maxLength: payloadMax }),
  });
}

/** A batch of records. */
export function batchArb(recordsMax: number, payloadMax: number): fc.Arbitrary<RecordInput[]> {
  return fc.array(recordArb(payloadMax), { maxLength: recordsMax });
}

/** Start offsets of the records of a well-formed encoding, and its length as a final entry. */
export function boundaries(records: readonly RecordInput[]): number[] {
  const out = [0];
  for (const r of records) out.push(out[out.length - 1]! + 32 + r.payload.length);
  return out;
}

/** A copy of a decode result as plain data, so results compare with `toEqual`. */
export function plain(result: DecodeResult): object {
  return { ...result, offsets: Array.from(result.offsets) };
}

/** The error `fn` throws (undefined if it returns). */
export function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}
