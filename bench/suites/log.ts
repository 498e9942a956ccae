/**
 * The shared log: append throughput with group commit, beside the physical limit of the same
 * disk, and the recovery scan.
 *
 * - `append/<batch>/<groups>g/log`: appends of 100-byte entries, `batch` entries per call
 *   (1, 16, 256, or 64 KiB of records), spread round-robin over 1, 64 or 1,024 groups; one call
 *   at a time, so each call is one write and one fdatasync. Each call is timed from `append`
 *   to its promise resolving; its GroupWrites are built before, untimed, so the row times the
 *   log and not the building of its input.
 * - `append/<batch>/raw`: the physical limit: one `write` + one `fdatasync` per call of a
 *   prebuilt buffer exactly as long as the log's write for that batch (its records and the
 *   write's closing record), at the next offset of a 64 MiB file preallocated as the log's
 *   segments are (same policy, prepared one file ahead), then a fresh file.
 * - `append/<batch>/raw-dsync`: the same, but each call is one `write` through a descriptor
 *   opened with O_DSYNC (durable when it returns, no separate fdatasync): the primitive the
 *   log's own writes use (`LogFile.writeDurable`), so the log's rows can be compared with the
 *   disk's limit by either way of syncing. The target is stated against `raw`.
 * - `recover/<size>/log`: opening a log of that many bytes of records (64 KiB batches over 64
 *   groups): reading every segment to its end, verifying every CRC, rebuilding the indexes. The
 *   log is opened several times; the row gives the median, the note every open (the first runs
 *   the replay code before the JIT has optimized it). The page cache is warm.
 *
 * The disk is shared and its latency drifts, so the rows of one batch size take turns call by
 * call (raw, raw-dsync, 1g, 64g, 1024g, then raw-dsync, 1g, 64g, 1024g, raw, and so on) and each
 * row adds up the time of its own calls: a ratio between rows compares calls made under the same
 * conditions. `bytesPerSec` counts bytes written to (or scanned from) the disk, framing
 * included, so log and raw rows compare like for like; the payload rate is in the note.
 * `opsPerSec` counts entries.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { logSegmentZeroFill } from '../../engine/limits.js';
import { type LogFile, nodeLogFs } from '../../engine/log/fs.js';
import type { GroupWrite } from '../../engine/log/log-store.js';
import { SegmentedLog } from '../../engine/log/segmented-log.js';
import { preallocate } from '../../engine/log/segments.js';
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
/** Size of the raw loop's files: the log's default segment size. */
const fileBytes = 64 * 1024 * 1024;
const samplesMax = 1_000_000;

/** One contender of an interleaved measurement, with what its calls added up to. */
interface Contender {
  name: string;
  /** Readies the next call (untimed). */
  prepare: () => void;
  /** One timed call. */
  step: () => Promise<void>;
  calls: number;
  seconds: number;
  latenciesUs: number[];
}

function contender(name: string, step: () => Promise<void>, prepare = () => {}): Contender {
  return { name, prepare, step, calls: 0, seconds: 0, latenciesUs: [] };
}

/**
 * Runs the contenders' calls in turn, one call each per round (the order rotating from round to
 * round), until each has run for about `seconds`; every call is timed and added to its
 * contender. A short untimed warm-up of each comes first.
 */
async function interleave(contenders: Contender[], seconds: number): Promise<void> {
  for (const c of contenders) {
    const until = performance.now() + Math.min(200, seconds * 100);
    while (performance.now() < until) {
      c.prepare();
      await c.step();
    }
  }
  const until = performance.now() + seconds * 1000 * contenders.length;
  for (let round = 0; performance.now() < until; round++) {
    for (let k = 0; k < contenders.length; k++) {
      const c = contenders[(round + k) % contenders.length]!;
      c.prepare();
      const start = performance.now();
      await c.step();
      const us = (performance.now() - start) * 1000;
      c.calls++;
      c.seconds += us / 1e6;
      if (c.latenciesUs.length < samplesMax) c.latenciesUs.push(us);
    }
  }
}

function row(c: Contender, entriesPerCall: number, bytesPerCall: number): BenchRow {
  const callsPerSec = c.calls / c.seconds;
  const latencies = Float64Array.from(c.latenciesUs);
  return {
    name: c.name,
    opsPerSec: callsPerSec * entriesPerCall,
    bytesPerSec: callsPerSec * bytesPerCall,
    p50Us: percentile(latencies, 50),
    p99Us: percentile(latencies, 99),
    samples: c.calls,
  };
}

/** `a`'s bytes per second over `b`'s, for a note. */
function ratio(a: BenchRow, b: BenchRow): string {
  return (a.bytesPerSec / b.bytesPerSec).toFixed(2);
}

/** Bytes one append of `entries` entries writes: their records and the write's closing record. */
function writeBytes(entries: number): number {
  return entries * recordBytes + recordHeaderBytes;
}

/**
 * The raw loop: write + fdatasync of `bytes` at the next offset of a preallocated file. Files are
 * made as the log makes its segments: preallocated by the same policy (`preallocate`, zero-filled
 * or sparse as `logSegmentZeroFill` says), synced, and prepared one ahead in the background.
 */
class RawWriter {
  private readonly buf: Uint8Array;
  private file: LogFile | undefined;
  private next: Promise<LogFile> | undefined;
  private files = 0;
  private at = fileBytes;

  constructor(
    private readonly dir: string,
    bytes: number,
    /** Whether each call is one durable (O_DSYNC) write rather than write + fdatasync. */
    private readonly dsync = false,
  ) {
    this.buf = new Uint8Array(bytes).fill(0xa5);
  }

