// CRC32C (Castagnoli, reflected polynomial 0x82F63B78). Specification: wasm/reference/crc32c.ts.
//
// Two engines share one "raw" register convention (no pre/post inversion, see `crc32c`):
//
// - Slicing-by-16 for short inputs and tails: 16 table lookups per 16 bytes, of which only the
//   first four depend on the running CRC.
// - A SIMD fold for long inputs. A 128-byte block is read as 32 interleaved streams: stream s
//   owns bytes s, 32+s, 64+s and 96+s, so byte m of streams 0..15 (and of 16..31) sits in one
//   v128 lane-for-lane and no shuffling is needed. The state Z is a 128-byte block with the
//   invariant rawCrc(Z ‖ rest) == rawCrc(consumed ‖ rest). One step is Z := F(Z) xor next,
//   where F moves a stream's four bytes 128 bytes further down the message. F is GF(2)-linear;
//   it is derived for stream 0 as A⁻¹ ∘ advance, where A maps a stream's four bytes to the CRC
//   they contribute. Stream s is stream 0 shifted by s bytes, a multiplication by a power of x
//   that commutes with everything else, so the same F serves every stream. F is applied with
//   i8x16.swizzle over 4-bit table indices: 8 nibbles × 4 output bytes = 32 lookups per 128
//   bytes, for all 32 streams at once. At the end Z itself is reduced with slicing-by-16.
//   (A 16-byte stride would need half the state, but its A is singular for this polynomial;
//   32 is the smallest stride that keeps the lane layout and inverts.)
import {
  FIXED_END,
  FOLD_SCRATCH,
  FOLD_TABLES,
  INIT_SCRATCH,
  NIBBLE_MASK,
  SLICE_TABLES,
} from './layout';

const POLY: u32 = 0x82f63b78;
/** Inputs at least this long take the SIMD fold (two blocks: one to load, one to fold). */
const FOLD_MIN_BYTES: usize = 256;
const FOLD_BLOCK_BYTES: usize = 128;

/** Byte-at-a-time update with table 0; used by the tails and by table derivation. */
function byteRaw(c: u32, ptr: usize, len: usize): u32 {
  for (let i: usize = 0; i < len; i++) {
    c = load<u32>((<usize>((c ^ load<u8>(ptr + i)) & 0xff)) << 2, SLICE_TABLES) ^ (c >>> 8);
  }
  return c;
}

function initSliceTables(): void {
  for (let n: u32 = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    store<u32>(SLICE_TABLES + ((<usize>n) << 2), c);
  }
  // Table t advances a byte by t+1 positions: one more zero byte through table 0.
  for (let n: usize = 0; n < 256; n++) {
    let c = load<u32>(SLICE_TABLES + (n << 2));
    for (let t: usize = 1; t < 16; t++) {
      c = load<u32>(SLICE_TABLES + ((<usize>(c & 0xff)) << 2)) ^ (c >>> 8);
      store<u32>(SLICE_TABLES + (t << 10) + (n << 2), c);
    }
  }
}

/** Columns of A (z → rawCrc of a block holding z in stream 0) and of A advanced one block. */
function foldColumns(rows: usize, advanced: usize): void {
  for (let b: usize = 0; b < 32; b++) {
    memory.fill(FOLD_SCRATCH, 0, FOLD_BLOCK_BYTES);
    store<u8>(FOLD_SCRATCH + 32 * (b >> 3), <u8>((<u32>1) << (<u32>(b & 7))));
    const a = byteRaw(0, FOLD_SCRATCH, FOLD_BLOCK_BYTES);
    memory.fill(FOLD_SCRATCH, 0, FOLD_BLOCK_BYTES);
    store<u32>(advanced + (b << 2), byteRaw(a, FOLD_SCRATCH, FOLD_BLOCK_BYTES));
    for (let r: usize = 0; r < 32; r++) {
      if ((a >>> <u32>r) & 1) {
        store<u32>(rows + (r << 2), load<u32>(rows + (r << 2)) | ((<u32>1) << (<u32>b)));
      }
    }
  }
}

