/**
 * Records to frame, held as header fields in one typed array beside a list of payloads: the shape
 * a writer fills record by record without creating an object per record (the log places hundreds
 * of records per write, and one object each made the garbage collector a main cost of its append
 * path). `encodeRecordsInto` (wasm/index.ts) frames a batch into the caller's buffer.
 */
import { checkRecordFields, recordHeaderBytes } from './format.js';

/**
 * u32 words of one record's header fields in `RecordBatch.headers`: type, group, term (low word,
 * high word), index (low, high), payload length, and a zero word. The kernel reads them as they
 * are (wasm/assembly/framing.ts: its encode descriptor).
 */
export const batchHeaderWords = 8;

/** Throws RangeError unless `bytes` bytes fit in `out` from `at`. */
export function checkOutputRoom(out: Uint8Array, at: number, bytes: number): void {
  if (!Number.isInteger(at) || at < 0 || at + bytes > out.length) {
    throw new RangeError(
      `${bytes} B of records do not fit at offset ${at} of a buffer of ${out.length} B`,
    );
  }
}

const recordsMin = 16;
const noPayload = new Uint8Array(0);

/** A growable batch of records to frame; see the module comment. */
export class RecordBatch {
  // Invariant: for k < count, words [8k, 8k + 8) describe record k and word 8k + 6 is the length
  // of payloads[k]; entries of `payloads` at or past `count` hold no caller's buffer.
  private words: Uint32Array;
  private readonly payloads: Uint8Array[] = [];
  private records = 0;
  private total = 0;

  constructor(recordsHint = recordsMin) {
    this.words = new Uint32Array(Math.max(recordsMin, recordsHint) * batchHeaderWords);
  }

  /** Records added since the last `clear`. */
  get count(): number {
    return this.records;
  }

  /** Bytes the records frame to (headers and payloads). */
  get bytes(): number {
    return this.total;
  }

  /** Header fields of the records, `batchHeaderWords` per record (the array may run longer). */
  get headers(): Uint32Array {
    return this.words;
  }

  /** The payload of record `k` (< count). */
  payload(k: number): Uint8Array {
    return this.payloads[k]!;
  }

  /**
   * Adds a record; throws RangeError, as `encodeRecords` does, for fields that cannot be framed.
   * The payload is not copied: it must not change until the batch is framed.
   */
  add(type: number, group: number, term: number, index: number, payload: Uint8Array): void {
    const length = payload.length;
    checkRecordFields(type, group, term, index, length);
    const k = this.records;
    let w = k * batchHeaderWords;
    if (w === this.words.length) this.grow();
    const words = this.words;
    words[w++] = type;
    words[w++] = group;
    words[w++] = term >>> 0;
    words[w++] = (term / 2 ** 32) >>> 0;
    words[w++] = index >>> 0;
    words[w++] = (index / 2 ** 32) >>> 0;
    words[w++] = length;
    words[w] = 0;
    if (k < this.payloads.length) this.payloads[k] = payload;
    else this.payloads.push(payload);
    this.records = k + 1;
    this.total += recordHeaderBytes + length;
  }

  /** Empties the batch and lets go of its payloads; its memory is kept for reuse. */
  clear(): void {
    this.payloads.fill(noPayload, 0, this.records);
    this.records = 0;
    this.total = 0;
  }

  private grow(): void {
    const grown = new Uint32Array(2 * this.words.length);
    grown.set(this.words);
    this.words = grown;
  }
}
