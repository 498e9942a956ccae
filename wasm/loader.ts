/**
 * Loads the compiled kernels (wasm/build/kernels.wasm) synchronously and wraps them in typed
 * functions with the reference twins' semantics.
 *
 * Kernel memory: below `heapBase()` sit the kernels' tables; everything above is an arena this
 * file reuses on every call. A kernel reads its input from the arena (one `TypedArray.set`
 * copies it in) or, when the input already is a view over kernel memory, where it lies. CRC
 * and decode inputs stream through a fixed window, so verifying a 64 MiB segment needs no more
 * memory than verifying 1 MiB; encode output and hash batches grow memory to fit. Growing
 * detaches every view over the old buffer, so views are re-derived after each growth, and
 * callers get one rule: a buffer returned by `encodeRecords` is valid until the next call into
 * any kernel (it may be that call's input).
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  type CorruptReason,
  checkRecordInput,
  type DecodeResult,
  type DecodeStatus,
  headerFlagsOffset,
  headerLengthOffset,
  headerReservedOffset,
  headerTypeOffset,
  type RecordInput,
  recordHeaderBytes,
} from './format.js';
import {
  kernelCrcChunkBytes,
  kernelInPlaceBytesMin,
  kernelWindowBytes,
  kernelWindowBytesMin,
} from './kernel-limits.js';
import { batchHeaderWords, checkOutputRoom, type RecordBatch } from './record-batch.js';

const pageBytes = 64 * 1024;
/** An encode descriptor is a record's header words (wasm/record-batch.ts). */
const descriptorBytes = batchHeaderWords * 4;
const resultBytes = 16;

/** Where the module is looked for, relative to this file: from sources, then from dist/wasm/. */
const moduleCandidates = ['./build/kernels.wasm', '../../wasm/build/kernels.wasm'];

// Decode status and reason codes, as wasm/assembly/framing.ts numbers them.
const statusOk = 0;
const statusTorn = 2;
const statusCorrupt = 3;
const statusMore = 4;
const reasonNone = 0;
const reasonChecksum = 1;
const reasonHeader = 3;
const statuses: readonly DecodeStatus[] = ['ok', 'zero', 'torn', 'corrupt'];
const reasons: readonly (CorruptReason | undefined)[] = [undefined, 'checksum', 'length', 'header'];

/** What one kernel decode pass reported, codes still numeric. */
interface DecodePass {
  count: number;
  offsets: Uint32Array;
  /** Absolute offset (window base added) where the pass stopped. */
  end: number;
  code: number;
  reason: number;
}

// The slice of the WebAssembly JS API used here: tsconfig's libs carry no WebAssembly types.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmModule {
  readonly compiledModule: unique symbol;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { exports: object };
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

interface KernelExports {
  memory: WasmMemory;
  heapBase(): number;
  crc32c(ptr: number, len: number, seed: number): number;
  encode(desc: number, count: number, out: number): number;
  decode(
    ptr: number,
    len: number,
    cap: number,
    final: number,
    base: number,
    offsets: number,
    result: number,
  ): number;
  xxh32(ptr: number, len: number, seed: number): number;
  xxh32Batch(base: number, bounds: number, count: number, seed: number, out: number): void;
}

const exportNames = ['memory', 'heapBase', 'crc32c', 'encode', 'decode', 'xxh32', 'xxh32Batch'];

let compiled: WasmModule | undefined;

/** Compiles kernels.wasm once per process; instances share the compiled module. */
function kernelModule(): WasmModule {
  if (compiled !== undefined) return compiled;
  const paths = moduleCandidates.map((c) => fileURLToPath(new URL(c, import.meta.url)));
  const path = paths.find((p) => existsSync(p));
  if (path === undefined) {
    throw new Error(
      `WASM kernels not found (looked for ${paths.join(', ')}); run \`npm run build:wasm\`, ` +
        'or set FLOTILLA_WASM=0 to use the TypeScript reference kernels',
    );
  }
  compiled = new wasmApi.Module(readFileSync(path));
  return compiled;
}