/** Gauss-Jordan over GF(2): turns `rows` (32 × 32 bits) into the identity, `inv` into A⁻¹. */
function invert(rows: usize, inv: usize): void {
  for (let r: usize = 0; r < 32; r++) store<u32>(inv + (r << 2), (<u32>1) << (<u32>r));
  for (let col: usize = 0; col < 32; col++) {
    let pivot = col;
    while (pivot < 32 && !((load<u32>(rows + (pivot << 2)) >>> <u32>col) & 1)) pivot++;
    if (pivot == 32) unreachable(); // singular: the fold stride does not suit the polynomial
    const pr = load<u32>(rows + (pivot << 2));
    const pi = load<u32>(inv + (pivot << 2));
    store<u32>(rows + (pivot << 2), load<u32>(rows + (col << 2)));
    store<u32>(inv + (pivot << 2), load<u32>(inv + (col << 2)));
    store<u32>(rows + (col << 2), pr);
    store<u32>(inv + (col << 2), pi);
    for (let r: usize = 0; r < 32; r++) {
      const row = load<u32>(rows + (r << 2));
      if (r != col && (row >>> <u32>col) & 1) {
        store<u32>(rows + (r << 2), row ^ pr);
        store<u32>(inv + (r << 2), load<u32>(inv + (r << 2)) ^ pi);
      }
    }
  }
}

/** F = A⁻¹ ∘ advance, tabulated per input nibble and output byte for i8x16.swizzle. */
function initFoldTables(): void {
  const rows = INIT_SCRATCH;
  const inv = INIT_SCRATCH + 128;
  const advanced = INIT_SCRATCH + 256;
  memory.fill(rows, 0, 128);
  foldColumns(rows, advanced);
  invert(rows, inv);
  // Column b of F, computed in place over `advanced`.
  for (let b: usize = 0; b < 32; b++) {
    const y = load<u32>(advanced + (b << 2));
    let z: u32 = 0;
    for (let r: usize = 0; r < 32; r++)
      z |= (popcnt(load<u32>(inv + (r << 2)) & y) & 1) << (<u32>r);
    store<u32>(advanced + (b << 2), z);
  }
  for (let j: usize = 0; j < 8; j++) {
    for (let v: usize = 0; v < 16; v++) {
      let out: u32 = 0;
      for (let bit: usize = 0; bit < 4; bit++) {
        if ((v >> bit) & 1) out ^= load<u32>(advanced + ((j * 4 + bit) << 2));
      }
      for (let k: u32 = 0; k < 4; k++) {
        store<u8>(FOLD_TABLES + (j * 4 + <usize>k) * 16 + v, <u8>(out >>> (k << 3)));
      }
    }
  }
  v128.store(NIBBLE_MASK, i8x16.splat(0x0f));
}

if (FIXED_END > <usize>ASC_MEMORY_BASE) unreachable();
initSliceTables();
initFoldTables();

// Table lookups take the table's address as a constant offset immediate, so each one is a
// shift, a mask and a load. Index helpers return the byte pre-scaled to a table offset.
class Slice {
  @inline static b0(w: u32): usize {
    return (w << 2) & 0x3fc;
  }

  @inline static b1(w: u32): usize {
    return (w >> 6) & 0x3fc;
  }

  @inline static b2(w: u32): usize {
    return (w >> 14) & 0x3fc;
  }

  @inline static b3(w: u32): usize {
    return (w >> 22) & 0x3fc;
  }
}

/**
 * Slicing-by-16 (then 8, 4, 1) over `len` bytes at `ptr`, raw register in and out. Only the
 * first word of a block depends on the running CRC: the other twelve lookups are combined
 * first, so the loop-carried chain is one load and three XORs deep.
 */
