/**
 * The log's write chunks and its read cache, which are the same bytes.
 *
 * A chunk is the records of one write (one durable write). Records are framed (CRC
 * included) into the chunk's buffer when they are appended, not when the chunk is flushed: the
 * flusher writes the buffer as it is, and the caller's entry objects are not kept (holding on
 * to hundreds of thousands of small objects made the garbage collector the append path's main
 * cost). Once written, a chunk stays in memory as the read cache of the newest part of the log:
 * chunks are held in log order and only the oldest is ever evicted, so the cached bytes are
 * always a suffix of the log, every position from the oldest held chunk's start onwards.
 *
 * Memory: written chunks are evicted, oldest first, while their buffers (plus a fixed allowance
 * per chunk) exceed the cache's byte bound; chunks not yet written stay whatever the bound (the
 * log's append queue bounds them). A buffer grows by doubling, so it holds at most twice its
 * records' bytes, and every byte of it is counted.
 *
 * Entries read from a chunk share its buffer (their `data` is a view), as entries read from disk
 * share their block's buffer, so a buffer's bytes never change once framed. The buffer of an
 * evicted chunk nobody read from is reused for a new chunk (allocating and zeroing a fresh one
 * for every write cost as much as framing its records); at most `spareBuffersMax` buffers of at
 * most `spareBufferBytesMax` wait for reuse. Until the cache has filled to its bound nothing is
 * evicted, so every chunk needs fresh memory, and touching fresh pages costs far more than
 * framing into them (page faults: ~90 us per 64 KiB on the development VM, against ~55 us for
 * framing 64 KiB of records); `reserve` lets the log take that cost while it waits for a
 * durable write, by preparing the next chunk's buffer then.
 */
import {
  encodeRecordsInto,
  headerTypeOffset,
  RecordBatch,
  recordHeaderBytes,
  recordIndex,
} from '../../wasm/index.js';
import { assert } from '../assert.js';
import type { Entry, EntryType } from '../raft/types.js';
import type { Relocation } from './cleaner.js';
import { framedRecordOf } from './framed-records.js';

/** Memory of a chunk besides its buffer (the object, its arrays), counted against the bound. */
const chunkOverheadBytes = 256;
/** Smallest buffer a chunk starts with. */
const chunkBufferBytesMin = 256;
/** Buffers of evicted chunks kept for reuse. */
const spareBuffersMax = 4;
/** Largest buffer kept for reuse. */
const spareBufferBytesMax = 1024 * 1024;

/**
 * The records of one write, all in one segment. Records are placed (given their offset) one by
 * one into a staging batch (header fields in a typed array, payloads by reference), then framed
 * together by `seal` with one kernel call, straight into the chunk's buffer.
 */
export class Chunk {
  /** Framed records: [0, sealed) final, the rest of the buffer free. */
  buf: Uint8Array;
  /** Bytes framed into `buf`. Invariant: sealed <= bytes. */
  sealed = 0;
  /** Bytes of every record placed (framed or staged). */
  bytes = 0;
  /** Records placed. */
  records = 0;
  /** Log position just past the chunk. */
  endLsn: number;
  /** Records rewritten forward by the cleaner: their new place, applied once written. */
  readonly relocations: Relocation[] = [];
  /** Whether the chunk's bytes are on disk (not necessarily durable yet). */
  written = false;
  /** Whether an entry read from the chunk (a view into its buffer) was handed out. */
  exposed = false;
  /** Records placed but not yet framed: the cache's one staging batch while this chunk is open. */
  private readonly staged: RecordBatch;

  constructor(
    /** Segment the chunk is written to. */
    readonly segment: number,
    /** Offset of its first record in the segment. */
    readonly offset: number,
    startLsn: number,
    buf: Uint8Array,
    staging: RecordBatch,
  ) {
    this.endLsn = startLsn;
    this.buf = buf;
    this.staged = staging;
  }

  /** Memory the chunk holds, as counted against the cache bound. */
  get memoryBytes(): number {
    return this.buf.byteLength + chunkOverheadBytes;
  }