function instantiate(): KernelExports {
  const exports = new wasmApi.Instance(kernelModule(), {}).exports;
  for (const name of exportNames) {
    if (!(name in exports)) {
      throw new Error(`WASM kernels lack export '${name}': rebuild with \`npm run build:wasm\``);
    }
  }
  return exports as unknown as KernelExports;
}

/** Converts `recordsMax` to the whole number of records the reference loop would admit. */
function recordsCap(recordsMax: number): number {
  if (!(recordsMax > 0)) return 0;
  if (recordsMax >= 0xffffffff) return 0xffffffff;
  return Math.ceil(recordsMax);
}

function u32At(buf: Uint8Array, offset: number): number {
  return (
    (buf[offset]! |
      (buf[offset + 1]! << 8) |
      (buf[offset + 2]! << 16) |
      (buf[offset + 3]! << 24)) >>>
    0
  );
}

/** `at` rounded up to a multiple of `align` (a power of two up to 2^32; exact to 2^53). */
function alignUp(at: number, align: number): number {
  return at + (-at & (align - 1));
}

function payloadOf(r: RecordInput): Uint8Array {
  return r.payload;
}

function decodeResult(
  count: number,
  offsets: Uint32Array,
  end: number,
  code: number,
  reasonCode: number,
): DecodeResult {
  const result: DecodeResult = { count, offsets, end, status: statuses[code]! };
  const reason = reasons[reasonCode];
  if (reason !== undefined) result.reason = reason;
  return result;
}

function concat(parts: Uint32Array[], count: number): Uint32Array {
  if (parts.length === 1) return parts[0]!;
  const all = new Uint32Array(count);
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return all;
}

/** Options of a kernel instance. */
export interface KernelOptions {
  /** Bytes staged per pass for CRC and decode inputs; default `kernelWindowBytes`. */
  windowBytes?: number;
}

/**
 * One kernel instance with its own memory; `loadKernels()` gives the process-wide one.
 *
 * Arena rules. Only the last `encodeRecords` output may be alive in kernel memory when a call
 * starts (every other result is a copy), and it may be that call's input. Single-input calls
 * stage their input with one `set`, which copies overlapping ranges correctly, so they may use
 * the arena from its base; an input longer than the window is read in place instead. Calls
 * that stage several inputs one after another (encode, hash batches) stage clear of the live
 * output, so they never overwrite an input they have yet to copy.
 */
export class WasmKernels {
  private readonly k: KernelExports;
  private readonly memory: WasmMemory;
  /** Start of the arena, 64-byte aligned. */
  private readonly base: number;
  private readonly window: number;
  /** Bytes staged per CRC kernel call: small enough that the staged copy stays in cache. */
  private readonly crcChunk: number;
  // The current memory buffer and views over it; re-derived by `ensure` whenever memory grows
  // (nothing else grows it: kernels never allocate). Caching the buffer matters: the
  // `memory.buffer` getter costs more than a short kernel call.
  private buffer: ArrayBuffer;
  private u8: Uint8Array;
  private u32: Uint32Array;
  // The last encode output, [liveStart, liveEnd); empty once any other call has run.
  private liveStart = 0;
  private liveEnd = 0;

  constructor(options: KernelOptions = {}) {
    const window = options.windowBytes ?? kernelWindowBytes;
    // A multiple of 16 keeps the decode scratch after a window's input aligned inside it.
    if (!Number.isInteger(window) || window < kernelWindowBytesMin || window % 16 !== 0) {
      throw new RangeError(
        `windowBytes must be a multiple of 16 and at least ${kernelWindowBytesMin}`,
      );
    }
    this.k = instantiate();
    this.memory = this.k.memory;
    this.base = this.k.heapBase();
    this.window = window;
    this.crcChunk = Math.min(window, kernelCrcChunkBytes);
    this.buffer = this.memory.buffer;
    this.u8 = new Uint8Array(this.buffer);
    this.u32 = new Uint32Array(this.buffer);
    // Window, decode result and the offsets of one window's records.
    this.ensure(this.base + window + resultBytes + (window / recordHeaderBytes) * 4);
  }

