// xxHash32, the partitioning hash. Specification: wasm/reference/xxhash32.ts.

const PRIME1: u32 = 0x9e3779b1;
const PRIME2: u32 = 0x85ebca77;
const PRIME3: u32 = 0xc2b2ae3d;
const PRIME4: u32 = 0x27d4eb2f;
const PRIME5: u32 = 0x165667b1;

class Lane {
  /** One accumulator round over a 4-byte lane. */
  @inline static round(acc: u32, lane: u32): u32 {
    return rotl<u32>(acc + lane * PRIME2, 13) * PRIME1;
  }
}

/** xxHash32 of `len` bytes at `ptr` with `seed`. */
export function xxh32(ptr: usize, len: usize, seed: u32): u32 {
  let p = ptr;
  const end = ptr + len;
  let h: u32;
  if (len >= 16) {
    let v1 = seed + PRIME1 + PRIME2;
    let v2 = seed + PRIME2;
    let v3 = seed;
    let v4 = seed - PRIME1;
    const limit = end - 16;
    while (p <= limit) {
      v1 = Lane.round(v1, load<u32>(p));
      v2 = Lane.round(v2, load<u32>(p, 4));
      v3 = Lane.round(v3, load<u32>(p, 8));
      v4 = Lane.round(v4, load<u32>(p, 12));
      p += 16;
    }
    h = rotl<u32>(v1, 1) + rotl<u32>(v2, 7) + rotl<u32>(v3, 12) + rotl<u32>(v4, 18);
  } else {
    h = seed + PRIME5;
  }
  h += <u32>len;
  while (end - p >= 4) {
    h = rotl<u32>(h + load<u32>(p) * PRIME3, 17) * PRIME4;
    p += 4;
  }
  while (p < end) {
    h = rotl<u32>(h + <u32>load<u8>(p) * PRIME5, 11) * PRIME1;
    p++;
  }
  h = (h ^ (h >>> 15)) * PRIME2;
  h = (h ^ (h >>> 13)) * PRIME3;
  return h ^ (h >>> 16);
}

/**
 * Hashes `count` keys stored back to back from `base`: key i spans the u32 offsets
 * `bounds[i]..bounds[i + 1]` (relative to `base`). Writes the u32 hashes to `out`.
 */
export function xxh32Batch(base: usize, bounds: usize, count: usize, seed: u32, out: usize): void {
  let from = load<u32>(bounds);
  for (let i: usize = 0; i < count; i++) {
    const to = load<u32>(bounds + ((i + 1) << 2));
    store<u32>(out + (i << 2), xxh32(base + <usize>from, <usize>(to - from), seed));
    from = to;
  }
}