  /**
   * Places a record after the others; `seal` frames it. The payload is held by reference until
   * then. Returns the record's bytes.
   */
  stage(type: number, group: number, term: number, index: number, payload: Uint8Array): number {
    const staged = this.staged;
    assert(staged.bytes === this.bytes - this.sealed, 'only the open chunk stages records');
    staged.add(type, group, term, index, payload);
    const bytes = recordHeaderBytes + payload.length;
    this.bytes += bytes;
    this.records++;
    this.endLsn += bytes;
    return bytes;
  }

  /**
   * Places entries[from..to) of `group` as `stage` would, one after the other; `bytes` is their
   * records' total. Entries that arrived framed (framed-records.ts) are placed as they are.
   */
  stageRun(
    group: number,
    entries: readonly Entry[],
    from: number,
    to: number,
    bytes: number,
  ): void {
    const staged = this.staged;
    const end = this.bytes + bytes;
    assert(staged.bytes === this.bytes - this.sealed, 'only the open chunk stages records');
    for (let k = from; k < to; k++) {
      const e = entries[k]!;
      const framed = framedRecordOf(e);
      if (framed !== undefined) {
        this.placeFramed(framed);
        continue;
      }
      staged.add(e.type, group, e.term, e.index, e.data);
      const length = recordHeaderBytes + e.data.length;
      this.bytes += length;
      this.records++;
      this.endLsn += length;
    }
    assert(this.bytes === end, 'a run stages the bytes it was given');
  }

  /**
   * Places a record that arrived framed (engine/log/framed-records.ts): the records staged
   * before it are framed first, then its verified bytes are copied as they are. Returns them.
   */
  placeFramed(record: Uint8Array): number {
    this.seal();
    const bytes = record.length;
    this.bytes += bytes;
    this.records++;
    this.endLsn += bytes;
    this.reserveBuffer();
    this.buf.set(record, this.sealed);
    this.sealed = this.bytes;
    return bytes;
  }

  /** Frames the staged records into the buffer, growing it first if needed. */
  seal(): void {
    const staged = this.staged;
    if (this.sealed === this.bytes) return;
    this.reserveBuffer();
    const framed = encodeRecordsInto(staged, this.buf, this.sealed);
    assert(framed === this.bytes - this.sealed, 'records frame to the bytes they placed');
    staged.clear();
    this.sealed = this.bytes;
  }

  /** Grows the buffer (doubling) until every placed record fits. */
  private reserveBuffer(): void {
    if (this.buf.length >= this.bytes) return;
    const grown = new Uint8Array(Math.max(this.bytes, 2 * this.buf.length));
    grown.set(this.buf.subarray(0, this.sealed));
    this.buf = grown;
  }

  /** The framed bytes, to be written at `offset`. */
  data(): Uint8Array {
    assert(this.sealed === this.bytes, 'a chunk is sealed before it is written');
    return this.buf.subarray(0, this.bytes);
  }
}

/** The chunks not yet evicted, oldest first; see the module comment. */
export class ChunkCache {
  // chunks[head..] are held, in log order. Invariant: the written ones come first.
  private chunks: (Chunk | undefined)[] = [];
  private head = 0;
  /** Memory of the written chunks held (the part the bound applies to). */
  private writtenBytes = 0;
  /** Where the last lookup found its chunk: reads mostly go forward from there. */
  private hint = 0;
  /** Buffers of evicted chunks never read from, for reuse. */
  private readonly spare: Uint8Array[] = [];
  /** Records of the open chunk not yet framed (only the newest chunk ever takes records). */
  private readonly staging = new RecordBatch();

  constructor(private readonly bytesMax: number) {}

  /** Memory of every chunk held, written or not. */
  get cachedBytes(): number {
    let bytes = 0;
    for (let k = this.head; k < this.chunks.length; k++) bytes += this.chunks[k]!.memoryBytes;
    return bytes;
  }

  /** Starts and holds a new chunk, the newest of the log, with room for `bytes` of records. */
  start(segment: number, offset: number, startLsn: number, bytes: number): Chunk {
    const buf = this.takeSpare(bytes) ?? new Uint8Array(Math.max(chunkBufferBytesMin, bytes));
    assert(this.staging.count === 0, 'the previous chunk is sealed before a new one starts');
    const chunk = new Chunk(segment, offset, startLsn, buf, this.staging);
    this.chunks.push(chunk);
    return chunk;
  }

