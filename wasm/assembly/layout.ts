// The fixed low region of kernel memory. asconfig.json moves the compiler's own static data up
// to `ASC_MEMORY_BASE`, so these addresses are compile-time constants: every table load then
// carries its table base in the instruction's offset immediate instead of an extra add.
//
// Everything from `heapBase()` upwards belongs to the loader (wasm/loader.ts), which stages
// inputs there and reads outputs back. Kernels never allocate and never grow memory.

/** Slicing-by-16 CRC32C tables: 16 tables of 256 u32; table t advances a byte by t+1 bytes. */
export const SLICE_TABLES: usize = 1024;
/** Nibble tables of the SIMD fold: 8 nibble positions × 4 output bytes × 16 entries. */
export const FOLD_TABLES: usize = SLICE_TABLES + 16 * 1024;
/** Where the SIMD fold spills its 128-byte state for the final reduction. */
export const FOLD_SCRATCH: usize = FOLD_TABLES + 8 * 4 * 16;
/** The i8x16 splat of 0x0f, loaded from memory so the optimizer cannot re-materialize it. */
export const NIBBLE_MASK: usize = FOLD_SCRATCH + 128;
/** Three 32-word bit matrices used once while the fold tables are derived. */
export const INIT_SCRATCH: usize = NIBBLE_MASK + 16;
/** End of the fixed region; must stay below the compiler's memory base. */
export const FIXED_END: usize = INIT_SCRATCH + 3 * 32 * 4;
