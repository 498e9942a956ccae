// Hot-path kernels. Memory layout and exports are documented in wasm/loader.ts.

const table = new StaticArray<u32>(256);

function initTable(): void {
  for (let n: u32 = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    unchecked((table[n] = c));
  }
}
initTable();

/** CRC32C of `len` bytes at `ptr`, continuing from `seed`. */
export function crc32c(ptr: usize, len: usize, seed: u32): u32 {
  let crc = ~seed;
  const end = ptr + len;
  for (let p = ptr; p < end; p++) {
    crc = unchecked(table[(crc ^ load<u8>(p)) & 0xff]) ^ (crc >>> 8);
  }
  return ~crc;
}
