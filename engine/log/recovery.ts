/**
 * Opening a log directory: every segment is scanned and every record verified (CRC32C through
 * the WASM kernel), and the groups' indexes, hard states, snapshots and compaction points are
 * rebuilt by replaying the records in log order.
 *
 * Telling a torn last write from corruption. The log writes one chunk at a time and fdatasyncs
 * it before writing the next, and a chunk never spans two segments, so at a crash at most one
 * write is incomplete: the last one, at the end of the last segment holding records. Where
 * verification stops (the "bad spot" X), the bytes up to the end of the nonzero data are:
 * - all zero: the clean end of the log (segments are preallocated with zeros);
 * - nonzero, but nothing in them verifies as a record: a torn write (a prefix of it reached the
 *   disk, maybe followed by garbage) — provided they span no more than one write
 *   (`logWriteBytesMax`);
 * - records that verify after X: these can still be a torn write whose later sectors reached the
 *   disk before its earlier ones — only if they lie within one write of X and the damaged part
 *   holds a run of zeros (a sector that never arrived); anything else is corruption.
 * A torn write is only accepted in the last segment holding records; the damaged bytes are then
 * zeroed (and synced) so that later appends cannot run into stale records. Everything else —
 * damage in an earlier segment, a bad header, a missing segment, an entry missing from a group's
 * range — refuses to open with CORRUPT_LOG naming the file, offset and group: a committed entry
 * is never dropped silently. A corrupted last record is indistinguishable from a torn write and
 * is dropped, as in every write-ahead log.
 */
import { Buffer } from 'node:buffer';
import { join } from 'node:path';
import { decodeRecords, recordHeaderBytes } from '../../wasm/index.js';
import { ErrorCode, FlotillaError } from '../errors.js';
import { logRecoveryReadBytes, logWriteBytesMax } from '../limits.js';
import type { GroupId } from '../raft/types.js';
import { RecordType } from '../records.js';
import {
  decodeConfState,
  decodeSegmentHeader,
  decodeVote,
  parseSegmentName,
  segmentHeaderBytes,
  segmentName,
  segmentTempSuffix,
} from './format.js';
import type { LogFile, LogFs } from './fs.js';
import { GroupState } from './group-state.js';

/** A segment found on disk. */
export interface RecoveredSegment {
  seq: number;
  capacity: number;
  file: LogFile;
  /** Offset just past its last valid record. */
  end: number;
}

/** The state rebuilt from a log directory. */
export interface RecoveredLog {
  groups: Map<GroupId, GroupState>;
  /** Ascending, contiguous; empty for a new log. */
  segments: RecoveredSegment[];
  /** The segment appends continue in: the last one holding records (or the first). */
  tailSeq: number;
}

/** Zero runs at least this long inside damaged bytes mark a sector that never reached disk. */
const lostSectorZeroBytes = 32;
/** How a tail (the bytes after the last valid record of a segment) looks. */
type Tail =
  | { kind: 'clean' }
  | { kind: 'torn'; dirtyEnd: number }
  | { kind: 'corrupt'; reason: string };

function corrupt(file: string, offset: number, what: string, group?: number): FlotillaError {
  const details = group === undefined ? { file, offset } : { file, offset, group };
  const where = group === undefined ? '' : ` (group ${group})`;
  return new FlotillaError(
    ErrorCode.CORRUPT_LOG,
    `log segment ${file} is corrupt at offset ${offset}${where}: ${what}. The log refuses to ` +
      'open rather than drop committed entries: restore this node from a replica (remove its ' +
      'data directory and add it back to the cluster), keeping the damaged file for inspection',
    details,
  );
}