  /** Whether the record at `offset` of `segment` is held in memory. */
  covers(segment: number, offset: number): boolean {
    const first = this.chunks[this.head];
    if (first === undefined) return false;
    return segment > first.segment || (segment === first.segment && offset >= first.offset);
  }

  /**
   * Entry `index` (of term `term`), whose record of `bytes` bytes lies at `offset` of `segment`
   * and is held here (`covers` says so). Its data is a view into the chunk's buffer.
   */
  entry(segment: number, offset: number, bytes: number, index: number, term: number): Entry {
    const chunk = this.find(segment, offset);
    const at = offset - chunk.offset;
    assert(at + bytes <= chunk.sealed, 'a cached record is framed');
    assert(recordIndex(chunk.buf, at) === index, 'a cached record is the entry the index names');
    const type = chunk.buf[at + headerTypeOffset]! as EntryType;
    chunk.exposed = true;
    return { term, index, type, data: chunk.buf.subarray(at + recordHeaderBytes, at + bytes) };
  }

  /** Marks `chunk` (the oldest not yet written) written, then evicts down to the bound. */
  written(chunk: Chunk): void {
    chunk.written = true;
    this.writtenBytes += chunk.memoryBytes;
    while (this.writtenBytes > this.bytesMax && this.head < this.chunks.length) {
      const oldest = this.chunks[this.head]!;
      if (!oldest.written) break;
      this.chunks[this.head++] = undefined;
      this.writtenBytes -= oldest.memoryBytes;
      this.recycle(oldest);
    }
    if (this.head > 64 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.hint = Math.max(0, this.hint - this.head);
      this.head = 0;
    }
  }

  /**
   * Readies a buffer of `bytes` for a coming chunk, its pages touched, unless a spare one fits
   * (or it would be too large to keep). Called while the disk is busy, so that a chunk started
   * later does not wait on page faults.
   */
  reserve(bytes: number): void {
    const size = Math.max(chunkBufferBytesMin, bytes);
    if (size > spareBufferBytesMax || this.spare.length >= spareBuffersMax) return;
    if (this.spare.some((buf) => buf.length >= size)) return;
    // A fresh buffer's pages are mapped only when first written: fill() writes them now.
    this.spare.push(new Uint8Array(size).fill(0));
  }

  /** The smallest spare buffer of at least `bytes`, taken from the spares, if any. */
  private takeSpare(bytes: number): Uint8Array | undefined {
    let best = -1;
    for (let k = 0; k < this.spare.length; k++) {
      const length = this.spare[k]!.length;
      if (length >= bytes && (best < 0 || length < this.spare[best]!.length)) best = k;
    }
    return best < 0 ? undefined : this.spare.splice(best, 1)[0];
  }

  private recycle(chunk: Chunk): void {
    const fits = chunk.buf.length <= spareBufferBytesMax && this.spare.length < spareBuffersMax;
    if (!chunk.exposed && fits) this.spare.push(chunk.buf);
  }

  /** The held chunk containing position (segment, offset). */
  private find(segment: number, offset: number): Chunk {
    const chunks = this.chunks;
    let k = Math.max(this.hint, this.head);
    if (k >= chunks.length || !startsAtOrBefore(chunks[k]!, segment, offset)) k = this.head;
    // Forward from the hint while the next chunk still starts at or before the position.
    for (let steps = 0; steps < 4; steps++) {
      const next = chunks[k + 1];
      if (next === undefined || !startsAtOrBefore(next, segment, offset)) {
        this.hint = k;
        return chunks[k]!;
      }
      k++;
    }
    let lo = k;
    let hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (startsAtOrBefore(chunks[mid]!, segment, offset)) lo = mid;
      else hi = mid - 1;
    }
    this.hint = lo;
    return chunks[lo]!;
  }
}

function startsAtOrBefore(chunk: Chunk, segment: number, offset: number): boolean {
  return chunk.segment < segment || (chunk.segment === segment && chunk.offset <= offset);
}
