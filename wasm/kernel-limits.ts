/**
 * Limits of the WASM kernels' memory use. They live here because wasm/ imports nothing from
 * engine/; engine/limits.ts re-exports them with every other limit. All are soft: none of them
 * shapes a byte on disk or on the wire.
 */

/** Bytes a CRC or decode input is staged in per kernel pass: bounds kernel memory for both. */
export const kernelWindowBytes = 1024 * 1024;
/** Smallest window a kernel instance accepts: a record header (32 bytes) must always fit. */
export const kernelWindowBytesMin = 64;
/** Bytes copied per CRC kernel call; 16 to 64 KiB measured best (1 MiB was ~8% slower). */
export const kernelCrcChunkBytes = 64 * 1024;
/**
 * Inputs at least this long are checked for already living in kernel memory and then read in
 * place. Asking a typed array for its `.buffer` costs ~15 ns, as much as copying a short input.
 */
export const kernelInPlaceBytesMin = 4096;
/**
 * Keys shorter than this are hashed by the TypeScript twin even when the kernels run in WASM:
 * copying a short key into kernel memory costs more than hashing it (bench `wasm`: a 16-byte key
 * hashes ~2x faster in TypeScript; the two break even near 64 bytes).
 */
export const hashWasmKeyBytesMin = 64;