/** Reads the segments of `dir` and rebuilds the state they hold. */
export async function recoverLog(fs: LogFs, dir: string): Promise<RecoveredLog> {
  const seqs = await listSegments(fs, dir);
  const segments: RecoveredSegment[] = [];
  try {
    for (const seq of seqs) segments.push(await openSegment(fs, dir, seq));
    const replay = new Replayer(dir);
    let tailSeq = segments[0]?.seq ?? 1;
    let torn: { segment: RecoveredSegment; dirtyEnd: number } | undefined;
    for (const segment of segments) {
      const path = join(dir, segmentName(segment.seq));
      segment.end = await scanRecords(segment, replay);
      const hasRecords = segment.end > segmentHeaderBytes;
      if (hasRecords && torn !== undefined) {
        throw corrupt(
          join(dir, segmentName(torn.segment.seq)),
          torn.segment.end,
          `a damaged write is followed by records in the later segment ${path}`,
          replay.groupAt(torn.segment, torn.segment.end),
        );
      }
      if (hasRecords) tailSeq = segment.seq;
      const tail = await inspectTail(segment);
      if (tail.kind === 'corrupt') {
        const group = replay.groupAt(segment, segment.end);
        throw corrupt(path, segment.end, tail.reason, group);
      }
      if (tail.kind === 'torn') torn = { segment, dirtyEnd: tail.dirtyEnd };
    }
    if (torn !== undefined) await zeroRange(torn.segment.file, torn.segment.end, torn.dirtyEnd);
    replay.check();
    return { groups: replay.groups, segments, tailSeq };
  } catch (err) {
    // The recovery error is the one to report; closing is best effort on the way out.
    await Promise.allSettled(segments.map((s) => s.file.close()));
    throw err;
  }
}

async function listSegments(fs: LogFs, dir: string): Promise<number[]> {
  const names = await fs.readdir(dir);
  const temps = names.filter((n) => n.endsWith(segmentTempSuffix));
  for (const name of temps) await fs.unlink(join(dir, name));
  if (temps.length > 0) await fs.syncDir(dir);
  const seqs = names
    .map(parseSegmentName)
    .filter((s): s is number => s !== undefined)
    .sort((a, b) => a - b);
  for (let k = 1; k < seqs.length; k++) {
    if (seqs[k] !== seqs[k - 1]! + 1) {
      throw corrupt(
        join(dir, segmentName(seqs[k - 1]! + 1)),
        0,
        `the segment is missing: the log holds ${segmentName(seqs[0]!)} to ` +
          `${segmentName(seqs[seqs.length - 1]!)} with a gap`,
      );
    }
  }
  return seqs;
}

async function openSegment(fs: LogFs, dir: string, seq: number): Promise<RecoveredSegment> {
  const path = join(dir, segmentName(seq));
  const file = await fs.open(path, false);
  try {
    const size = await file.size();
    const head = new Uint8Array(segmentHeaderBytes);
    const n = await file.read(head, 0);
    const header = decodeSegmentHeader(head.subarray(0, n));
    if ('problem' in header) {
      if (header.problem === 'version') {
        throw new FlotillaError(
          ErrorCode.VERSION_MISMATCH,
          `log segment ${path} has format version ${header.version}, which this build cannot ` +
            'read: open the log with the Flotilla version that wrote it',
          { file: path, offset: 8 },
        );
      }
      throw corrupt(path, 0, `the segment header fails its ${header.problem} check`);
    }
    if (header.seq !== seq) {
      throw corrupt(path, 16, `the header names segment ${header.seq}`);
    }
    if (size !== header.capacity) {
      throw corrupt(
        path,
        Math.min(size, header.capacity),
        `the file is ${size} bytes but was created with ${header.capacity} (truncated?)`,
      );
    }
    return { seq, capacity: header.capacity, file, end: segmentHeaderBytes };
  } catch (err) {
    await Promise.allSettled([file.close()]);
    throw err;
  }
}

