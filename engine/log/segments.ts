/**
 * The segment files of a log and what is known about each: how many of its bytes are live
 * records, which groups wrote to it, and when it may be deleted. Segments form a contiguous
 * sequence; only the oldest (the head) is ever deleted, so that a missing file in the middle
 * always means damage. A new segment is created as `<seq>.seg.tmp` (header written, size set,
 * synced), then renamed to `<seq>.seg` and the directory synced, so a `.seg` file always has a
 * complete header.
 *
 * Preallocation: sparse (ftruncate) by default, zero-filled on request (`zeroFill`). Measured on
 * the development VM (ext4 on a virtual disk, other jobs sharing it; 64 KiB write + fdatasync,
 * the bench's largest batch): into blocks already written, a fdatasync is faster (p50 194 vs
 * 269 us, mean 223 vs 314 us; ext4 need not journal the allocation and the extent conversion),
 * but filling a 64 MiB segment costs 50 to 270 ms of disk time, all of it competing with the
 * appends, and doubles the bytes written. A whole log of 64 KiB appends over several segments
 * was no faster zero-filled (27, 88, 28 MB/s against 29, 21, 66 MB/s sparse, runs interleaved;
 * its p99 rose 1.5 to 2.5x while a fill ran) and a short one much slower, so the default stays
 * sparse. (Node offers no fallocate; on ext4 it would leave unwritten extents, which convert at
 * fdatasync much as sparse blocks allocate.) Recycling dead segments, as RocksDB does, would get
 * the written-block speed without the fill, but needs records that name their segment so stale
 * ones past the tail cannot pass for live: a format change.
 */
import { join } from 'node:path';
import { assert } from '../assert.js';
import { ErrorCode, FlotillaError } from '../errors.js';
import { logSegmentFillBytes } from '../limits.js';
import type { GroupId } from '../raft/types.js';
import {
  encodeSegmentHeader,
  segmentHeaderBytes,
  segmentName,
  segmentTempSuffix,
} from './format.js';
import type { LogFile, LogFs } from './fs.js';

/** One segment file and its bookkeeping. */
export class Segment {
  /** The open file, once created. */
  file: LogFile | undefined;
  /** Bytes of live records (needed to rebuild some group's state). */
  live = 0;
  /**
   * Groups that may have live records here, found by the cleaner when it first cleans the
   * segment (records are only ever added to the tail, which the cleaner never cleans, so the
   * set cannot miss a later one), then pruned as it visits them.
   */
  groups: Set<GroupId> | undefined;
  /** Log position at which the last live record here died: deletable once that is durable. */
  deadLsn = 0;
  /** Log position just past the last record allocated here (set when the tail moves on). */
  endLsn = 0;

  constructor(
    readonly seq: number,
    readonly capacity: number,
  ) {}
}

/** The segments of one log, head (oldest) to tail. */
export class SegmentTable {
  private readonly bySeq = new Map<number, Segment>();
  private readonly creating = new Map<number, Promise<LogFile>>();
  /** Files of segments whose creation failed, closed with the rest. */
  private readonly abandoned: LogFile[] = [];
  private head = 0;
  private liveTotal = 0;

  constructor(
    private readonly fs: LogFs,
    private readonly dir: string,
    /** Whether new segments are filled with zeros rather than left sparse (see `preallocate`). */
    private readonly zeroFill = false,
  ) {}

  /** Adds a segment whose file is already open (from recovery). */
  adopt(seq: number, capacity: number, file: LogFile): Segment {
    const segment = this.declare(seq, capacity);
    segment.file = file;
    return segment;
  }

  /** Registers a segment that will be created before anything is written to it. */
  declare(seq: number, capacity: number): Segment {
    assert(!this.bySeq.has(seq), 'a segment is declared once');
    if (this.bySeq.size === 0) this.head = seq;
    else assert(this.bySeq.has(seq - 1), 'segments are declared in sequence');
    const segment = new Segment(seq, capacity);
    this.bySeq.set(seq, segment);
    return segment;
  }

  /** The segment `seq`, which must exist. */
  get(seq: number): Segment {
    const segment = this.bySeq.get(seq);
    assert(segment !== undefined, 'the segment exists');
    return segment;
  }

  /** The segment `seq`, if declared. */
  find(seq: number): Segment | undefined {
    return this.bySeq.get(seq);
  }

  /** The oldest segment. */
  get headSegment(): Segment | undefined {
    return this.bySeq.get(this.head);
  }

  /** Number of segments declared (files, plus at most the next one being created). */
  get count(): number {
    return this.bySeq.size;
  }

