/**
 * Opening a log directory: every segment is scanned and every record verified (CRC32C through
 * the WASM kernel), and the groups' indexes, hard states, snapshots and compaction points are
 * rebuilt by replaying the records in log order.
 *
 * Telling a torn last write from corruption. The log writes one chunk at a time, fdatasyncs it
 * before writing the next, never lets a chunk span two segments, and ends every chunk with a
 * LogWriteEnd record giving the chunk's length and record count. So at a crash at most one write
 * is incomplete — the last one, in the last segment holding records — and recovery knows where
 * every complete write ends. Only complete writes are replayed (a write is all or nothing).
 * After the last complete write of a segment, the bytes up to the end of its nonzero data are:
 * - all zero: the clean end of the log (segments are preallocated with zeros);
 * - damaged, with no complete write (records ending in a valid LogWriteEnd) among them, and no
 *   longer than one write (`logWriteBytesMax`): the torn last write, whatever parts of it reached
 *   the disk. Accepted only in the last segment holding records; the bytes are then zeroed (and
 *   synced) so that later appends cannot run into stale records;
 * - anything else — a complete write after the damage, more damage than one write, damage in an
 *   earlier segment — is corruption.
 * Corruption, a bad segment header, a missing segment or an entry missing from a group's range
 * refuse to open with CORRUPT_LOG naming the file, offset and group: a committed entry is never
 * dropped silently. (Damage inside the very last write is indistinguishable from a tear and that
 * write is dropped, as in every write-ahead log.)
 */
import { Buffer } from 'node:buffer';
import { join } from 'node:path';
import { decodeRecords, recordHeaderBytes, recordIndex, recordTerm } from '../../wasm/index.js';
import { ErrorCode, FlotillaError } from '../errors.js';
import { logRecoveryCarryBytes, logRecoveryReadBytes, logWriteBytesMax } from '../limits.js';
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
import { readFully, SegmentReader } from './segment-reader.js';

/** A segment found on disk. */
export interface RecoveredSegment {
  seq: number;
  capacity: number;
  file: LogFile;
  /** Offset just past its last complete write. */
  end: number;
  /** Offset where verification stopped: `end`, or the first record of a write that failed. */
  stop: number;
}

/** The state rebuilt from a log directory. */
export interface RecoveredLog {
  groups: Map<GroupId, GroupState>;
  /** Ascending, contiguous; empty for a new log. */
  segments: RecoveredSegment[];
  /** The segment appends continue in: the last one holding records (or the first). */
  tailSeq: number;
}

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
    let empty: RecoveredSegment | undefined;
    for (const segment of segments) {
      const path = join(dir, segmentName(segment.seq));
      const dirtyEnd = await scanSegment(segment, replay);
      const hasRecords = segment.end > segmentHeaderBytes;
      if (hasRecords && empty !== undefined) {
        throw corrupt(
          join(dir, segmentName(empty.seq)),
          segmentHeaderBytes,
          `the segment holds no records although the later segment ${path} does: its writes ` +
            'were lost',
        );
      }
      if (!hasRecords) empty ??= segment;
      if (hasRecords && torn !== undefined) {
        throw corrupt(
          join(dir, segmentName(torn.segment.seq)),
          torn.segment.stop,
          `a damaged write is followed by records in the later segment ${path}`,
          replay.groupAt(torn.segment, torn.segment.stop),
        );
      }
      if (hasRecords) tailSeq = segment.seq;
      const tail = await classifyTail(segment, dirtyEnd);
      if (tail.kind === 'corrupt') {
        const group = replay.groupAt(segment, segment.stop);
        throw corrupt(path, segment.stop, tail.reason, group);
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
    return { seq, capacity: header.capacity, file, end: segmentHeaderBytes, stop: 0 };
  } catch (err) {
    await Promise.allSettled([file.close()]);
    throw err;
  }
}

/**
 * Verifies and replays the complete writes of a segment, then reads on to the end of the file:
 * sets `end` (just past the last complete write) and `stop` (where verification stopped) and
 * returns where the nonzero bytes after `end` stop (`end` itself when there are none). Every
 * window starts at the start of a write: an incomplete write at a window's end is carried into
 * the next one.
 */
async function scanSegment(segment: RecoveredSegment, replay: Replayer): Promise<number> {
  const { capacity, file } = segment;
  const reader = new SegmentReader(
    file,
    segmentHeaderBytes,
    capacity,
    logRecoveryReadBytes,
    logRecoveryCarryBytes,
  );
  try {
    let pos = segmentHeaderBytes;
    let view = await reader.next(noBytes);
    for (;;) {
      const result = decodeRecords(view);
      const done = completeWrites(view, result.offsets, result.count);
      replay.records(segment, view, result.offsets, done.records, pos);
      const more = result.status === 'ok' || result.status === 'torn';
      if (done.broken || !more || reader.done) {
        segment.end = pos + done.end;
        segment.stop = pos + (done.broken ? done.stop : result.end);
        break;
      }
      view = await reader.next(view.subarray(done.end));
      pos += done.end;
    }
    let dirtyEnd = dirtyEndOf(view.subarray(segment.end - pos), segment.end, segment.end);
    let at = pos + view.length;
    while (!reader.done) {
      const window = await reader.next(noBytes);
      dirtyEnd = dirtyEndOf(window, at, dirtyEnd);
      at += window.length;
    }
    await reader.finish();
    return dirtyEnd;
  } catch (err) {
    await reader.abandon();
    throw err;
  }
}