/** Verifies and replays the records of a segment; returns the offset where they stop. */
async function scanRecords(segment: RecoveredSegment, replay: Replayer): Promise<number> {
  const { capacity, file } = segment;
  let buf = new Uint8Array(Math.min(logRecoveryReadBytes, capacity));
  let pos = segmentHeaderBytes;
  let carry = 0;
  while (pos < capacity) {
    const want = Math.min(buf.length, capacity - pos);
    if (want > carry) await readFully(file, buf.subarray(carry, want), pos + carry);
    const view = buf.subarray(0, want);
    const result = decodeRecords(view);
    replay.records(segment, view, result.offsets, result.count, pos);
    if (result.status === 'ok') {
      pos += want;
      carry = 0;
      continue;
    }
    const end = pos + result.end;
    if (result.status !== 'torn' || pos + want >= capacity) return end;
    // The record at `end` continues past this read: carry its start into the next one.
    const rest = want - result.end;
    const need = rest >= 8 ? recordHeaderBytes + u32(view, result.end + 4) : 0;
    if (need > capacity - end) return end;
    if (need > buf.length) {
      const bigger = new Uint8Array(need);
      bigger.set(view.subarray(result.end));
      buf = bigger;
    } else {
      buf.copyWithin(0, result.end, want);
    }
    carry = rest;
    pos = end;
  }
  return pos;
}

async function readFully(file: LogFile, into: Uint8Array, position: number): Promise<void> {
  const n = await file.read(into, position);
  if (n !== into.length) {
    throw new FlotillaError(ErrorCode.IO, `short read of a log segment at offset ${position}`);
  }
}

function u32(buf: Uint8Array, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
}

let zeros = Buffer.alloc(0);

function isZero(chunk: Uint8Array): boolean {
  if (zeros.length < chunk.length) zeros = Buffer.alloc(chunk.length);
  return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length).equals(
    zeros.subarray(0, chunk.length),
  );
}

/** Classifies the bytes after the last valid record of a segment. */
async function inspectTail(segment: RecoveredSegment): Promise<Tail> {
  const { file, capacity, end } = segment;
  const step = Math.min(logRecoveryReadBytes, Math.max(1, capacity - end));
  const chunk = new Uint8Array(step);
  let dirtyEnd = end;
  for (let at = end; at < capacity; at += step) {
    const view = chunk.subarray(0, Math.min(step, capacity - at));
    await readFully(file, view, at);
    if (isZero(view)) continue;
    let last = view.length - 1;
    while (view[last] === 0) last--;
    dirtyEnd = at + last + 1;
  }
  if (dirtyEnd === end) return { kind: 'clean' };
  if (dirtyEnd - end > logWriteBytesMax) {
    return { kind: 'corrupt', reason: `${dirtyEnd - end} damaged bytes exceed one write` };
  }
  const region = new Uint8Array(dirtyEnd - end);
  await readFully(file, region, end);
  const found = findVerifiable(region);
  if (found === undefined) return { kind: 'torn', dirtyEnd };
  if (found.lastEnd <= logWriteBytesMax && hasZeroRun(region, found.first)) {
    return { kind: 'torn', dirtyEnd };
  }
  return {
    kind: 'corrupt',
    reason: `a record that does not verify is followed by valid records (at offset ${end + found.first})`,
  };
}

/** The first start and the furthest end of records that verify anywhere in `region`. */
function findVerifiable(region: Uint8Array): { first: number; lastEnd: number } | undefined {
  let first = -1;
  let lastEnd = 0;
  for (let p = 1; p + recordHeaderBytes <= region.length; p++) {
    if (region[p + 8] === 0 || (region[p + 9]! | region[p + 10]! | region[p + 11]!) !== 0) continue;
    const bytes = recordHeaderBytes + u32(region, p + 4);
    if (bytes > region.length - p) continue;
    if (decodeRecords(region.subarray(p, p + bytes), 1).count !== 1) continue;
    if (first < 0) first = p;
    lastEnd = Math.max(lastEnd, p + bytes);
  }
  return first < 0 ? undefined : { first, lastEnd };
}

function hasZeroRun(region: Uint8Array, to: number): boolean {
  let run = 0;
  for (let p = 0; p < to; p++) {
    run = region[p] === 0 ? run + 1 : 0;
    if (run >= lostSectorZeroBytes) return true;
  }
  return false;
}

async function zeroRange(file: LogFile, from: number, to: number): Promise<void> {
  const chunk = new Uint8Array(Math.min(to - from, 1024 * 1024));
  for (let at = from; at < to; at += chunk.length) {
    await file.write(chunk.subarray(0, Math.min(chunk.length, to - at)), at);
  }
  await file.datasync();
}

