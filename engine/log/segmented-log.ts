/**
 * The shared segmented log of a node: every Raft group appends to one stream of CRC-framed
 * records (wasm/format.ts) cut into segment files, so that one durable write makes the entries
 * of every group durable together (group commit across groups, as TiKV's raft-engine and
 * Dragonboat do).
 *
 * Write path. `append` applies a write to the in-memory state at once (reads see it), gives
 * each record its place in the stream (segment, offset) and frames it (CRC32C included, one
 * `encodeRecordsInto` kernel call per call, from header fields staged in a typed array) straight
 * into the buffer of the open chunk: the records of one future write. One flusher takes a chunk,
 * writes its buffer with one durable write (`LogFile.writeDurable`: on the node file system one
 * O_DSYNC pwrite, one thread-pool job, that returns once the bytes are on stable storage, as
 * write + fdatasync would; the next chunk's buffer is prepared meanwhile), resolves the appends
 * it completed, and takes the next chunk — so appends arriving while a write is in flight are
 * coalesced into the next one. With no write in flight, `append` closes its chunk and issues its
 * write before returning: nothing (no microtask, no turn) stands between an append and its write.
 * A chunk stays within one segment and within `logWriteBytesMax` and ends with a LogWriteEnd
 * record; recovery keeps a chunk whole or drops it, and an append call that fits one chunk is
 * never split, so such a call is atomic on disk.
 * Bytes not yet durable are bounded (`appendQueueBytesMax`, else BUSY); the buffers holding them
 * take at most twice that (a buffer grows by doubling). The caller's entry objects are not
 * kept: keeping every recent entry as an object made garbage collection the append path's main
 * cost.
 *
 * Reads are synchronous: recent entries come from the chunks still held in memory (those not yet
 * written always, written ones up to `cacheBytesMax`; see chunk-cache.ts), older ones are pread
 * from their segment and verified (CRC) on every read.
 *
 * Space. Each segment counts its live bytes: the records some group still needs (its entries,
 * its latest hard state, snapshot marker and compaction point). Only the oldest segment (the
 * head) is deleted, once nothing in it is live and the records that made it dead are durable.
 * When the log holds more than `cleanSlackSegments` segments beyond what its live bytes need,
 * the head's live records are rewritten forward to the tail (at `rewriteBytesPerSec`), so one
 * idle group cannot pin the disk. Disk use is thus bounded by
 *   ceil(live / (segmentBytes - header)) + cleanSlackSegments + 2 segments
 * (the tail being filled and the next one prepared), as long as the live records of the head can
 * be rewritten at the configured rate. Cleaning runs after each flush, so it needs no timer.
 *
 * An I/O error on the write path fails the log: pending and later appends reject with IO, and it
 * must be reopened (after a failed durable write the page cache can no longer be trusted).
 */
import { join } from 'node:path';
import { recordHeaderBytes } from '../../wasm/index.js';
import { assert } from '../assert.js';
import { ErrorCode, FlotillaError, isFlotillaError } from '../errors.js';
import {
  logAppendQueueBytesMax,
  logCleanSlackSegments,
  logEntryCacheBytesMax,
  logRewriteBurstBytes,
  logRewriteBytesPerSec,
  logSegmentBytesDefault,
  logSegmentBytesMax,
  logSegmentBytesMin,
  logSegmentZeroFill,
  logWriteBytesMax,
} from '../limits.js';
import type { Entry, GroupId, HardState, SnapshotMeta } from '../raft/types.js';
import { RecordType } from '../records.js';
import { type Chunk, ChunkCache } from './chunk-cache.js';
import { Cleaner, type CleanerHost } from './cleaner.js';
import { readEntryBlock, type SegmentFiles } from './entry-reader.js';
import {
  encodeConfState,
  encodeVote,
  hardStatePayloadBytes,
  segmentHeaderBytes,
  segmentName,
} from './format.js';
import { framedRecordOf } from './framed-records.js';
import { type LogFs, nodeLogFs } from './fs.js';
import { GroupState, type RecordLoc } from './group-state.js';
import type { GroupWrite, LogStore } from './log-store.js';
import { checkEntries, type LogOpSink, planCompact, planTruncate, planWrite } from './plan.js';
import { recoverLog } from './recovery.js';
import { type Segment, SegmentTable } from './segments.js';

