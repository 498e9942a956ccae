/**
 * xxHash32 (Yann Collet's specification), the key hash used for partitioning: the specification
 * the WASM kernel is tested against.
 */
const prime1 = 0x9e3779b1;
const prime2 = 0x85ebca77;
const prime3 = 0xc2b2ae3d;
const prime4 = 0x27d4eb2f;
const prime5 = 0x165667b1;

function rotl(x: number, r: number): number {
  return ((x << r) | (x >>> (32 - r))) >>> 0;
}

function u32At(b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
}

function round(acc: number, lane: number): number {
  return Math.imul(rotl((acc + Math.imul(lane, prime2)) >>> 0, 13), prime1) >>> 0;
}

/** xxHash32 of `data` with `seed`. */
export function xxhash32(data: Uint8Array, seed = 0): number {
  const len = data.length;
  let i = 0;
  let h: number;
  if (len >= 16) {
    let v1 = (seed + prime1 + prime2) >>> 0;
    let v2 = (seed + prime2) >>> 0;
    let v3 = seed >>> 0;
    let v4 = (seed - prime1) >>> 0;
    const limit = len - 16;
    while (i <= limit) {
      v1 = round(v1, u32At(data, i));
      v2 = round(v2, u32At(data, i + 4));
      v3 = round(v3, u32At(data, i + 8));
      v4 = round(v4, u32At(data, i + 12));
      i += 16;
    }
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) >>> 0;
  } else {
    h = (seed + prime5) >>> 0;
  }
  h = (h + len) >>> 0;
  while (i + 4 <= len) {
    h = Math.imul(rotl((h + Math.imul(u32At(data, i), prime3)) >>> 0, 17), prime4) >>> 0;
    i += 4;
  }
  while (i < len) {
    h = Math.imul(rotl((h + Math.imul(data[i]!, prime5)) >>> 0, 11), prime1) >>> 0;
    i++;
  }
  h = Math.imul(h ^ (h >>> 15), prime2) >>> 0;
  h = Math.imul(h ^ (h >>> 13), prime3) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}
