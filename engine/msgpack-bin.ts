/**
 * MessagePack `bin` headers, written and read directly: the hot paths that build or parse the
 * exact bytes msgpackr writes for a byte string (a sessionless put's command, a read request
 * and its answer) share these instead of going through the generic codec. msgpackr writes the
 * smallest form: bin 8 below 256 bytes, bin 16 below 64 KiB, else bin 32.
 */

/** Bytes of the bin header for `length` bytes. */
export function binHeaderBytes(length: number): number {
  return length < 0x100 ? 2 : length < 0x10000 ? 3 : 5;
}

/** Writes the bin header for `length` bytes at `at`; returns where the bytes go. */
export function writeBinHeader(out: Uint8Array, at: number, length: number): number {
  if (length < 0x100) {
    out[at] = 0xc4;
    out[at + 1] = length;
    return at + 2;
  }
  if (length < 0x10000) {
    out[at] = 0xc5;
    out[at + 1] = length >>> 8;
    out[at + 2] = length & 0xff;
    return at + 3;
  }
  out[at] = 0xc6;
  out[at + 1] = length >>> 24;
  out[at + 2] = (length >>> 16) & 0xff;
  out[at + 3] = (length >>> 8) & 0xff;
  out[at + 4] = length & 0xff;
  return at + 5;
}

/** Where the bytes of the bin at `at` start, or -1 when there is no bin header there. */
export function binStart(data: Uint8Array, at: number): number {
  switch (data[at]) {
    case 0xc4:
      return at + 2;
    case 0xc5:
      return at + 3;
    case 0xc6:
      return at + 5;
    default:
      return -1;
  }
}

/**
 * The length of the bin at `at` (header bytes past the end read as 0: `binStart` then says -1,
 * or start + length overruns the data, which callers check).
 */
export function binLength(data: Uint8Array, at: number): number {
  const b1 = data[at + 1] ?? 0;
  const b2 = data[at + 2] ?? 0;
  switch (data[at]) {
    case 0xc4:
      return b1;
    case 0xc5:
      return (b1 << 8) | b2;
    case 0xc6:
      return b1 * 2 ** 24 + ((b2 << 16) | ((data[at + 3] ?? 0) << 8) | (data[at + 4] ?? 0));
    default:
      return 0;
  }
}