  /** Grows memory so that [0, end) exists, then re-derives the views. */
  private ensure(end: number): void {
    const have = this.buffer.byteLength;
    if (end <= have) return;
    try {
      this.memory.grow(Math.ceil((end - have) / pageBytes));
    } catch (err) {
      throw new RangeError(`kernel memory cannot grow to ${end} bytes (from ${have})`, {
        cause: err,
      });
    }
    this.buffer = this.memory.buffer;
    this.u8 = new Uint8Array(this.buffer);
    this.u32 = new Uint32Array(this.buffer);
  }

  /**
   * Start of `bytes` of arena clear of the live encode output, which it then forgets. The range
   * may run past the end of memory: the caller grows it (see `growFor`).
   */
  private clearStart(bytes: number): number {
    const fitsBelow = this.liveEnd === 0 || this.base + bytes <= this.liveStart;
    const start = fitsBelow ? this.base : alignUp(this.liveEnd, 64);
    this.liveStart = 0;
    this.liveEnd = 0;
    return start;
  }

  /**
   * Grows memory to `end` for a call that still has to copy `inputs` in. Growth detaches views
   * over kernel memory, so those inputs are copied out first; returns the inputs to read.
   */
  private growFor(end: number, inputs: readonly Uint8Array[]): readonly Uint8Array[] {
    const safe = inputs.map((input) => (this.inKernelMemory(input) ? input.slice() : input));
    this.ensure(end);
    return safe;
  }

  /** Whether `data` is a view over kernel memory. */
  private inKernelMemory(data: Uint8Array): boolean {
    return data.buffer === this.buffer;
  }

  /**
   * Whether a single input should be read where it lies. Any input longer than the window must
   * be (staging it would overwrite it); shorter ones are asked from `kernelInPlaceBytesMin` on,
   * and the rest are simply copied, which one `set` does correctly even for overlapping ranges.
   */
  private readInPlace(data: Uint8Array): boolean {
    const len = data.length;
    return (len >= kernelInPlaceBytesMin || len > this.window) && this.inKernelMemory(data);
  }

  /** CRC32C of `data`, continuing from `seed` (0 to start). */
  crc32c(data: Uint8Array, seed = 0): number {
    this.liveEnd = this.liveStart = 0;
    const len = data.length;
    if (this.readInPlace(data)) return this.k.crc32c(data.byteOffset, len, seed) >>> 0;
    const chunk = this.crcChunk;
    if (len <= chunk) {
      this.u8.set(data, this.base);
      return this.k.crc32c(this.base, len, seed) >>> 0;
    }
    let crc = seed;
    for (let at = 0; at < len; at += chunk) {
      const n = Math.min(chunk, len - at);
      this.u8.set(data.subarray(at, at + n), this.base);
      crc = this.k.crc32c(this.base, n, crc);
    }
    return crc >>> 0;
  }

  /** xxHash32 of `key` with `seed`. */
  hashKey(key: Uint8Array, seed = 0): number {
    this.liveEnd = this.liveStart = 0;
    const len = key.length;
    if (this.readInPlace(key)) return this.k.xxh32(key.byteOffset, len, seed) >>> 0;
    this.ensure(this.base + len);
    this.u8.set(key, this.base);
    return this.k.xxh32(this.base, len, seed) >>> 0;
  }

  /** xxHash32 of every key with `seed`, in one kernel call. */
  hashKeys(keys: readonly Uint8Array[], seed = 0): Uint32Array {
    const n = keys.length;
    let total = 0;
    for (let i = 0; i < n; i++) total += keys[i]!.length;
    const need = (n + 1) * 4 + n * 4 + total;
    const bounds = this.clearStart(need);
    const sources =
      bounds + need > this.buffer.byteLength ? this.growFor(bounds + need, keys) : keys;
    const out = bounds + (n + 1) * 4;
    const bytes = out + n * 4;
    const u8 = this.u8;
    const u32 = this.u32;
    let b = bounds >>> 2;
    let at = 0;
    u32[b++] = 0;
    for (let i = 0; i < n; i++) {
      const key = sources[i]!;
      u8.set(key, bytes + at);
      at += key.length;
      u32[b++] = at;
    }
    this.k.xxh32Batch(bytes, bounds, n, seed, out);
    return u32.slice(out >>> 2, (out >>> 2) + n);
  }

