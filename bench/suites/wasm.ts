/**
 * The hot-path kernels: WASM against the TypeScript reference twin (and, for CRC, Node's native
 * zlib.crc32, which computes the IEEE polynomial rather than Castagnoli: the same work, a
 * different table). WASM rows carry the ratios the kernel targets are stated in.
 *
 * Inputs are ordinary JS buffers, so every WASM figure includes the copy into kernel memory;
 * encode leaves its output in kernel memory, as the log and transport consume it.
 */
import zlib from 'node:zlib';
import { SeededRandom } from '../../engine/random.js';
import { type RecordInput, recordHeaderBytes } from '../../wasm/format.js';
import { kernelInPlaceBytesMin } from '../../wasm/kernel-limits.js';
import { loadKernels } from '../../wasm/loader.js';
import { crc32c as crc32cRef } from '../../wasm/reference/crc32c.js';
import {
  decodeRecords as decodeRecordsRef,
  encodeRecords as encodeRecordsRef,
} from '../../wasm/reference/framing.js';
import { xxhash32 } from '../../wasm/reference/xxhash32.js';
import type { BenchRow, BenchSuite, MicroTask } from '../harness.js';
import { runMicro } from '../harness.js';

/** Label, bytes, and calls per timed sample (short calls are timed in runs: see `repeat`). */
const crcSizes: readonly [string, number, number][] = [
  ['64B', 64, 32],
  ['1KiB', 1024, 4],
  ['64KiB', 64 * 1024, 1],
  ['1MiB', 1024 * 1024, 1],
];
/** Calls per timed sample for single-key hashing. */
const hashRepeat = 32;
const batchRecords = 1000;
const payloadBytes = 100;
const batchLabel = `${batchRecords}x${payloadBytes}B`;
const keySizes = [16, 64];
const keyBatch = 1000;

/** A micro task; `callsPerSample` > 1 when one timed sample makes several calls. */
interface Task extends MicroTask {
  callsPerSample?: number;
}

function randomBytes(random: SeededRandom, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = random.nextU32() & 0xff;
  return out;
}

/**
 * A task that makes `times` calls per timed sample. tinybench reads the clock around every
 * sample, which costs about as much as a 64-byte CRC; running short calls in a loop keeps that
 * overhead out of the figures (and out of the ratios). `perCall` rescales latencies afterwards.
 */
function repeat(name: string, call: () => number, times: number, bytes: number): Task {
  return {
    name,
    callsPerSample: times,
    fn: () => {
      let acc = 0;
      for (let i = 0; i < times; i++) acc ^= call();
      return acc;
    },
    opsPerCall: times,
    bytesPerOp: times * bytes,
  };
}

function crcTasks(random: SeededRandom): Task[] {
  const kernels = loadKernels();
  const tasks: Task[] = [];
  for (const [label, size, times] of crcSizes) {
    const data = randomBytes(random, size);
    tasks.push(
      repeat(`crc32c/${label}/wasm`, () => kernels.crc32c(data), times, size),
      repeat(`crc32c/${label}/reference`, () => crc32cRef(data), times, size),
      repeat(`crc32c/${label}/native`, () => zlib.crc32(data), times, size),
    );
    if (size >= kernelInPlaceBytesMin) {
      // A view over kernel memory, as encode output is: read in place, no copy. Other tasks
      // overwrite its bytes, which does not matter here; none of them grows memory.
      const record = { type: 1, group: 0, term: 1, index: 1, payload: data };
      const resident = kernels.encodeRecords([record]).subarray(recordHeaderBytes);
      tasks.push(repeat(`crc32c/${label}/wasm-in-place`, () => kernels.crc32c(resident), 1, size));
    }
  }
  return tasks;
}

