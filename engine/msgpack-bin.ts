/**
 * MessagePack `bin` headers and non-negative numbers, written and read directly: the hot paths
 * that build or parse the exact bytes msgpackr writes (a put's command, a read or propose
 * request and their answers) share these instead of going through the generic codec. msgpackr
 * writes the smallest form: bin 8 below 256 bytes, bin 16 below 64 KiB, else bin 32; an integer
 * in [0, 2^32) as a positive fixint, uint 8, uint 16 or uint 32; any other number (a fraction,
 * or an integer from 2^32 on) as float 64.
 */

/** Bytes of the bin header for `length` bytes. */
export function binHeaderBytes(length: number): number {
  return length < 0x100 ? 2 : length < 0x10000 ? 3 : 5;
}

/** Writes the bin header for `length` bytes at `at`; returns where the bytes go. */
export function writeBinHeader(out: Uint8Array, at: number, length: number): number {
  return writeSized(out, at, 0xc4, length);
}

/**
 * Writes `tag8 ‖ n` (n < 2^8), `tag8 + 1 ‖ n u16` (n < 2^16) or `tag8 + 2 ‖ n u32`, big-endian,
 * at `at`; returns where it ends. MessagePack's bin and uint headers both take this form.
 */
function writeSized(out: Uint8Array, at: number, tag8: number, n: number): number {
  if (n <= 0xff) {
    out[at] = tag8;
    out[at + 1] = n;
    return at + 2;
  }
  if (n <= u16Max) {
    out[at] = tag8 + 1;
    out[at + 1] = n >>> 8;
    out[at + 2] = n & 0xff;
    return at + 3;
  }
  out[at] = tag8 + 2;
  out[at + 1] = n >>> 24;
  out[at + 2] = (n >>> 16) & 0xff;
  out[at + 3] = (n >>> 8) & 0xff;
  out[at + 4] = n & 0xff;
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

const u16Max = 0xffff;

/** Whether msgpackr writes `v` as an unsigned integer (an integer in [0, 2^32)). */
export function isPackedUint(v: number): boolean {
  return v >>> 0 === v;
}

/** Bytes of the MessagePack unsigned integer `v` (isPackedUint). */
export function uintBytes(v: number): number {
  return v < 0x80 ? 1 : v <= 0xff ? 2 : v <= u16Max ? 3 : 5;
}

/** Writes the MessagePack unsigned integer `v` (isPackedUint) at `at`; returns where it ends. */
export function putUint(out: Uint8Array, at: number, v: number): number {
  if (v < 0x80) {
    out[at] = v;
    return at + 1;
  }
  return writeSized(out, at, 0xcc, v);
}

/** Scratch of the float 64 conversions: one number seen as its eight bytes. */
const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);
/** Whether this machine stores a float with its least significant byte first. */
const littleEndian = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Bytes of the number `v` as msgpackr writes it, if it is not negative (see the top). */
export function numberBytes(v: number): number {
  return isPackedUint(v) ? uintBytes(v) : 9;
}

/** Writes the non-negative number `v` as msgpackr does; returns where it ends. */
export function putNumber(out: Uint8Array, at: number, v: number): number {
  if (isPackedUint(v)) return putUint(out, at, v);
  out[at] = 0xcb;
  f64[0] = v;
  // MessagePack is big-endian.
  for (let i = 0; i < 8; i++) out[at + 1 + i] = f64Bytes[littleEndian ? 7 - i : i]!;
  return at + 9;
}

/** Writes MessagePack bin `bytes` at `at`; returns the offset after it. */
export function putBin(out: Uint8Array, at: number, bytes: Uint8Array): number {
  const to = writeBinHeader(out, at, bytes.length);
  out.set(bytes, to);
  return to + bytes.length;
}

/** Bytes of a MessagePack bin of `length` bytes, header included. */
export function binBytes(length: number): number {
  return binHeaderBytes(length) + length;
}

/**
 * Reads the forms above from `bytes`, starting at `at`; each read that succeeds moves `at` past
 * what it read, one that fails leaves it and returns a miss (so a caller tries the generic
 * decoder instead). No read allocates but the view a bin read returns.
 */
export class DirectReader {
  constructor(
    readonly bytes: Uint8Array,
    public at: number,
  ) {}

  /** Whether every byte was read. */
  get done(): boolean {
    return this.at === this.bytes.length;
  }

  /** An unsigned integer < 2^32; -1 for anything else. */
  uint(): number {
    const b = this.bytes;
    const at = this.at;
    const t = b[at];
    if (t === undefined) return -1;
    if (t < 0x80) {
      this.at = at + 1;
      return t;
    }
    if (t === 0xcc && at + 2 <= b.length) {
      this.at = at + 2;
      return b[at + 1]!;
    }
    if (t === 0xcd && at + 3 <= b.length) {
      this.at = at + 3;
      return (b[at + 1]! << 8) | b[at + 2]!;
    }
    if (t === 0xce && at + 5 <= b.length) {
      this.at = at + 5;
      return ((b[at + 1]! << 24) | (b[at + 2]! << 16) | (b[at + 3]! << 8) | b[at + 4]!) >>> 0;
    }
    return -1;
  }

  /** An unsigned integer < 2^32 or a float 64; NaN for anything else (and for a NaN). */
  number(): number {
    const b = this.bytes;
    const at = this.at;
    if (b[at] !== 0xcb) {
      const v = this.uint();
      return v < 0 ? Number.NaN : v;
    }
    if (at + 9 > b.length) return Number.NaN;
    for (let i = 0; i < 8; i++) f64Bytes[littleEndian ? 7 - i : i] = b[at + 1 + i]!;
    this.at = at + 9;
    return f64[0]!;
  }

  /** A bin, as a view into `bytes`; undefined for anything else. */
  bin(): Uint8Array | undefined {
    const b = this.bytes;
    const start = binStart(b, this.at);
    if (start < 0) return undefined;
    const end = start + binLength(b, this.at);
    if (end > b.length) return undefined;
    this.at = end;
    return b.subarray(start, end);
  }
}
