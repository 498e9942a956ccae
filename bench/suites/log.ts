/**
 * The shared log: append throughput with group commit, beside the physical limit of the same
 * disk, and the recovery scan.
 *
 * - `append/<batch>/<groups>g/log`: appends of 100-byte entries, `batch` entries per call
 *   (1, 16, 256, or 64 KiB of records), spread round-robin over 1, 64 or 1,024 groups; one call
 *   at a time, so each call is one write and one fdatasync.
 * - `append/<batch>/raw`: the same loop as bare `write` + `fdatasync` of a buffer the size of the
 *   log's write, into a preallocated file as the log's segments are: the physical limit.
 * - `recover/<size>/log`: opening a log of that many bytes (64 KiB batches over 64 groups):
 *   scanning, verifying every CRC and rebuilding the indexes. The page cache is warm.
 *
 * `bytesPerSec` counts bytes written to (or scanned from) the disk, framing included, so log and
 * raw rows compare like for like; the payload rate is in the note. `opsPerSec` counts entries.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { nodeLogFs } from '../../engine/log/fs.js';
import type { GroupWrite } from '../../engine/log/log-store.js';
import { SegmentedLog } from '../../engine/log/segmented-log.js';
import type { Entry } from '../../engine/raft/types.js';
import { recordHeaderBytes } from '../../wasm/index.js';
import { type BenchRow, type BenchSuite, percentile, type SuiteContext } from '../harness.js';

const entryBytes = 100;
const recordBytes = recordHeaderBytes + entryBytes;
/** Entries whose records (and the write's closing record) fill 64 KiB. */
const entriesPer64KiB = Math.floor((64 * 1024 - recordHeaderBytes) / recordBytes);
const batches = [
  { name: '1', entries: 1 },
  { name: '16', entries: 16 },
  { name: '256', entries: 256 },
  { name: '64KiB', entries: entriesPer64KiB },
];
const groupCounts = [1, 64, 1024];
const fileBytes = 64 * 1024 * 1024;
const samplesMax = 1_000_000;

interface Loop {
  calls: number;
  seconds: number;
  latenciesUs: Float64Array;
}

/** Runs `step` back to back for `seconds` (after a short warm-up) and times every call. */
async function timeLoop(seconds: number, step: () => Promise<void>): Promise<Loop> {
  const warmUntil = performance.now() + Math.min(200, seconds * 100);
  while (performance.now() < warmUntil) await step();
  const latencies: number[] = [];
  const start = performance.now();
  const until = start + seconds * 1000;
  let now = start;
  while (now < until) {
    await step();
    const after = performance.now();
    if (latencies.length < samplesMax) latencies.push((after - now) * 1000);
    now = after;
  }
  return {
    calls: latencies.length,
    seconds: (now - start) / 1000,
    latenciesUs: Float64Array.from(latencies),
  };
}

function row(name: string, loop: Loop, entriesPerCall: number, bytesPerCall: number): BenchRow {
  const callsPerSec = loop.calls / loop.seconds;
  return {
    name,
    opsPerSec: callsPerSec * entriesPerCall,
    bytesPerSec: callsPerSec * bytesPerCall,
    p50Us: percentile(loop.latenciesUs, 50),
    p99Us: percentile(loop.latenciesUs, 99),
    samples: loop.calls,
  };
}

/** Bytes one append of `entries` entries writes: their records and the write's closing record. */
function writeBytes(entries: number): number {
  return entries * recordBytes + recordHeaderBytes;
}

async function rawLoop(dir: string, bytes: number, seconds: number): Promise<Loop> {
  const buf = new Uint8Array(bytes).fill(0xa5);
  let fileNo = 0;
  let file = await nodeLogFs.open(join(dir, `raw-${fileNo}`), true);
  await file.truncate(fileBytes);
  let at = 0;
  const loop = await timeLoop(seconds, async () => {
    if (at + bytes > fileBytes) {
      await file.close();
      rmSync(join(dir, `raw-${fileNo}`));
      file = await nodeLogFs.open(join(dir, `raw-${++fileNo}`), true);
      await file.truncate(fileBytes);
      at = 0;
    }
    await file.write(buf, at);
    await file.datasync();
    at += bytes;
  });
  await file.close();
  rmSync(join(dir, `raw-${fileNo}`));
  return loop;
}

