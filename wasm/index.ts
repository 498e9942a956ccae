/**
 * The hot-path kernels: CRC32C, record framing and key hashing. Every caller imports them from
 * here. The kernels run in WebAssembly; `FLOTILLA_WASM=0` (read once, when this module loads)
 * switches every one of them to its plain-TypeScript reference twin in wasm/reference/.
 *
 * A buffer returned by `encodeRecords` is a view into kernel memory: it stays valid only until
 * the next call into this module (it may be that call's input: `crc32c` and `decodeRecords`
 * read such a view in place). Write it out or copy it before calling again. An asynchronous
 * write (`socket.write`, `fs.promises` writes, stream writes) may still be reading the bytes
 * after it returns, so either let it complete before the next kernel call or hand it a copy.
 * Every other result is a fresh object.
 */
export * from './format.js';
export * from './record-batch.js';

import type { DecodeResult, RecordInput } from './format.js';
import { hashWasmKeyBytesMin } from './kernel-limits.js';
import { loadKernels } from './loader.js';
import type { RecordBatch } from './record-batch.js';
import { crc32c as crc32cRef } from './reference/crc32c.js';
import {
  decodeRecords as decodeRecordsRef,
  encodeRecordsInto as encodeRecordsIntoRef,
  encodeRecords as encodeRecordsRef,
} from './reference/framing.js';
import { xxhash32 as xxhash32Ref } from './reference/xxhash32.js';

/** Which implementation serves the kernels in this process. */
export const kernelImpl: 'wasm' | 'reference' =
  process.env.FLOTILLA_WASM === '0' ? 'reference' : 'wasm';

const wasm = kernelImpl === 'wasm' ? loadKernels() : undefined;

/** CRC32C of `data`, continuing from `seed` (0 to start). */
export function crc32c(data: Uint8Array, seed = 0): number {
  return wasm !== undefined ? wasm.crc32c(data, seed) : crc32cRef(data, seed);
}

/** Frames `records` back to back (see format.ts). The result is valid until the next call. */
export function encodeRecords(records: readonly RecordInput[]): Uint8Array {
  return wasm !== undefined ? wasm.encodeRecords(records) : encodeRecordsRef(records);
}

/** Verifies the records at the start of `buf`; says where and why verification stopped. */
export function decodeRecords(buf: Uint8Array, recordsMax?: number): DecodeResult {
  return wasm !== undefined
    ? wasm.decodeRecords(buf, recordsMax)
    : decodeRecordsRef(buf, recordsMax);
}

/** xxHash32 of a key, the partitioning hash; `seed` is a u32. Short keys stay in TypeScript. */
export function hashKey(key: Uint8Array, seed = 0): number {
  return wasm !== undefined && key.length >= hashWasmKeyBytesMin
    ? wasm.hashKey(key, seed)
    : xxhash32Ref(key, seed);
}

/** xxHash32 of each key (one kernel call for the whole batch). */
export function hashKeys(keys: readonly Uint8Array[], seed = 0): Uint32Array {
  if (wasm !== undefined) return wasm.hashKeys(keys, seed);
  const out = new Uint32Array(keys.length);
  for (let i = 0; i < keys.length; i++) out[i] = xxhash32Ref(keys[i]!, seed);
  return out;
}

/**
 * Frames the records of `batch` back to back into `out` from offset `at` and returns the bytes
 * written (`batch.bytes`). Unlike `encodeRecords`, the result is in the caller's buffer.
 */
export function encodeRecordsInto(batch: RecordBatch, out: Uint8Array, at: number): number {
  return wasm !== undefined
    ? wasm.encodeRecordsInto(batch, out, at)
    : encodeRecordsIntoRef(batch, out, at);
}