/** Applies verified records, in log order, to the groups' state. */
class Replayer {
  readonly groups = new Map<GroupId, GroupState>();

  constructor(private readonly dir: string) {}

  /** The group a damaged record names, when that group is known from earlier records. */
  groupAt(segment: RecoveredSegment, offset: number): number | undefined {
    const head = new Uint8Array(16);
    const n = segment.file.readSync(head, offset);
    if (n < 16) return undefined;
    const group = u32(head, 12);
    return this.groups.has(group) ? group : undefined;
  }

  records(
    segment: RecoveredSegment,
    buf: Uint8Array,
    offsets: Uint32Array,
    count: number,
    base: number,
  ): void {
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let g: GroupState | undefined;
    for (let k = 0; k < count; k++) {
      const o = offsets[k]!;
      const id = view.getUint32(o + 12, true);
      if (g === undefined || g.id !== id) g = this.group(id);
      const term = view.getUint32(o + 16, true) + view.getUint32(o + 20, true) * 2 ** 32;
      const index = view.getUint32(o + 24, true) + view.getUint32(o + 28, true) * 2 ** 32;
      const bytes = recordHeaderBytes + view.getUint32(o + 4, true);
      const type = buf[o + 8]!;
      const at = { segment: segment.seq, offset: base + o, bytes };
      if (type === RecordType.EntryNormal || type === RecordType.EntryConfChange) {
        g.index.place(index, segment.seq, base + o, bytes, term);
      } else {
        this.meta(g, type, term, index, buf.subarray(o + recordHeaderBytes, o + bytes), at);
      }
    }
  }

  private meta(
    g: GroupState,
    type: number,
    term: number,
    index: number,
    payload: Uint8Array,
    at: { segment: number; offset: number; bytes: number },
  ): void {
    const fail = (what: string) =>
      corrupt(join(this.dir, segmentName(at.segment)), at.offset, what, g.id);
    const compacted = g.index.compactedIndex;
    switch (type) {
      case RecordType.HardState: {
        const vote = decodeVote(payload);
        if (vote === undefined) throw fail('a hard state record has a malformed payload');
        g.hardState = { term, vote, commit: index };
        g.hardStateAt = at;
        return;
      }
      case RecordType.SnapshotMarker: {
        const conf = decodeConfState(payload);
        if (conf === undefined) throw fail('a snapshot marker has a malformed membership');
        g.snapshot = { index, term, conf };
        g.snapshotAt = at;
        if (index >= compacted) {
          g.index.compactTo(index, term);
          g.compactionAt = undefined;
        }
        return;
      }
      case RecordType.CompactionPoint:
        if (index > compacted) g.index.compactTo(index, term);
        if (index >= compacted && index > (g.snapshot?.index ?? -1)) g.compactionAt = at;
        return;
      case RecordType.Truncation:
        g.index.truncateFrom(index);
        return;
      default:
        throw fail(`a record has the unknown type ${type}`);
    }
  }

  private group(id: GroupId): GroupState {
    let g = this.groups.get(id);
    if (g === undefined) {
      g = new GroupState(id);
      this.groups.set(id, g);
    }
    return g;
  }

  /** Every group's entries must run unbroken from its compaction point to its last index. */
  check(): void {
    for (const g of this.groups.values()) {
      const hole = g.index.firstHole();
      if (hole !== undefined) {
        throw new FlotillaError(
          ErrorCode.CORRUPT_LOG,
          `entry ${hole} of group ${g.id} is missing from the log in ${this.dir} although later ` +
            'entries exist: a segment was lost or damaged. Restore this node from a replica',
          { file: this.dir, group: g.id },
        );
      }
      const drop = g.index.firstTermDecrease();
      if (drop !== undefined) {
        throw new FlotillaError(
          ErrorCode.CORRUPT_LOG,
          `the term of entry ${drop} of group ${g.id} is lower than its predecessor's in ` +
            `${this.dir}: the log is inconsistent. Restore this node from a replica`,
          { file: this.dir, group: g.id },
        );
      }
    }
  }
}