function framingTasks(random: SeededRandom): Task[] {
  const kernels = loadKernels();
  const records: RecordInput[] = Array.from({ length: batchRecords }, (_, i) => ({
    type: 1,
    group: i % 64,
    term: 7,
    index: 1_000_000 + i,
    payload: randomBytes(random, payloadBytes),
  }));
  // Decode reads a plain buffer, as bytes arrive from a file or a socket.
  const encoded = Uint8Array.from(encodeRecordsRef(records));
  const common = { opsPerCall: batchRecords, bytesPerOp: encoded.length };
  return [
    { name: `encode/${batchLabel}/wasm`, fn: () => kernels.encodeRecords(records), ...common },
    { name: `encode/${batchLabel}/reference`, fn: () => encodeRecordsRef(records), ...common },
    { name: `verify/${batchLabel}/wasm`, fn: () => kernels.decodeRecords(encoded), ...common },
    { name: `verify/${batchLabel}/reference`, fn: () => decodeRecordsRef(encoded), ...common },
  ];
}

function hashTasks(random: SeededRandom): Task[] {
  const kernels = loadKernels();
  const tasks: Task[] = [];
  for (const size of keySizes) {
    const key = randomBytes(random, size);
    const keys = Array.from({ length: keyBatch }, () => randomBytes(random, size));
    const batch = { opsPerCall: keyBatch, bytesPerOp: keyBatch * size };
    tasks.push(
      repeat(`hash/${size}B/wasm`, () => kernels.hashKey(key), hashRepeat, size),
      repeat(`hash/${size}B/reference`, () => xxhash32(key), hashRepeat, size),
      { name: `hash/${keyBatch}x${size}B/wasm`, fn: () => kernels.hashKeys(keys), ...batch },
      {
        name: `hash/${keyBatch}x${size}B/reference`,
        fn: () => {
          const out = new Uint32Array(keys.length);
          for (let i = 0; i < keys.length; i++) out[i] = xxhash32(keys[i]!);
          return out;
        },
        ...batch,
      },
    );
  }
  return tasks;
}

function rate(bytesPerSec: number): string {
  return bytesPerSec >= 1e9
    ? `${(bytesPerSec / 1e9).toFixed(2)} GB/s`
    : `${(bytesPerSec / 1e6).toFixed(0)} MB/s`;
}

/** Turns the latencies of rows measured in runs of calls (`repeat`) into per-call figures. */
function perCall(rows: BenchRow[], tasks: readonly Task[]): void {
  for (const [i, row] of rows.entries()) {
    const calls = tasks[i]!.callsPerSample ?? 1;
    row.p50Us /= calls;
    row.p99Us /= calls;
  }
}

/** Writes each WASM row's speed-up over its reference (and native) row into its note. */
function annotate(rows: BenchRow[]): void {
  const byName = new Map(rows.map((r) => [r.name, r]));
  for (const row of rows) {
    if (row.name.endsWith('/native')) {
      row.note = 'zlib.crc32: IEEE polynomial, native code, no copy';
    }
    const impl = row.name.slice(row.name.lastIndexOf('/') + 1);
    if (impl !== 'wasm' && impl !== 'wasm-in-place') continue;
    const stem = row.name.slice(0, -impl.length);
    const parts: string[] = [];
    const ref = byName.get(`${stem}reference`);
    if (ref !== undefined) parts.push(`${(row.opsPerSec / ref.opsPerSec).toFixed(2)}x reference`);
    const native = byName.get(`${stem}native`);
    if (native !== undefined) {
      parts.push(`${(row.opsPerSec / native.opsPerSec).toFixed(2)}x native`);
    }
    if (row.bytesPerSec > 0) parts.push(rate(row.bytesPerSec));
    if (impl === 'wasm-in-place') parts.push('input already in kernel memory');
    row.note = parts.join(', ');
  }
}

const suite: BenchSuite = {
  name: 'wasm',
  description: 'kernels: CRC32C, record framing, xxHash32 (WASM vs reference vs native)',
  async run(ctx) {
    if (typeof zlib.crc32 !== 'function') {
      throw new Error('zlib.crc32 is missing: the native CRC rows need Node >= 20.15');
    }
    const random = new SeededRandom(0x5eed);
    const rows: BenchRow[] = [];
    for (const [group, tasks] of [
      ['crc32c', crcTasks(random)],
      ['framing', framingTasks(random)],
      ['hashing', hashTasks(random)],
    ] as const) {
      ctx.log(`running ${group} (${tasks.length} tasks)`);
      const measured = await runMicro(tasks, ctx.quick);
      perCall(measured, tasks);
      rows.push(...measured);
    }
    annotate(rows);
    return rows;
  },
};

export default suite;