function sliceRaw(c: u32, ptr: usize, len: usize): u32 {
  let p = ptr;
  const end = ptr + len;
  while (end - p >= 16) {
    const w1 = load<u32>(p, 4);
    const w2 = load<u32>(p, 8);
    const w3 = load<u32>(p, 12);
    const rest =
      load<u32>(Slice.b0(w1), SLICE_TABLES + 11 * 1024) ^
      load<u32>(Slice.b1(w1), SLICE_TABLES + 10 * 1024) ^
      (load<u32>(Slice.b2(w1), SLICE_TABLES + 9 * 1024) ^
        load<u32>(Slice.b3(w1), SLICE_TABLES + 8 * 1024)) ^
      (load<u32>(Slice.b0(w2), SLICE_TABLES + 7 * 1024) ^
        load<u32>(Slice.b1(w2), SLICE_TABLES + 6 * 1024) ^
        (load<u32>(Slice.b2(w2), SLICE_TABLES + 5 * 1024) ^
          load<u32>(Slice.b3(w2), SLICE_TABLES + 4 * 1024)) ^
        (load<u32>(Slice.b0(w3), SLICE_TABLES + 3 * 1024) ^
          load<u32>(Slice.b1(w3), SLICE_TABLES + 2 * 1024) ^
          (load<u32>(Slice.b2(w3), SLICE_TABLES + 1 * 1024) ^
            load<u32>(Slice.b3(w3), SLICE_TABLES))));
    const w0 = load<u32>(p) ^ c;
    c =
      rest ^
      (load<u32>(Slice.b0(w0), SLICE_TABLES + 15 * 1024) ^
        load<u32>(Slice.b1(w0), SLICE_TABLES + 14 * 1024) ^
        (load<u32>(Slice.b2(w0), SLICE_TABLES + 13 * 1024) ^
          load<u32>(Slice.b3(w0), SLICE_TABLES + 12 * 1024)));
    p += 16;
  }
  if (end - p >= 8) {
    const w1 = load<u32>(p, 4);
    const rest =
      load<u32>(Slice.b0(w1), SLICE_TABLES + 3 * 1024) ^
      load<u32>(Slice.b1(w1), SLICE_TABLES + 2 * 1024) ^
      (load<u32>(Slice.b2(w1), SLICE_TABLES + 1 * 1024) ^ load<u32>(Slice.b3(w1), SLICE_TABLES));
    const w0 = load<u32>(p) ^ c;
    c =
      rest ^
      (load<u32>(Slice.b0(w0), SLICE_TABLES + 7 * 1024) ^
        load<u32>(Slice.b1(w0), SLICE_TABLES + 6 * 1024) ^
        (load<u32>(Slice.b2(w0), SLICE_TABLES + 5 * 1024) ^
          load<u32>(Slice.b3(w0), SLICE_TABLES + 4 * 1024)));
    p += 8;
  }
  if (end - p >= 4) {
    const w0 = load<u32>(p) ^ c;
    c =
      load<u32>(Slice.b0(w0), SLICE_TABLES + 3 * 1024) ^
      load<u32>(Slice.b1(w0), SLICE_TABLES + 2 * 1024) ^
      (load<u32>(Slice.b2(w0), SLICE_TABLES + 1 * 1024) ^ load<u32>(Slice.b3(w0), SLICE_TABLES));
    p += 4;
  }
  return byteRaw(c, p, end - p);
}

// Inlined helpers live on a class because only class members may carry decorators in plain
// TypeScript syntax, which the formatter has to parse.
class Fold {
  /** One swizzle lookup in the fold table `t`. */
  @inline static look(t: usize, nibbles: v128): v128 {
    return i8x16.swizzle(v128.load(FOLD_TABLES + t * 16), nibbles);
  }

  /** Output byte `k` of F for 16 streams whose nibbles are l0/h0 (byte 0) … l3/h3 (byte 3). */
  @inline static out(
    k: usize,
    l0: v128,
    h0: v128,
    l1: v128,
    h1: v128,
    l2: v128,
    h2: v128,
    l3: v128,
    h3: v128,
  ): v128 {
    return v128.xor(
      v128.xor(
        v128.xor(Fold.look(k, l0), Fold.look(4 + k, h0)),
        v128.xor(Fold.look(8 + k, l1), Fold.look(12 + k, h1)),
      ),
      v128.xor(
        v128.xor(Fold.look(16 + k, l2), Fold.look(20 + k, h2)),
        v128.xor(Fold.look(24 + k, l3), Fold.look(28 + k, h3)),
      ),
    );
  }

  /** High nibbles; i16x8 shift plus mask is cheaper in V8 than i8x16.shr_u. */
  @inline static high(x: v128, mask: v128): v128 {
    return v128.and(i16x8.shr_u(x, 4), mask);
  }
}

