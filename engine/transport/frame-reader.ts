/**
 * Splits a byte stream into frames. The length prefix is checked against the current maximum as
 * soon as its four bytes arrive, and a frame's buffer is assembled only once all of its bytes are
 * here: a forged length can never make the reader allocate more than the bytes actually received.
 */
import { assert } from '../assert.js';
import { frameHeaderBytes } from './codec.js';
import { protocolError } from './wire.js';

/** Incremental frame splitter for one connection. */
export class FrameReader {
  private chunks: Uint8Array[] = [];
  /** Offset of the first unread byte in chunks[0]. */
  private head = 0;
  /** Invariant: buffered === sum of chunk lengths - head. */
  private buffered = 0;
  private frameBytesMax: number;

  constructor(frameBytesMax: number) {
    assert(frameBytesMax >= frameHeaderBytes, 'a frame maximum holds a header');
    this.frameBytesMax = frameBytesMax;
  }

  /** Changes the largest accepted frame (raised once the peer is authenticated). */
  setFrameBytesMax(bytes: number): void {
    assert(bytes >= frameHeaderBytes, 'a frame maximum holds a header');
    this.frameBytesMax = bytes;
  }

  /** Bytes received and not yet returned as frames. */
  bufferedBytes(): number {
    return this.buffered;
  }

  /** Adds received bytes. Keeps a reference to `chunk` (no copy). */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * The next whole frame, or null when more bytes are needed. Throws a PROTOCOL FlotillaError
   * when the length prefix is out of bounds; the stream is unusable after that.
   */
  next(): Uint8Array | null {
    if (this.buffered < 4) return null;
    const length = this.peekU32();
    if (length > this.frameBytesMax - frameHeaderBytes) {
      throw protocolError(`frame of ${length} B body exceeds ${this.frameBytesMax} B`);
    }
    const total = frameHeaderBytes + length;
    if (this.buffered < total) return null;
    return this.take(total);
  }

  private peekU32(): number {
    let value = 0;
    let chunk = 0;
    let at = this.head;
    for (let i = 0; i < 4; i++) {
      while (at >= this.chunks[chunk]!.length) {
        chunk++;
        at = 0;
      }
      value += this.chunks[chunk]![at]! * 2 ** (8 * i);
      at++;
    }
    return value;
  }

  private take(total: number): Uint8Array {
    const first = this.chunks[0]!;
    this.buffered -= total;
    if (first.length - this.head >= total) {
      // The whole frame sits in one received chunk: hand out a view, no copy.
      const frame = first.subarray(this.head, this.head + total);
      this.head += total;
      if (this.head === first.length) {
        this.chunks.shift();
        this.head = 0;
      }
      return frame;
    }
    const frame = new Uint8Array(total);
    let filled = 0;
    while (filled < total) {
      const chunk = this.chunks[0]!;
      const n = Math.min(chunk.length - this.head, total - filled);
      frame.set(chunk.subarray(this.head, this.head + n), filled);
      filled += n;
      this.head += n;
      if (this.head === chunk.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    return frame;
  }
}