/** Builds the GroupWrites of one call: `count` entries, round-robin over `groups` groups. */
class Batcher {
  private readonly next: number[];
  private cursor = 0;
  private readonly data = new Uint8Array(entryBytes).map((_, i) => (i * 37) & 0xff);

  constructor(private readonly groups: number) {
    this.next = new Array<number>(groups).fill(1);
  }

  writes(count: number): GroupWrite[] {
    const byGroup = new Map<number, Entry[]>();
    for (let k = 0; k < count; k++) {
      const g = this.cursor;
      this.cursor = (this.cursor + 1) % this.groups;
      const index = this.next[g]!;
      this.next[g] = index + 1;
      const entry: Entry = { term: 1, index, type: 1, data: this.data };
      const list = byGroup.get(g);
      if (list === undefined) byGroup.set(g, [entry]);
      else list.push(entry);
    }
    return [...byGroup].map(([group, entries]) => ({ group, entries }));
  }
}

async function logLoop(dir: string, entries: number, groups: number, seconds: number) {
  const log = await SegmentedLog.open({ dir });
  const batcher = new Batcher(groups);
  const loop = await timeLoop(seconds, () => log.append(batcher.writes(entries)));
  await log.close();
  rmSync(dir, { recursive: true, force: true });
  return loop;
}

async function appendRows(ctx: SuiteContext): Promise<BenchRow[]> {
  const seconds = ctx.quick ? 0.4 : 2;
  const rows: BenchRow[] = [];
  for (const batch of batches) {
    const bytes = writeBytes(batch.entries);
    ctx.log(`append ${batch.name}: raw`);
    const raw = row(
      `append/${batch.name}/raw`,
      await rawLoop(ctx.scratchDir, bytes, seconds),
      batch.entries,
      bytes,
    );
    rows.push(raw);
    let single: BenchRow | undefined;
    for (const groups of groupCounts) {
      ctx.log(`append ${batch.name}: ${groups} groups`);
      const dir = join(ctx.scratchDir, `log-${batch.name}-${groups}`);
      const loop = await logLoop(dir, batch.entries, groups, seconds);
      const r = row(`append/${batch.name}/${groups}g/log`, loop, batch.entries, bytes);
      const notes = [`payload ${((r.opsPerSec * entryBytes) / 1e6).toFixed(1)} MB/s`];
      if (groups === 1) {
        single = r;
        notes.push(`log/raw ${(r.bytesPerSec / raw.bytesPerSec).toFixed(2)}`);
      } else if (single !== undefined) {
        notes.push(`${groups}g/1g ${(r.bytesPerSec / single.bytesPerSec).toFixed(2)}`);
      }
      r.note = notes.join(', ');
      rows.push(r);
    }
  }
  return rows;
}

async function recoveryRow(ctx: SuiteContext): Promise<BenchRow> {
  const size = ctx.quick ? 64 * 1024 * 1024 : 1024 * 1024 * 1024;
  const label = ctx.quick ? '64MiB' : '1GiB';
  const dir = join(ctx.scratchDir, 'recover');
  ctx.log(`recover: writing ${label}`);
  const log = await SegmentedLog.open({ dir });
  const batcher = new Batcher(64);
  const perCall = writeBytes(entriesPer64KiB);
  for (let written = 0; written < size; written += perCall) {
    await log.append(batcher.writes(entriesPer64KiB));
  }
  const entries = log.stats().indexedEntries;
  await log.close();
  ctx.log('recover: scanning');
  const start = performance.now();
  const reopened = await SegmentedLog.open({ dir });
  const seconds = (performance.now() - start) / 1000;
  const found = reopened.stats().indexedEntries;
  await reopened.close();
  rmSync(dir, { recursive: true, force: true });
  if (found !== entries) throw new Error(`recovery found ${found} entries of ${entries}`);
  const bytesPerSec = size / seconds;
  return {
    name: `recover/${label}/log`,
    opsPerSec: entries / seconds,
    bytesPerSec,
    p50Us: Number.NaN,
    p99Us: Number.NaN,
    samples: 1,
    note: `${(bytesPerSec / 1e6).toFixed(0)} MB/s scan, ${entries} entries, warm page cache`,
  };
}

const suite: BenchSuite = {
  name: 'log',
  description: 'shared segmented log: group-commit appends vs raw write+fdatasync; recovery scan',
  async run(ctx) {
    const rows = await appendRows(ctx);
    rows.push(await recoveryRow(ctx));
    return rows;
  },
};

export default suite;
