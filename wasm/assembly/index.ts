// Entry point of the kernel module. It imports nothing: instantiate it with `{}`.
// The loader (wasm/loader.ts) owns all memory from `heapBase()` upwards; see ./layout.ts.

export { crc32c } from './crc32c';
export { decode, encode } from './framing';
export { xxh32, xxh32Batch } from './xxhash32';

/** First byte the loader may use: just past the compiler's static data, 64-byte aligned. */
export function heapBase(): usize {
  return (__heap_base + 63) & ~(<usize>63);
}