/** How to open a SegmentedLog. Every field but `dir` has a default from engine/limits.ts. */
export interface SegmentedLogOptions {
  /** The log directory (created if missing). */
  dir: string;
  /** The file system; the fault-injecting one in tests. */
  fs?: LogFs;
  /** Size of new segment files. */
  segmentBytes?: number;
  /** Whether new segments are written full of zeros instead of left sparse (segments.ts). */
  zeroFill?: boolean;
  /** Most bytes appended but not yet durable before `append` rejects with BUSY. */
  appendQueueBytesMax?: number;
  /** Bytes of written chunks (recent records) kept in memory for reads. */
  cacheBytesMax?: number;
  /** Rate of rewriting live records out of old segments (0 disables rewriting). */
  rewriteBytesPerSec?: number;
  /** Segments allowed beyond what the live records need before the oldest is cleaned. */
  cleanSlackSegments?: number;
  /** Milliseconds clock for the rewrite rate (simulated time in the simulator). */
  now?: () => number;
}

/** Figures about a log, for tests, benchmarks and status. */
export interface LogStats {
  /** Segment files, the one being filled and the one prepared ahead included. */
  segments: number;
  /** Bytes of records some group still needs. */
  liveBytes: number;
  /** Bytes appended but not yet durable. */
  queuedBytes: number;
  /** Memory of the chunks held for reads, those not yet written included. */
  cachedBytes: number;
  /** Memory of every group's index, by the indexes' own accounting. */
  indexBytes: number;
  /** Entries held by every group's index. */
  indexedEntries: number;
  /** Chunks written (each with one durable write). */
  flushes: number;
  /** Bytes of live records rewritten forward by the cleaner. */
  rewrittenBytes: number;
}

interface Waiter {
  lsn: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const noGroup = new GroupState(0);
/**
 * Slots of the log's direct-mapped cache of groups (a power of two): a call names hundreds of
 * groups, and a hit (an array slot, then the group itself) costs less than a Map lookup. Groups
 * are never removed, so a cached group is never stale. 32 KiB of references.
 */
const recentGroupSlots = 4096;
const noBytes = new Uint8Array(0);

function checkOptions(options: SegmentedLogOptions): void {
  const segmentBytes = options.segmentBytes ?? logSegmentBytesDefault;
  const bad = (what: string) => new FlotillaError(ErrorCode.INVALID_ARGUMENT, what);
  if (
    !Number.isInteger(segmentBytes) ||
    segmentBytes < logSegmentBytesMin ||
    segmentBytes > logSegmentBytesMax
  ) {
    throw bad(`segmentBytes must be an integer in [${logSegmentBytesMin}, ${logSegmentBytesMax}]`);
  }
  const counts = {
    appendQueueBytesMax: options.appendQueueBytesMax,
    cacheBytesMax: options.cacheBytesMax,
    rewriteBytesPerSec: options.rewriteBytesPerSec,
    cleanSlackSegments: options.cleanSlackSegments,
  };
  for (const [name, value] of Object.entries(counts)) {
    if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) {
      throw bad(`${name} must be a non-negative integer`);
    }
  }
}

/** The segmented file log; see the module comment. */
export class SegmentedLog implements LogStore {
  private readonly groupsById: Map<GroupId, GroupState>;
  /** Slot `id & (recentGroupSlots - 1)` holds the group `id` last looked up there, if any. */
  private readonly recent = new Array<GroupState | undefined>(recentGroupSlots).fill(undefined);
  private readonly cache: ChunkCache;
  private readonly segmentBytes: number;
  private readonly queueBytesMax: number;
  // Log positions (bytes since open). Invariant: syncedLsn <= writtenLsn <= enqueuedLsn.
  private enqueuedLsn = 0;
  private writtenLsn = 0;
  private syncedLsn = 0;
  // Where the next record goes. Invariant: tailOffset <= tailCapacity (the tail's capacity).
  private tailSeq: number;
  /** The segment `tailSeq`. */
  private tail: Segment;
  private tailOffset: number;
  private tailCapacity: number;
  private pending: Chunk[] = [];
  /** The chunk taking records: the last of `pending`, until closed. */
  private openChunk: Chunk | undefined;
  private waiters: Waiter[] = [];
  private flusherRunning = false;
  private flusherDone: Promise<void> = Promise.resolve();
  private failure: FlotillaError | undefined;
  private closing = false;
  private closed = false;
  private closeDone: Promise<void> | undefined;
  /** The group whose write `append` is planning (saves a second map lookup per write). */
  private writing: GroupState | undefined;
  /** Buffer size a chunk started now begins with: the bytes of the call placing records. */
  private chunkBytesHint = 0;
  private readonly cleaner: Cleaner;
  private flushes = 0;

