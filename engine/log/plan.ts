/**
 * The semantics of a write, shared by both LogStore implementations: a GroupWrite (or a
 * truncation, or a compaction) is checked against the group's current bounds and becomes a
 * sequence of primitive operations. Both implementations apply the same operations, so they
 * cannot drift.
 */
import { recordHeaderBytes } from '../../wasm/index.js';
import { assert } from '../assert.js';
import type { Entry, GroupId, HardState, SnapshotMeta } from '../raft/types.js';
import type { GroupWrite } from './log-store.js';

/** The bounds of a group's log that planning needs. */
export interface GroupBounds {
  firstIndex: number;
  lastIndex: number;
}

/**
 * Applies the primitive changes a write stands for, in the order they come. Planning calls it
 * only once the whole write has been checked, and creates nothing per call (the append path
 * plans one write per group per turn).
 */
export interface LogOpSink {
  /** Install a snapshot: every entry goes; firstIndex = index + 1, lastIndex = index. */
  snapshot(group: GroupId, meta: SnapshotMeta): void;
  /** Drop the entries >= from (from is within [firstIndex, lastIndex]). */
  truncate(group: GroupId, from: number): void;
  /** Append entries[skip..], which start exactly at lastIndex + 1. */
  entries(group: GroupId, entries: readonly Entry[], skip: number): void;
  hardState(group: GroupId, hardState: HardState): void;
  /** Drop the entries <= index (index is within [firstIndex, lastIndex]). */
  compact(group: GroupId, index: number): void;
}

/** Asserts that a write's entries are well formed: consecutive, terms never decreasing. */
export function checkEntries(entries: readonly Entry[]): void {
  for (let k = 0; k < entries.length; k++) {
    const e = entries[k]!;
    assert(e.type === 1 || e.type === 2, 'an entry type is Normal or ConfChange');
    assert(Number.isSafeInteger(e.index) && e.index > 0, 'an entry index is a positive integer');
    assert(Number.isSafeInteger(e.term) && e.term > 0, 'an entry term is a positive integer');
    if (k > 0) {
      const prev = entries[k - 1]!;
      assert(e.index === prev.index + 1, 'the entries of a write are consecutive');
      assert(e.term >= prev.term, 'terms never decrease along a log');
    }
  }
}

const noEntries: readonly Entry[] = [];

/** Checks a GroupWrite against the group's bounds, then hands its operations to `sink`. */
export function planWrite(bounds: GroupBounds, write: GroupWrite, sink: LogOpSink): void {
  let first = bounds.firstIndex;
  let last = bounds.lastIndex;
  const snap = write.snapshot;
  if (snap !== undefined) {
    assert(Number.isSafeInteger(snap.index) && snap.index >= 0, 'a snapshot index is an integer');
    assert(snap.index >= first - 1, 'a snapshot never goes behind the compaction point');
    first = snap.index + 1;
    last = snap.index;
  }
  const entries = write.entries ?? noEntries;
  checkEntries(entries);
  const skip = entries.length === 0 ? 0 : Math.max(0, first - entries[0]!.index);
  const start = skip < entries.length ? entries[skip]!.index : 0;
  if (skip < entries.length) {
    assert(start <= last + 1, 'entries must not leave a gap after lastIndex');
  }
  const hs = write.hardState;
  if (hs !== undefined) {
    assert(Number.isSafeInteger(hs.term) && hs.term >= 0, 'a hard state term is an integer');
    assert(Number.isSafeInteger(hs.commit) && hs.commit >= 0, 'a commit index is an integer');
    assert(Number.isInteger(hs.vote) && hs.vote >= 0 && hs.vote <= 0xffffffff, 'a vote is a u32');
  }
  const group = write.group;
  if (snap !== undefined) sink.snapshot(group, snap);
  if (skip < entries.length) {
    if (start <= last) sink.truncate(group, start);
    sink.entries(group, entries, skip);
  }
  if (hs !== undefined) sink.hardState(group, hs);
}

/** Checks truncateSuffix(index) and hands its operation, if any, to `sink`. */
export function planTruncate(
  bounds: GroupBounds,
  group: GroupId,
  index: number,
  sink: LogOpSink,
): void {
  assert(Number.isSafeInteger(index), 'a truncation index is an integer');
  if (index > bounds.lastIndex) return;
  assert(index >= bounds.firstIndex, 'compacted entries cannot be truncated');
  sink.truncate(group, index);
}

/** Checks compact(index) and hands its operation, if any, to `sink`. */
export function planCompact(
  bounds: GroupBounds,
  group: GroupId,
  index: number,
  sink: LogOpSink,
): void {
  assert(Number.isSafeInteger(index), 'a compaction index is an integer');
  if (index < bounds.firstIndex) return;
  assert(index <= bounds.lastIndex, 'only stored entries can be compacted');
  sink.compact(group, index);
}

/** Record bytes (frame header + data) of an entry: the unit of `maxBytes` in reads. */
export function entryRecordBytes(entry: Entry): number {
  return recordHeaderBytes + entry.data.length;
}