  /** Live bytes over every segment. */
  get liveBytes(): number {
    return this.liveTotal;
  }

  /** Records `bytes` of live records in segment `seq`. */
  addLive(seq: number, bytes: number): void {
    this.addLiveTo(this.get(seq), bytes);
  }

  /** Records `bytes` of live records in `segment` (one of this table's). */
  addLiveTo(segment: Segment, bytes: number): void {
    segment.live += bytes;
    this.liveTotal += bytes;
  }

  /** Records that `bytes` of live records in `seq` died once the log reached `lsn`. */
  dropLive(seq: number, bytes: number, lsn: number): void {
    const segment = this.get(seq);
    assert(segment.live >= bytes, 'a segment never loses more live bytes than it holds');
    segment.live -= bytes;
    this.liveTotal -= bytes;
    if (segment.live === 0) segment.deadLsn = lsn;
  }

  /** The open file of segment `seq`, creating it first if needed. */
  async ready(seq: number): Promise<LogFile> {
    const segment = this.get(seq);
    if (segment.file !== undefined) return segment.file;
    let pending = this.creating.get(seq);
    if (pending === undefined) {
      pending = this.create(segment);
      this.creating.set(seq, pending);
    }
    return pending;
  }

  /** Starts creating segment `seq` ahead of need; a failure is reported to `onError`. */
  prepare(seq: number, onError: (err: unknown) => void): void {
    const segment = this.find(seq);
    if (segment === undefined || segment.file !== undefined || this.creating.has(seq)) return;
    this.ready(seq).catch(onError);
  }

  /** Deletes the head segment: closes it, unlinks it, syncs the directory. */
  async deleteHead(): Promise<void> {
    const segment = this.get(this.head);
    assert(segment.live === 0, 'only a dead segment is deleted');
    assert(segment.file !== undefined, 'a deleted segment was created');
    this.bySeq.delete(segment.seq);
    this.head = segment.seq + 1;
    await segment.file.close();
    await this.fs.unlink(join(this.dir, segmentName(segment.seq)));
    await this.fs.syncDir(this.dir);
  }

  /** Deletes the newest segment `seq`, which holds no records (a spare found at recovery). */
  async deleteTail(seq: number): Promise<void> {
    const segment = this.get(seq);
    assert(!this.bySeq.has(seq + 1), 'only the newest segment is deleted from the tail');
    assert(segment.live === 0, 'a spare segment holds nothing live');
    this.bySeq.delete(seq);
    await segment.file?.close();
    await this.fs.unlink(join(this.dir, segmentName(seq)));
    await this.fs.syncDir(this.dir);
  }

  /** Waits for segments being created, then closes every file. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.creating.values()]);
    for (const file of this.abandoned.splice(0)) await file.close();
    for (const segment of this.bySeq.values()) {
      const file = segment.file;
      segment.file = undefined;
      if (file !== undefined) await file.close();
    }
  }

  private async create(segment: Segment): Promise<LogFile> {
    const name = segmentName(segment.seq);
    const temp = join(this.dir, `${name.slice(0, -4)}${segmentTempSuffix}`);
    let file: LogFile | undefined;
    try {
      file = await this.fs.open(temp, true);
      await file.write(encodeSegmentHeader(segment.seq, segment.capacity), 0);
      await preallocate(file, segment.capacity, this.zeroFill);
      await file.datasync();
      await this.fs.rename(temp, join(this.dir, name));
      await this.fs.syncDir(this.dir);
      segment.file = file;
      return file;
    } catch (err) {
      if (file !== undefined) this.abandoned.push(file);
      throw new FlotillaError(
        ErrorCode.IO,
        `creating log segment ${name} failed: ${(err as Error).message}; check the disk and ` +
          'free space, then reopen the log',
        { file: join(this.dir, name), cause: err },
      );
    } finally {
      this.creating.delete(segment.seq);
    }
  }
}

const zeros = new Uint8Array(logSegmentFillBytes);

/**
 * Gives a new segment file its full size, either sparse (ftruncate) or by writing zeros over it
 * (every block allocated and written before the first record lands there). Either way the
 * unwritten part reads as zeros, which is how recovery finds where the records end.
 */
export async function preallocate(file: LogFile, bytes: number, zeroFill: boolean): Promise<void> {
  if (!zeroFill) {
    await file.truncate(bytes);
    return;
  }
  // Whole aligned pieces, the first one starting after the header.
  for (let at = 0; at < bytes; at += zeros.length) {
    const from = Math.max(at, segmentHeaderBytes);
    await file.write(zeros.subarray(0, Math.min(at + zeros.length, bytes) - from), from);
  }
}