  /**
   * Frames `records` back to back (wasm/format.ts) and returns a view over kernel memory:
   * write it out or copy it before the next call into any kernel.
   */
  encodeRecords(records: readonly RecordInput[]): Uint8Array {
    const n = records.length;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const r = records[i]!;
      checkRecordInput(r);
      total += recordHeaderBytes + r.payload.length;
    }
    const need = n * descriptorBytes + total;
    const desc = this.clearStart(need);
    let payloads: readonly Uint8Array[] | undefined;
    if (desc + need > this.buffer.byteLength) {
      payloads = this.growFor(desc + need, records.map(payloadOf));
    }
    const out = desc + n * descriptorBytes;
    const u8 = this.u8;
    const u32 = this.u32;
    let d = desc >>> 2;
    let at = out + recordHeaderBytes;
    for (let i = 0; i < n; i++) {
      const r = records[i]!;
      const payload = payloads === undefined ? r.payload : payloads[i]!;
      u32[d] = r.type;
      u32[d + 1] = r.group;
      u32[d + 2] = r.term >>> 0;
      u32[d + 3] = (r.term / 2 ** 32) >>> 0;
      u32[d + 4] = r.index >>> 0;
      u32[d + 5] = (r.index / 2 ** 32) >>> 0;
      u32[d + 6] = payload.length;
      u8.set(payload, at);
      d += descriptorBytes >>> 2;
      at += payload.length + recordHeaderBytes;
    }
    this.k.encode(desc, n, out);
    this.liveStart = out;
    this.liveEnd = out + total;
    return u8.subarray(out, out + total);
  }

  /**
   * Frames the records of `batch` into `out` from `at` (a buffer outside kernel memory); returns
   * the bytes written. The batch's header words are the kernel's descriptors as they stand, so
   * they are staged with one copy, and the output is copied out, so nothing stays live here.
   */
  encodeRecordsInto(batch: RecordBatch, out: Uint8Array, at: number): number {
    const n = batch.count;
    const total = batch.bytes;
    checkOutputRoom(out, at, total);
    if (this.inKernelMemory(out)) throw new RangeError('the output must not be kernel memory');
    const need = n * descriptorBytes + total;
    const desc = this.clearStart(need);
    let moved: readonly Uint8Array[] | undefined;
    if (desc + need > this.buffer.byteLength) {
      moved = this.growFor(
        desc + need,
        Array.from({ length: n }, (_, k) => batch.payload(k)),
      );
    }
    const first = desc + n * descriptorBytes;
    this.u32.set(batch.headers.subarray(0, n * batchHeaderWords), desc >>> 2);
    const u8 = this.u8;
    let to = first + recordHeaderBytes;
    for (let k = 0; k < n; k++) {
      const payload = moved === undefined ? batch.payload(k) : moved[k]!;
      u8.set(payload, to);
      to += payload.length + recordHeaderBytes;
    }
    this.k.encode(desc, n, first);
    out.set(u8.subarray(first, first + total), at);
    return total;
  }

  /** Verifies the records at the start of `buf`; the reference's `decodeRecords` semantics. */
  decodeRecords(buf: Uint8Array, recordsMax = Number.POSITIVE_INFINITY): DecodeResult {
    this.liveEnd = this.liveStart = 0;
    const cap = recordsCap(recordsMax);
    if (this.readInPlace(buf)) return this.decodeInPlace(buf, cap);
    if (buf.length > this.window) return this.decodeWindowed(buf, cap);
    this.u8.set(buf, this.base);
    const pass = this.decodePass(this.base, buf.length, cap, true, 0, this.base + this.window);
    return decodeResult(pass.count, pass.offsets, pass.end, pass.code, pass.reason);
  }

  /**
   * Decodes a view over kernel memory where it lies; scratch goes past its end. Growing memory
   * for the scratch detaches `buf`, so its position is read first.
   */
  private decodeInPlace(buf: Uint8Array, cap: number): DecodeResult {
    const ptr = buf.byteOffset;
    const len = buf.length;
    const scratch = alignUp(Math.max(this.base, ptr + len), 16);
    const most = Math.min(cap, Math.floor(len / recordHeaderBytes));
    this.ensure(scratch + resultBytes + most * 4);
    const pass = this.decodePass(ptr, len, cap, true, 0, scratch);
    return decodeResult(pass.count, pass.offsets, pass.end, pass.code, pass.reason);
  }

  /** One kernel pass; `scratch` (result, then offsets) must not overlap the input. */
  private decodePass(
    ptr: number,
    len: number,
    cap: number,
    final: boolean,
    base: number,
    scratch: number,
  ): DecodePass {
    const offsets = scratch + resultBytes;
    const count = this.k.decode(ptr, len, cap, final ? 1 : 0, base, offsets, scratch);
    const u32 = this.u32;
    const r = scratch >>> 2;
    return {
      count,
      offsets: u32.slice(offsets >>> 2, (offsets >>> 2) + count),
      end: base + u32[r + 2]!,
      code: u32[r]!,
      reason: u32[r + 1]!,
    };
  }

  /**
   * Slides the window over `buf`: a record cut by the window's end starts the next window, and a
   * record longer than the window is verified on its own with a chunked CRC.
   */
  private decodeWindowed(buf: Uint8Array, cap: number): DecodeResult {
    const len = buf.length;
    const parts: Uint32Array[] = [];
    let count = 0;
    let at = 0;
    for (;;) {
      const take = Math.min(this.window, len - at);
      this.u8.set(buf.subarray(at, at + take), this.base);
      const final = at + take === len;
      const scratch = alignUp(this.base + take, 16);
      const pass = this.decodePass(this.base, take, cap - count, final, at, scratch);
      parts.push(pass.offsets);
      count += pass.count;
      if (pass.code !== statusMore) {
        return decodeResult(count, concat(parts, count), pass.end, pass.code, pass.reason);
      }
      if (pass.end > at) {
        at = pass.end;
        continue;
      }
      const failure = this.verifyLong(buf, at);
      if (failure !== undefined) {
        return decodeResult(count, concat(parts, count), at, failure.code, failure.reason);
      }
      parts.push(Uint32Array.of(at));
      count++;
      at += recordHeaderBytes + u32At(buf, at + headerLengthOffset);
      if (count >= cap || at === len) {
        return decodeResult(count, concat(parts, count), at, statusOk, reasonNone);
      }
    }
  }

  /**
   * Checks the record at `at`, longer than the window, whose header the kernel has already
   * found non-zero and of a legal length. Returns why it fails, or undefined if it verifies.
   */
  private verifyLong(buf: Uint8Array, at: number): { code: number; reason: number } | undefined {
    const end = at + recordHeaderBytes + u32At(buf, at + headerLengthOffset);
    if (end > buf.length) return { code: statusTorn, reason: reasonNone };
    if (this.crc32c(buf.subarray(at + 4, end)) !== u32At(buf, at)) {
      return { code: statusCorrupt, reason: reasonChecksum };
    }
    const headerOk =
      buf[at + headerTypeOffset] !== 0 &&
      buf[at + headerFlagsOffset] === 0 &&
      buf[at + headerReservedOffset] === 0 &&
      buf[at + headerReservedOffset + 1] === 0;
    return headerOk ? undefined : { code: statusCorrupt, reason: reasonHeader };
  }
}

let shared: WasmKernels | undefined;

/** The process-wide kernel instance, instantiated on first use (synchronously). */
export function loadKernels(): WasmKernels {
  shared ??= new WasmKernels();
  return shared;
}
