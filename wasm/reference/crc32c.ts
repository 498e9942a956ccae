/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), byte at a time: the specification the
 * WASM kernel is tested against. Chaining: crc32c(b, crc32c(a)) === crc32c(a ‖ b).
 */
const table = buildTable();

function buildTable(): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}

/** CRC32C of `data`, continuing from `seed` (the CRC of the bytes before it; 0 to start). */
export function crc32c(data: Uint8Array, seed = 0): number {
  let crc = ~seed >>> 0;
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}