  private constructor(
    private readonly dir: string,
    private readonly segments: SegmentTable,
    groups: Map<GroupId, GroupState>,
    tail: { seq: number; offset: number },
    options: SegmentedLogOptions,
  ) {
    this.groupsById = groups;
    this.tailSeq = tail.seq;
    this.tailOffset = tail.offset;
    this.tail = segments.get(tail.seq);
    this.tailCapacity = this.tail.capacity;
    this.segmentBytes = options.segmentBytes ?? logSegmentBytesDefault;
    this.queueBytesMax = options.appendQueueBytesMax ?? logAppendQueueBytesMax;
    this.cache = new ChunkCache(options.cacheBytesMax ?? logEntryCacheBytesMax);
    const rewriteRate = options.rewriteBytesPerSec ?? logRewriteBytesPerSec;
    this.cleaner = new Cleaner(this.cleanerHost(), {
      segmentBytes: this.segmentBytes,
      rewriteBytesPerSec: rewriteRate,
      rewriteBurstBytes: Math.min(logRewriteBurstBytes, rewriteRate),
      cleanSlackSegments: options.cleanSlackSegments ?? logCleanSlackSegments,
      now: options.now ?? (() => performance.now()),
    });
  }

  /** Opens (recovering) or creates the log in `options.dir`. */
  static async open(options: SegmentedLogOptions): Promise<SegmentedLog> {
    checkOptions(options);
    const segmentBytes = options.segmentBytes ?? logSegmentBytesDefault;
    const fs = options.fs ?? nodeLogFs;
    await fs.mkdir(options.dir);
    const recovered = await recoverLog(fs, options.dir);
    const table = new SegmentTable(fs, options.dir, options.zeroFill ?? logSegmentZeroFill);
    for (const s of recovered.segments) table.adopt(s.seq, s.capacity, s.file);
    // Empty segments prepared after the tail go: new ones get the configured size.
    const spare = recovered.segments.filter((s) => s.seq > recovered.tailSeq);
    for (const s of spare.reverse()) await table.deleteTail(s.seq);
    const tailSegment = recovered.segments.find((s) => s.seq === recovered.tailSeq);
    const tail = { seq: recovered.tailSeq, offset: tailSegment?.end ?? segmentHeaderBytes };
    if (tailSegment === undefined) {
      table.declare(tail.seq, segmentBytes);
      try {
        await table.ready(tail.seq);
      } catch (err) {
        await table.close();
        throw err;
      }
    }
    const log = new SegmentedLog(options.dir, table, recovered.groups, tail, options);
    log.countLive();
    return log;
  }

  // ---- LogStore: writes -----------------------------------------------------------------------