/** The SIMD fold over whole 128-byte blocks, then slicing-by-16 over the state and the tail. */
function foldRaw(c: u32, ptr: usize, len: usize): u32 {
  const m = v128.load(NIBBLE_MASK);
  // Group a: streams 0..15 (vectors 0, 2, 4, 6); group b: streams 16..31 (1, 3, 5, 7).
  let a0 = v128.xor(v128.load(ptr), i32x4.replace_lane(i32x4.splat(0), 0, c));
  let b0 = v128.load(ptr, 16);
  let a1 = v128.load(ptr, 32);
  let b1 = v128.load(ptr, 48);
  let a2 = v128.load(ptr, 64);
  let b2 = v128.load(ptr, 80);
  let a3 = v128.load(ptr, 96);
  let b3 = v128.load(ptr, 112);
  const end = ptr + (len & ~(FOLD_BLOCK_BYTES - 1));
  for (let p = ptr + FOLD_BLOCK_BYTES; p < end; p += FOLD_BLOCK_BYTES) {
    const la0 = v128.and(a0, m);
    const ha0 = Fold.high(a0, m);
    const la1 = v128.and(a1, m);
    const ha1 = Fold.high(a1, m);
    const la2 = v128.and(a2, m);
    const ha2 = Fold.high(a2, m);
    const la3 = v128.and(a3, m);
    const ha3 = Fold.high(a3, m);
    const lb0 = v128.and(b0, m);
    const hb0 = Fold.high(b0, m);
    const lb1 = v128.and(b1, m);
    const hb1 = Fold.high(b1, m);
    const lb2 = v128.and(b2, m);
    const hb2 = Fold.high(b2, m);
    const lb3 = v128.and(b3, m);
    const hb3 = Fold.high(b3, m);
    a0 = v128.xor(v128.load(p), Fold.out(0, la0, ha0, la1, ha1, la2, ha2, la3, ha3));
    b0 = v128.xor(v128.load(p, 16), Fold.out(0, lb0, hb0, lb1, hb1, lb2, hb2, lb3, hb3));
    a1 = v128.xor(v128.load(p, 32), Fold.out(1, la0, ha0, la1, ha1, la2, ha2, la3, ha3));
    b1 = v128.xor(v128.load(p, 48), Fold.out(1, lb0, hb0, lb1, hb1, lb2, hb2, lb3, hb3));
    a2 = v128.xor(v128.load(p, 64), Fold.out(2, la0, ha0, la1, ha1, la2, ha2, la3, ha3));
    b2 = v128.xor(v128.load(p, 80), Fold.out(2, lb0, hb0, lb1, hb1, lb2, hb2, lb3, hb3));
    a3 = v128.xor(v128.load(p, 96), Fold.out(3, la0, ha0, la1, ha1, la2, ha2, la3, ha3));
    b3 = v128.xor(v128.load(p, 112), Fold.out(3, lb0, hb0, lb1, hb1, lb2, hb2, lb3, hb3));
  }
  v128.store(FOLD_SCRATCH, a0);
  v128.store(FOLD_SCRATCH, b0, 16);
  v128.store(FOLD_SCRATCH, a1, 32);
  v128.store(FOLD_SCRATCH, b1, 48);
  v128.store(FOLD_SCRATCH, a2, 64);
  v128.store(FOLD_SCRATCH, b2, 80);
  v128.store(FOLD_SCRATCH, a3, 96);
  v128.store(FOLD_SCRATCH, b3, 112);
  const folded = sliceRaw(0, FOLD_SCRATCH, FOLD_BLOCK_BYTES);
  return sliceRaw(folded, end, len & (FOLD_BLOCK_BYTES - 1));
}

/** Raw CRC32C register update over `len` bytes at `ptr` (no inversions). */
export function crcRaw(c: u32, ptr: usize, len: usize): u32 {
  return len >= FOLD_MIN_BYTES ? foldRaw(c, ptr, len) : sliceRaw(c, ptr, len);
}

/** CRC32C of `len` bytes at `ptr`, continuing from `seed` (0 to start). */
export function crc32c(ptr: usize, len: usize, seed: u32): u32 {
  return ~crcRaw(~seed, ptr, len);
}