  async step(): Promise<void> {
    if (this.at + this.buf.length > fileBytes) {
      await this.file?.close();
      this.file = await (this.next ?? this.create());
      this.next = this.create();
      this.at = 0;
    }
    if (this.dsync) {
      await this.file!.writeDurable(this.buf, this.at);
    } else {
      await this.file!.write(this.buf, this.at);
      await this.file!.datasync();
    }
    this.at += this.buf.length;
  }

  async close(): Promise<void> {
    await this.file?.close();
    await (await this.next)?.close();
    for (let k = 1; k <= this.files; k++) rmSync(join(this.dir, this.name(k)));
  }

  private name(k: number): string {
    return `${this.dsync ? 'raw-dsync' : 'raw'}-${k}`;
  }

  private async create(): Promise<LogFile> {
    const file = await nodeLogFs.open(join(this.dir, this.name(++this.files)), true);
    await preallocate(file, fileBytes, logSegmentZeroFill);
    await file.datasync();
    return file;
  }
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

/** A contender appending `entries` entries over `groups` groups per call to `log`. */
function appender(name: string, log: SegmentedLog, groups: number, entries: number): Contender {
  const batcher = new Batcher(groups);
  let next: GroupWrite[] = [];
  const prepare = () => {
    next = batcher.writes(entries);
  };
  return contender(name, () => log.append(next), prepare);
}

async function batchRows(ctx: SuiteContext, batch: (typeof batches)[number]) {
  const seconds = ctx.quick ? 0.4 : 2;
  const bytes = writeBytes(batch.entries);
  const raw = new RawWriter(ctx.scratchDir, bytes);
  const rawDsync = new RawWriter(ctx.scratchDir, bytes, true);
  const logs: SegmentedLog[] = [];
  const contenders = [
    contender(`append/${batch.name}/raw`, () => raw.step()),
    contender(`append/${batch.name}/raw-dsync`, () => rawDsync.step()),
  ];
  try {
    for (const groups of groupCounts) {
      const log = await SegmentedLog.open({ dir: join(ctx.scratchDir, `log-${groups}`) });
      logs.push(log);
      const name = `append/${batch.name}/${groups}g/log`;
      contenders.push(appender(name, log, groups, batch.entries));
    }
    ctx.log(`append ${batch.name}: raw and ${groupCounts.join(', ')} groups, interleaved`);
    await interleave(contenders, seconds);
  } finally {
    for (const log of logs) await log.close();
    await raw.close();
    await rawDsync.close();
    for (const groups of groupCounts) {
      rmSync(join(ctx.scratchDir, `log-${groups}`), { recursive: true, force: true });
    }
  }
  const rows = contenders.map((c) => row(c, batch.entries, bytes));
  const [rawRow, dsyncRow, single] = rows;
  const file = `${bytes} B, ${logSegmentZeroFill ? 'zero-filled' : 'sparse'} file`;
  rawRow!.note = `write+fdatasync of ${file}`;
  dsyncRow!.note = `O_DSYNC write of ${file}, dsync/raw ${ratio(dsyncRow!, rawRow!)}`;
  for (let k = 2; k < rows.length; k++) {
    const r = rows[k]!;
    const notes = [`payload ${((r.opsPerSec * entryBytes) / 1e6).toFixed(1)} MB/s`];
    notes.push(`log/raw ${ratio(r, rawRow!)}`);
    notes.push(`log/raw-dsync ${ratio(r, dsyncRow!)}`);
    notes.push(`p50 raw/log ${(rawRow!.p50Us / r.p50Us).toFixed(2)}`);
    if (k > 2) notes.push(`${groupCounts[k - 2]}g/1g ${ratio(r, single!)}`);
    r.note = notes.join(', ');
  }
  return rows;
}

async function recoveryRow(ctx: SuiteContext): Promise<BenchRow> {
  const size = ctx.quick ? 64 * 1024 * 1024 : 1024 * 1024 * 1024;
  const label = ctx.quick ? '64MiB' : '1GiB';
  const opens = 3;
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
  const seconds: number[] = [];
  for (let k = 0; k < opens; k++) {
    ctx.log(`recover: scanning (${k + 1} of ${opens})`);
    const start = performance.now();
    const reopened = await SegmentedLog.open({ dir });
    seconds.push((performance.now() - start) / 1000);
    const found = reopened.stats().indexedEntries;
    await reopened.close();
    if (found !== entries) throw new Error(`recovery found ${found} entries of ${entries}`);
  }
  rmSync(dir, { recursive: true, force: true });
  const median = percentile(seconds, 50);
  const rates = seconds.map((s) => (size / s / 1e6).toFixed(0));
  return {
    name: `recover/${label}/log`,
    opsPerSec: entries / median,
    bytesPerSec: size / median,
    p50Us: median * 1e6,
    p99Us: Math.max(...seconds) * 1e6,
    samples: opens,
    note: `opens at ${rates.join(', ')} MB/s (median shown), ${entries} entries, warm page cache`,
  };
}

const suite: BenchSuite = {
  name: 'log',
  description: 'shared segmented log: group-commit appends vs raw write+fdatasync; recovery scan',
  async run(ctx) {
    const rows: BenchRow[] = [];
    for (const batch of batches) rows.push(...(await batchRows(ctx, batch)));
    rows.push(await recoveryRow(ctx));
    return rows;
  },
};

export default suite;
