/**
 * Byte-level primitives of the wire format: a writer into an exactly-sized buffer and a defensive
 * reader that turns every malformed input into a PROTOCOL error.
 *
 * Integers are unsigned LEB128 varints (7 bits per byte, low group first, high bit = more). A
 * varint must be minimal (no trailing zero groups) and at most 8 bytes; its value must be a safe
 * integer. Minimal encoding makes every accepted frame re-encode to the same bytes.
 */
import { assert } from '../assert.js';
import { ErrorCode, FlotillaError } from '../errors.js';

/** Longest varint: 8 groups of 7 bits cover every safe integer (2^53 - 1). */
export const varintBytesMax = 8;

/** A PROTOCOL error: the peer sent bytes that do not parse. */
export function protocolError(message: string): FlotillaError {
  return new FlotillaError(ErrorCode.PROTOCOL, `malformed frame: ${message}`);
}

/** Bytes the varint encoding of `value` takes. */
export function varintBytes(value: number): number {
  let n = 1;
  let v = value;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

/** Writes into a buffer allocated at exactly the size the caller computed beforehand. */
export class ByteWriter {
  readonly buf: Uint8Array;
  at = 0;

  constructor(bytes: number) {
    this.buf = new Uint8Array(bytes);
  }

  /** One byte. */
  u8(value: number): void {
    this.buf[this.at++] = value;
  }

  /** A little-endian u16. */
  u16(value: number): void {
    this.buf[this.at++] = value & 0xff;
    this.buf[this.at++] = (value >>> 8) & 0xff;
  }

  /** A big-endian u32 (used for the magic, so that it reads as text on the wire). */
  u32be(value: number): void {
    this.buf[this.at++] = (value >>> 24) & 0xff;
    this.buf[this.at++] = (value >>> 16) & 0xff;
    this.buf[this.at++] = (value >>> 8) & 0xff;
    this.buf[this.at++] = value & 0xff;
  }

  /** A little-endian u32. */
  u32(value: number): void {
    putU32(this.buf, this.at, value);
    this.at += 4;
  }

  /** A varint of a safe non-negative integer. */
  varint(value: number): void {
    assert(Number.isSafeInteger(value), 'varint value is a safe integer');
    assert(value >= 0, 'varint value is non-negative');
    let v = value;
    while (v >= 0x80) {
      this.buf[this.at++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.at++] = v;
  }

  /** Raw bytes. */
  bytes(data: Uint8Array): void {
    this.buf.set(data, this.at);
    this.at += data.length;
  }

  /** The filled buffer; asserts the size computed beforehand was exact. */
  finish(): Uint8Array {
    assert(this.at === this.buf.length, 'encoded size matches the computed size');
    return this.buf;
  }
}

/** Stores a little-endian u32 at `offset`. */
export function putU32(buf: Uint8Array, offset: number, value: number): void {
  buf[offset] = value & 0xff;
  buf[offset + 1] = (value >>> 8) & 0xff;
  buf[offset + 2] = (value >>> 16) & 0xff;
  buf[offset + 3] = (value >>> 24) & 0xff;
}

/** Loads a little-endian u32 at `offset` (caller checked the bounds). */
export function getU32(buf: Uint8Array, offset: number): number {
  return (
    (buf[offset]! |
      (buf[offset + 1]! << 8) |
      (buf[offset + 2]! << 16) |
      (buf[offset + 3]! << 24)) >>>
    0
  );
}

/**
 * Reads from untrusted bytes. Every read checks the bounds first and throws a PROTOCOL
 * FlotillaError on any violation; nothing is allocated from a length before it is checked
 * against both a named maximum and the bytes actually present.
 */
export class ByteReader {
  private readonly buf: Uint8Array;
  private at: number;
  private readonly end: number;

  constructor(buf: Uint8Array, start: number, end: number) {
    this.buf = buf;
    this.at = start;
    this.end = end;
  }

  /** Bytes not yet read. */
  remaining(): number {
    return this.end - this.at;
  }

  /** One byte. */
  u8(): number {
    if (this.at >= this.end) throw protocolError('truncated');
    return this.buf[this.at++]!;
  }

  /** A big-endian u32. */
  u32be(): number {
    if (this.end - this.at < 4) throw protocolError('truncated');
    const b = this.buf;
    const a = this.at;
    this.at += 4;
    return ((b[a]! << 24) | (b[a + 1]! << 16) | (b[a + 2]! << 8) | b[a + 3]!) >>> 0;
  }

  /** A little-endian u16. */
  u16(): number {
    if (this.end - this.at < 2) throw protocolError('truncated');
    const v = this.buf[this.at]! | (this.buf[this.at + 1]! << 8);
    this.at += 2;
    return v;
  }

  /** A minimal varint holding a safe integer. */
  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < varintBytesMax; i++) {
      const byte = this.u8();
      result += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        if (byte === 0 && i > 0) throw protocolError('non-minimal varint');
        if (result > Number.MAX_SAFE_INTEGER) throw protocolError('varint beyond 2^53');
        return result;
      }
      scale *= 0x80;
    }
    throw protocolError('varint longer than 8 bytes');
  }

  /** A varint that must fit in `max` (inclusive); `what` names it in the error. */
  varintMax(max: number, what: string): number {
    const v = this.varint();
    if (v > max) throw protocolError(`${what} ${v} exceeds ${max}`);
    return v;
  }

  /** `n` bytes as a view (no copy); `n` was already bounded by the caller. */
  bytes(n: number): Uint8Array {
    if (n > this.end - this.at) throw protocolError('truncated');
    const view = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return view;
  }

  /** Throws unless every byte was consumed (trailing bytes would not re-encode). */
  expectEnd(what: string): void {
    if (this.at !== this.end)
      throw protocolError(`${this.end - this.at} trailing bytes in ${what}`);
  }
}