/**
 * Where the complete writes among verified records end: each LogWriteEnd must count the bytes
 * and records since the previous one. `broken` flags one that does not (the scan stops there).
 */
function completeWrites(
  view: Uint8Array,
  offsets: Uint32Array,
  count: number,
): { end: number; records: number; broken: boolean; stop: number } {
  let start = 0;
  let inWrite = 0;
  let end = 0;
  let records = 0;
  for (let k = 0; k < count; k++) {
    const o = offsets[k]!;
    if (view[o + 8] !== RecordType.LogWriteEnd) {
      inWrite++;
      continue;
    }
    const matches = recordIndex(view, o) === o - start && recordTerm(view, o) === inWrite;
    if (!matches) return { end, records, broken: true, stop: o };
    end = o + recordHeaderBytes;
    records = k + 1;
    start = end;
    inWrite = 0;
  }
  return { end, records, broken: false, stop: 0 };
}

function u32(buf: Uint8Array, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
}

const noBytes = new Uint8Array(0);
let zeros = Buffer.alloc(0);

function isZero(chunk: Uint8Array): boolean {
  if (zeros.length < chunk.length) zeros = Buffer.alloc(chunk.length);
  return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length).equals(
    zeros.subarray(0, chunk.length),
  );
}

/** Where the nonzero bytes of a tail end once `bytes`, at file offset `at`, are added to it. */
function dirtyEndOf(bytes: Uint8Array, at: number, dirtyEnd: number): number {
  if (isZero(bytes)) return dirtyEnd;
  let last = bytes.length - 1;
  while (bytes[last] === 0) last--;
  return at + last + 1;
}

/** Classifies the bytes after the last complete write of a segment, nonzero up to `dirtyEnd`. */
async function classifyTail(segment: RecoveredSegment, dirtyEnd: number): Promise<Tail> {
  const { file, capacity, end } = segment;
  if (dirtyEnd === end) return { kind: 'clean' };
  if (dirtyEnd - end > logWriteBytesMax) {
    return { kind: 'corrupt', reason: `${dirtyEnd - end} damaged bytes exceed one write` };
  }
  // A complete write ends with a LogWriteEnd whose last bytes may be zeros: look that far.
  const region = new Uint8Array(Math.min(capacity, dirtyEnd + recordHeaderBytes) - end);
  await readFully(file, region, end);
  const complete = findCompleteWrite(region);
  if (complete === undefined) return { kind: 'torn', dirtyEnd };
  return {
    kind: 'corrupt',
    reason: `damaged bytes are followed by a complete write at offset ${end + complete}`,
  };
}

/** The start of the first complete write (records ending in a valid LogWriteEnd) in `region`. */
function findCompleteWrite(region: Uint8Array): number | undefined {
  for (let p = 0; p + recordHeaderBytes <= region.length; p++) {
    if (region[p + 8] !== RecordType.LogWriteEnd || u32(region, p + 4) !== 0) continue;
    if (decodeRecords(region.subarray(p, p + recordHeaderBytes), 1).count !== 1) continue;
    const start = p - recordIndex(region, p);
    if (start < 0) continue;
    const write = decodeRecords(region.subarray(start, p + recordHeaderBytes));
    if (write.status === 'ok' && write.count === recordTerm(region, p) + 1) return start;
  }
  return undefined;
}

async function zeroRange(file: LogFile, from: number, to: number): Promise<void> {
  const chunk = new Uint8Array(Math.min(to - from, 1024 * 1024));
  for (let at = from; at < to; at += chunk.length) {
    await file.write(chunk.subarray(0, Math.min(chunk.length, to - at)), at);
  }
  await file.datasync();
}

/** Slots of the replayer's cache of recently seen groups (a power of two). */
const recentGroupSlots = 256;

/** Applies verified records, in log order, to the groups' state. */
class Replayer {
  readonly groups = new Map<GroupId, GroupState>();
  private readonly recent = new Array<GroupState | undefined>(recentGroupSlots);

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
    const seq = segment.seq;
    let g: GroupState | undefined;
    for (let k = 0; k < count; k++) {
      const o = offsets[k]!;
      const type = buf[o + 8]!;
      if (type === RecordType.LogWriteEnd) continue;
      const id = view.getUint32(o + 12, true);
      if (g === undefined || g.id !== id) g = this.group(id);
      const term = view.getUint32(o + 16, true) + view.getUint32(o + 20, true) * 2 ** 32;
      const index = view.getUint32(o + 24, true) + view.getUint32(o + 28, true) * 2 ** 32;
      const bytes = recordHeaderBytes + view.getUint32(o + 4, true);
      if (type === RecordType.EntryNormal || type === RecordType.EntryConfChange) {
        g.index.place(index, seq, base + o, bytes, term);
      } else {
        const at = { segment: seq, offset: base + o, bytes };
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
    // Records of many groups interleave: a direct-mapped cache in front of the map.
    const slot = id & (recentGroupSlots - 1);
    const hit = this.recent[slot];
    if (hit !== undefined && hit.id === id) return hit;
    let g = this.groups.get(id);
    if (g === undefined) {
      g = new GroupState(id);
      this.groups.set(id, g);
    }
    this.recent[slot] = g;
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