  append(writes: readonly GroupWrite[]): Promise<void> {
    try {
      this.checkWritable();
      let bound = 0;
      for (const w of writes) bound += this.boundOf(w);
      this.admit(bound);
      try {
        for (const w of writes) {
          const g = this.find(w.group);
          if (g !== undefined && this.appendInPlace(g, w)) continue;
          this.writing = g;
          planWrite((g ?? noGroup).index, w, this.ops);
        }
      } finally {
        this.writing = undefined;
        this.endCall();
      }
      return this.durable(this.enqueuedLsn);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  truncateSuffix(group: GroupId, index: number): Promise<void> {
    return this.control(() => planTruncate(this.peek(group).index, group, index, this.ops));
  }

  compact(group: GroupId, index: number): Promise<void> {
    return this.control(() => planCompact(this.peek(group).index, group, index, this.ops));
  }

  close(): Promise<void> {
    this.closeDone ??= this.shutDown();
    return this.closeDone;
  }

  private async shutDown(): Promise<void> {
    this.closing = true;
    await this.flusherDone;
    await this.segments.close();
    this.closed = true;
  }

  // ---- LogStore: reads ------------------------------------------------------------------------

  entries(group: GroupId, lo: number, hi: number, maxBytes: number): Entry[] {
    this.checkReadable();
    const g = this.peek(group);
    assert(lo >= g.index.firstIndex, 'entries below firstIndex are compacted');
    assert(hi <= g.index.lastIndex + 1, 'entries above lastIndex do not exist');
    const out: Entry[] = [];
    this.readInto(g, lo, hi, maxBytes, out);
    return out;
  }

  term(group: GroupId, index: number): number | undefined {
    this.checkReadable();
    return this.peek(group).index.term(index);
  }

  firstIndex(group: GroupId): number {
    this.checkReadable();
    return this.peek(group).index.firstIndex;
  }

  lastIndex(group: GroupId): number {
    this.checkReadable();
    return this.peek(group).index.lastIndex;
  }

  hardState(group: GroupId): HardState {
    this.checkReadable();
    return { ...this.peek(group).hardState };
  }

  snapshot(group: GroupId): SnapshotMeta | undefined {
    this.checkReadable();
    return this.peek(group).snapshot;
  }

  groups(): GroupId[] {
    this.checkReadable();
    const ids: GroupId[] = [];
    for (const g of this.groupsById.values()) if (!g.isEmpty) ids.push(g.id);
    return ids.sort((a, b) => a - b);
  }

  /** Figures about the log. */
  stats(): LogStats {
    let indexBytes = 0;
    let indexedEntries = 0;
    for (const g of this.groupsById.values()) {
      indexBytes += g.index.memoryBytes();
      indexedEntries += g.index.lastIndex - g.index.compactedIndex;
    }
    return {
      segments: this.segments.count,
      liveBytes: this.segments.liveBytes,
      queuedBytes: this.enqueuedLsn - this.syncedLsn,
      cachedBytes: this.cache.cachedBytes,
      indexBytes,
      indexedEntries,
      flushes: this.flushes,
      rewrittenBytes: this.cleaner.rewrittenBytes,
    };
  }

  // ---- Applying writes ------------------------------------------------------------------------

  private control(plan: () => void): Promise<void> {
    try {
      this.checkWritable();
      this.admit(2 * recordHeaderBytes);
      try {
        plan();
      } finally {
        this.endCall();
      }
      return this.durable(this.enqueuedLsn);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The most record bytes a GroupWrite can produce; rejects entries no segment can hold. */
  private boundOf(w: GroupWrite): number {
    let bytes = 0;
    // The record and its chunk's closing LogWriteEnd must fit a segment and a write.
    const recordMax = Math.min(this.segmentBytes - segmentHeaderBytes, logWriteBytesMax);
    if (w.snapshot !== undefined) {
      bytes += 2 * recordHeaderBytes + encodeConfState(w.snapshot.conf).length;
    }
    const entries = w.entries;
    if (entries !== undefined && entries.length > 0) {
      bytes += recordHeaderBytes;
      for (let k = 0; k < entries.length; k++) {
        const e = entries[k]!;
        const record = recordHeaderBytes + e.data.length;
        if (record + recordHeaderBytes > recordMax) {
          throw new FlotillaError(
            ErrorCode.INVALID_ARGUMENT,
            `an entry of ${e.data.length} B does not fit in a log segment of ` +
              `${this.segmentBytes} B; use smaller entries or larger segments`,
          );
        }
        bytes += record;
      }
    }
    if (w.hardState !== undefined) bytes += recordHeaderBytes + hardStatePayloadBytes;
    return bytes;
  }

  /** Refuses a write the queue cannot take, and keeps an append call within one chunk. */
  private admit(bound: number): void {
    this.chunkBytesHint = bound + recordHeaderBytes;
    if (bound > this.queueBytesMax) {
      throw new FlotillaError(
        ErrorCode.INVALID_ARGUMENT,
        `an append of ${bound} B exceeds the log's queue of ${this.queueBytesMax} B; split it`,
      );
    }
    if (this.enqueuedLsn - this.syncedLsn + bound > this.queueBytesMax) {
      throw new FlotillaError(
        ErrorCode.BUSY,
        `the log has ${this.enqueuedLsn - this.syncedLsn} B waiting for the disk; retry later`,
      );
    }
    // Keep the call within one chunk (one write, all or nothing at recovery) when it can be.
    const fitsFresh = bound + recordHeaderBytes <= this.segmentBytes - segmentHeaderBytes;
    if (fitsFresh && this.tailOffset + bound + recordHeaderBytes > this.tailCapacity) {
      this.closeChunk();
      this.rotate();
    }
    const open = this.openChunk;
    const fitsWrite = bound + recordHeaderBytes <= logWriteBytesMax;
    if (
      open !== undefined &&
      fitsWrite &&
      open.bytes + bound + recordHeaderBytes > logWriteBytesMax
    ) {
      this.closeChunk();
    }
  }

  /** Applies planned operations; a group is created only when something happens to it. */
  private readonly ops: LogOpSink = {
    snapshot: (group, meta) => this.applySnapshot(this.group(group), meta),
    truncate: (group, from) => {
      const g = this.group(group);
      this.emit(RecordType.Truncation, g.id, 0, from, noBytes);
      g.index.truncateFrom(from, this.drop);
    },
    entries: (group, entries, skip) => this.applyEntries(this.group(group), entries, skip),
    hardState: (group, hs) => this.applyHardState(this.group(group), hs),
    compact: (group, index) => this.applyCompact(this.group(group), index),
  };

  private applySnapshot(g: GroupState, meta: SnapshotMeta): void {
    const payload = encodeConfState(meta.conf);
    const at = this.emit(RecordType.SnapshotMarker, g.id, meta.term, meta.index, payload);
    if (g.index.lastIndex > meta.index) {
      this.emit(RecordType.Truncation, g.id, 0, meta.index + 1, noBytes);
      g.index.truncateFrom(meta.index + 1, this.drop);
    }
    g.index.compactTo(meta.index, meta.term, this.drop);
    this.dropLoc(g.snapshotAt);
    this.dropLoc(g.compactionAt);
    g.compactionAt = undefined;
    g.snapshot = meta;
    g.snapshotAt = this.live(at);
  }

  private applyEntries(g: GroupState, entries: readonly Entry[], skip: number): void {
    const index = g.index;
    let k = skip;
    while (k < entries.length) {
      // The first entry of a run goes through `place`, which may close the chunk or move to the
      // next segment; the entries after it that fit the same chunk (and segment) are measured
      // in a tight loop, then staged and indexed as one run (the hot path).
      const first = entries[k++]!;
      const at = this.place(
        first.type,
        g.id,
        first.term,
        first.index,
        first.data,
        framedRecordOf(first),
      );
      const bytes = recordHeaderBytes + first.data.length;
      index.append(first.index, this.tailSeq, at, bytes, first.term);
      this.segments.addLiveTo(this.tail, bytes);
      if (k === entries.length) break;
      const chunk = this.openChunk!;
      const room = this.roomIn(chunk);
      const from = k;
      let used = 0;
      for (; k < entries.length; k++) {
        const next = used + recordHeaderBytes + entries[k]!.data.length;
        if (next > room) break;
        used = next;
      }
      this.stageRun(chunk, g, entries, from, k, used);
    }
  }

  /**
   * The common write, applied in one step when it is one: entries only, starting at lastIndex + 1
   * of an existing group, whose records all fit the open chunk (after a call's first write,
   * `admit` made room for the whole call). Their records are staged and indexed as one run, with
   * none of the general path's per-write planning. Says whether it applied the write (when not,
   * nothing changed and `planWrite` takes it).
   */
  private appendInPlace(g: GroupState, w: GroupWrite): boolean {
    const entries = w.entries;
    const chunk = this.openChunk;
    if (chunk === undefined || entries === undefined || entries.length === 0) return false;
    if (w.snapshot !== undefined || w.hardState !== undefined) return false;
    if (entries[0]!.index !== g.index.lastIndex + 1) return false;
    let used = 0;
    for (let k = 0; k < entries.length; k++) used += recordHeaderBytes + entries[k]!.data.length;
    if (used > this.roomIn(chunk)) return false;
    checkEntries(entries);
    this.stageRun(chunk, g, entries, 0, entries.length, used);
    return true;
  }

  /** Record bytes the open `chunk` can still take, keeping room for its closing record. */
  private roomIn(chunk: Chunk): number {
    const room = Math.min(this.tailCapacity - this.tailOffset, logWriteBytesMax - chunk.bytes);
    return room - recordHeaderBytes;
  }

  /**
   * Stages and indexes `g`'s entries [from, to) — `used` bytes of records, which `chunk`, the
   * open chunk, has room for — at the tail as one run.
   */
  private stageRun(
    chunk: Chunk,
    g: GroupState,
    entries: readonly Entry[],
    from: number,
    to: number,
    used: number,
  ): void {
    const offset = this.tailOffset;
    chunk.stageRun(g.id, entries, from, to, used);
    g.index.appendRun(entries, from, to, this.tailSeq, offset);
    this.tailOffset = offset + used;
    this.enqueuedLsn += used;
    assert(chunk.endLsn === this.enqueuedLsn, 'a chunk ends where the log does');
    this.segments.addLiveTo(this.tail, used);
  }

  private applyHardState(g: GroupState, hs: HardState): void {
    const at = this.emit(RecordType.HardState, g.id, hs.term, hs.commit, encodeVote(hs.vote));
    this.dropLoc(g.hardStateAt);
    g.hardState = { term: hs.term, vote: hs.vote, commit: hs.commit };
    g.hardStateAt = this.live(at);
  }

  private applyCompact(g: GroupState, index: number): void {
    const term = g.index.term(index);
    assert(term !== undefined, 'a compaction point has a known term');
    const at = this.emit(RecordType.CompactionPoint, g.id, term, index, noBytes);
    this.dropLoc(g.compactionAt);
    g.compactionAt = this.live(at);
    g.index.compactTo(index, term, this.drop);
  }

  private readonly drop = (segment: number, bytes: number): void => {
    this.segments.dropLive(segment, bytes, this.enqueuedLsn);
  };

  private dropLoc(at: RecordLoc | undefined): void {
    if (at !== undefined) this.drop(at.segment, at.bytes);
  }

  private live(at: RecordLoc): RecordLoc {
    this.segments.addLive(at.segment, at.bytes);
    return at;
  }

  // ---- Placing records ------------------------------------------------------------------------

  /** As `place`, returning where the record goes. */
  private emit(
    type: number,
    group: GroupId,
    term: number,
    index: number,
    payload: Uint8Array,
  ): RecordLoc {
    const offset = this.place(type, group, term, index, payload);
    return { segment: this.tailSeq, offset, bytes: recordHeaderBytes + payload.length };
  }

  /**
   * Gives a record its place in the stream (at the tail: `tailSeq` says which segment) and
   * queues it; returns its offset. Every chunk keeps room for its closing LogWriteEnd record,
   * in its segment and in its write. `framed` is the record's verified bytes when it arrived
   * framed: they are queued as they are.
   */
  private place(
    type: number,
    group: GroupId,
    term: number,
    index: number,
    payload: Uint8Array,
    framed?: Uint8Array,
  ): number {
    const bytes = recordHeaderBytes + payload.length;
    const room = bytes + recordHeaderBytes;
    const open = this.openChunk;
    if (open !== undefined && open.bytes + room > logWriteBytesMax) this.closeChunk();
    if (this.tailOffset + room > this.tailCapacity) {
      this.closeChunk();
      while (this.tailOffset + room > this.tailCapacity) this.rotate();
    }
    const chunk = this.openChunk ?? this.startChunk();
    const offset = this.tailOffset;
    this.queue(chunk, type, group, term, index, payload, framed);
    return offset;
  }

  private startChunk(): Chunk {
    const hint = this.chunkBytesHint;
    const chunk = this.cache.start(this.tailSeq, this.tailOffset, this.enqueuedLsn, hint);
    this.pending.push(chunk);
    this.openChunk = chunk;
    return chunk;
  }

  private queue(
    chunk: Chunk,
    type: number,
    group: GroupId,
    term: number,
    index: number,
    payload: Uint8Array,
    framed?: Uint8Array,
  ): void {
    const bytes =
      framed === undefined
        ? chunk.stage(type, group, term, index, payload)
        : chunk.placeFramed(framed);
    this.tailOffset += bytes;
    this.enqueuedLsn += bytes;
    assert(chunk.endLsn === this.enqueuedLsn, 'a chunk ends where the log does');
  }

  /**
   * Frames the records placed in the open chunk; every call that places records ends with it,
   * so that outside such a call every placed record is framed (and readable from its chunk).
   */
  private sealOpen(): void {
    this.openChunk?.seal();
  }

  /**
   * Ends a call that placed records. With no write in flight the open chunk is closed at once
   * (its records and its LogWriteEnd framed by one kernel call) and the caller's `durable`
   * issues its write before returning; otherwise it stays open for the calls that follow.
   */
  private endCall(): void {
    if (this.flusherRunning) this.sealOpen();
    else this.closeChunk();
  }

  /** Ends the open chunk with its LogWriteEnd record; no record joins it afterwards. */
  private closeChunk(): void {
    const chunk = this.openChunk;
    if (chunk === undefined) return;
    this.openChunk = undefined;
    this.queue(chunk, RecordType.LogWriteEnd, 0, chunk.records, chunk.bytes, noBytes);
    chunk.seal();
  }

  private rotate(): void {
    assert(this.openChunk === undefined, 'a chunk never spans two segments');
    this.segments.get(this.tailSeq).endLsn = this.enqueuedLsn;
    this.tailSeq++;
    const next =
      this.segments.find(this.tailSeq) ?? this.segments.declare(this.tailSeq, this.segmentBytes);
    this.tail = next;
    this.tailOffset = segmentHeaderBytes;
    this.tailCapacity = next.capacity;
    assert(next.capacity > segmentHeaderBytes, 'a segment has room for records');
  }

  // ---- Flushing -------------------------------------------------------------------------------

  /** Resolves once the log is durable up to `lsn`. */
  private durable(lsn: number): Promise<void> {
    if (lsn <= this.syncedLsn) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ lsn, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.flusherRunning || this.failure !== undefined) return;
    this.flusherRunning = true;
    this.flusherDone = this.runFlusher();
  }

  /**
   * Writes the pending chunks one after the other. Started from `durable` when idle, it runs
   * synchronously up to the first write, so that write is in flight when `append` returns.
   */
  private async runFlusher(): Promise<void> {
    try {
      while (this.pending.length > 0 && this.failure === undefined) {
        if (this.pending[0] === this.openChunk) this.closeChunk();
        // Done (and no longer the flusher) once it has handed over to the next `append`.
        if (await this.flushChunk(this.pending.shift()!)) return;
        await this.cleaner.clean(!this.closing);
        // The cleaner's copies: no read reaches them before they are written (the index
        // moves to a copy only then), so framing them here, after the await, is in time.
        this.sealOpen();
      }
    } catch (err) {
      this.fail(err);
    }
    this.flusherRunning = false;
  }

  /**
   * Writes a chunk durably (one write that returns once synced) and resolves its appends. When
   * nothing else is left to do (no chunk pending, no segment to delete) the flusher stops before
   * resolving them, so that an append made as soon as one resolves issues its write at once;
   * returns whether it stopped.
   */
  private async flushChunk(chunk: Chunk): Promise<boolean> {
    // The segment is normally ready (prepared one ahead): then nothing is awaited before the
    // write is issued.
    const file =
      this.segments.get(chunk.segment).file ?? (await this.segments.ready(chunk.segment));
    const durable = file.writeDurable(chunk.data(), chunk.offset);
    this.prepareNext(chunk.segment + 1);
    // While the disk works: the next chunk's buffer, so no append waits on its page faults.
    this.cache.reserve(chunk.buf.length);
    await durable;
    this.writtenLsn = chunk.endLsn;
    if (chunk.relocations.length > 0) this.cleaner.applyRelocations(chunk.relocations);
    this.cache.written(chunk);
    this.flushes++;
    this.syncedLsn = chunk.endLsn;
    let stop = false;
    if (!this.cleaner.headDeletable()) {
      // Cleaning without I/O (it may queue copies, which then are pending): done here.
      this.cleaner.rewrite(!this.closing);
      this.sealOpen();
      stop = this.pending.length === 0;
      if (stop) this.flusherRunning = false;
    }
    while (this.waiters.length > 0 && this.waiters[0]!.lsn <= this.syncedLsn) {
      this.waiters.shift()!.resolve();
    }
    return stop;
  }

  private prepareNext(seq: number): void {
    if (this.segments.find(seq) === undefined) this.segments.declare(seq, this.segmentBytes);
    this.segments.prepare(seq, (err) => this.fail(err));
  }

  private fail(err: unknown): void {
    if (this.failure !== undefined) return;
    const message = err instanceof Error ? err.message : String(err);
    this.failure = isFlotillaError(err)
      ? err
      : new FlotillaError(
          ErrorCode.IO,
          `a write to the log in ${this.dir} failed (${message}); the log accepts no more ` +
            'writes: close it and open it again (every acknowledged write survives)',
          { file: this.dir, cause: err },
        );
    this.pending = [];
    this.openChunk = undefined;
    for (const w of this.waiters.splice(0)) w.reject(this.failure);
  }

  // ---- Serving the cleaner and the reads ---------------------------------------------------

  private cleanerHost(): CleanerHost {
    return {
      segments: this.segments,
      group: (id) => this.groupsById.get(id),
      tailSeq: () => this.tailSeq,
      enqueuedLsn: () => this.enqueuedLsn,
      writtenLsn: () => this.writtenLsn,
      syncedLsn: () => this.syncedLsn,
      copy: (record, relocation) => {
        const { type, group, term, index, payload } = record;
        const to = this.emit(type, group, term, index, payload);
        this.openChunk!.relocations.push({ ...relocation, to });
        return to;
      },
      readEntries: (g, from, to, budget, out) => this.readInto(g, from, to, budget, out),
      groupsLiveIn: (seq) => {
        const ids: GroupId[] = [];
        for (const g of this.groupsById.values()) {
          const records = [g.hardStateAt, g.snapshotAt, g.compactionAt];
          if (g.index.hasEntriesIn(seq) || records.some((at) => at?.segment === seq)) {
            ids.push(g.id);
          }
        }
        return ids;
      },
      moveLive: (from, to) => {
        this.live(to);
        this.drop(from.segment, from.bytes);
      },
    };
  }

  /**
   * Appends entries lo..hi-1 of a group to `out` (empty: at least one is read) while their
   * records fit in `maxBytes`; returns how many. Entries in the held chunks come from memory,
   * the others from their segment, read in blocks and verified.
   */
  private readInto(g: GroupState, lo: number, hi: number, maxBytes: number, out: Entry[]): number {
    const index = g.index;
    let bytes = 0;
    let i = lo;
    while (i < hi) {
      const segment = index.segment(i);
      const offset = index.offset(i);
      if (this.cache.covers(segment, offset)) {
        const length = index.length(i);
        bytes += length;
        if (out.length > 0 && bytes > maxBytes) break;
        out.push(this.cache.entry(segment, offset, length, i, index.term(i)!));
        i++;
        continue;
      }
      // The block to read ends at the first held entry, or once past the budget.
      let to = i + 1;
      for (let ahead = index.length(i); to < hi && ahead <= maxBytes - bytes; to++) {
        if (this.cache.covers(index.segment(to), index.offset(to))) break;
        ahead += index.length(to);
      }
      const before = out.length;
      const range = { from: i, to, budget: maxBytes - bytes, atLeastOne: out.length === 0 };
      const count = readEntryBlock(this.files, g, range, out);
      if (count === 0) break;
      for (let k = before; k < out.length; k++) bytes += recordHeaderBytes + out[k]!.data.length;
      i += count;
    }
    return i - lo;
  }

  private readonly files: SegmentFiles = {
    file: (seq) => {
      const file = this.segments.get(seq).file;
      assert(file !== undefined, 'an entry not yet written is cached');
      return file;
    },
    path: (seq) => join(this.dir, segmentName(seq)),
  };

  // ---- Groups ---------------------------------------------------------------------------------

  private peek(group: GroupId): GroupState {
    return this.find(group) ?? noGroup;
  }

  /** The group `id`, if it exists (through the direct-mapped cache in front of the map). */
  private find(id: GroupId): GroupState | undefined {
    const slot = id & (recentGroupSlots - 1);
    const hit = this.recent[slot];
    if (hit !== undefined && hit.id === id) return hit;
    const g = this.groupsById.get(id);
    if (g !== undefined) this.recent[slot] = g;
    return g;
  }

  private group(group: GroupId): GroupState {
    const writing = this.writing;
    if (writing !== undefined && writing.id === group) return writing;
    assert(Number.isInteger(group) && group >= 0 && group <= 0xffffffff, 'a group id is a u32');
    let g = this.find(group);
    if (g === undefined) {
      g = new GroupState(group);
      this.groupsById.set(group, g);
    }
    return g;
  }

  /** Rebuilds the segments' live bytes from the recovered groups. */
  private countLive(): void {
    for (const g of this.groupsById.values()) {
      g.index.bytesBySegment((seq, bytes) => this.segments.addLive(seq, bytes));
      for (const at of [g.hardStateAt, g.snapshotAt, g.compactionAt]) {
        if (at !== undefined) this.live(at);
      }
    }
  }

  private checkWritable(): void {
    if (this.closing) throw new FlotillaError(ErrorCode.CLOSED, 'the log is closed; open it again');
    if (this.failure !== undefined) throw this.failure;
  }

  private checkReadable(): void {
    if (this.closed) throw new FlotillaError(ErrorCode.CLOSED, 'the log is closed; open it again');
  }
}
