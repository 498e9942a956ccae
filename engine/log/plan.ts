/**
 * The semantics of a write, shared by both LogStore implementations: a GroupWrite (or a
 * truncation, or a compaction) becomes a list of primitive operations, checked against the
 * group's current bounds. Both implementations apply the same operations, so they cannot drift.
 */
import { recordHeaderBytes } from '../../wasm/index.js';
import { assert } from '../assert.js';
import type { Entry, HardState, SnapshotMeta } from '../raft/types.js';
import type { GroupWrite } from './log-store.js';

/** The bounds of a group's log that planning needs. */
export interface GroupBounds {
  firstIndex: number;
  lastIndex: number;
}

/** One primitive change to a group's log. */
export type LogOp =
  /** Install a snapshot: every entry goes; firstIndex = index + 1, lastIndex = index. */
  | { kind: 'snapshot'; meta: SnapshotMeta }
  /** Drop the entries >= from (from is within [firstIndex, lastIndex]). */
  | { kind: 'truncate'; from: number }
  /** Append entries starting exactly at lastIndex + 1. */
  | { kind: 'entries'; entries: Entry[] }
  | { kind: 'hardState'; hardState: HardState }
  /** Drop the entries <= index (index is within [firstIndex, lastIndex]). */
  | { kind: 'compact'; index: number };

function checkEntries(entries: readonly Entry[]): void {
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

/** The operations a GroupWrite stands for, in the order they apply. */
export function planWrite(bounds: GroupBounds, write: GroupWrite): LogOp[] {
  const ops: LogOp[] = [];
  let first = bounds.firstIndex;
  let last = bounds.lastIndex;
  const snap = write.snapshot;
  if (snap !== undefined) {
    assert(Number.isSafeInteger(snap.index) && snap.index >= 0, 'a snapshot index is an integer');
    assert(snap.index >= first - 1, 'a snapshot never goes behind the compaction point');
    ops.push({ kind: 'snapshot', meta: snap });
    first = snap.index + 1;
    last = snap.index;
  }
  const entries = write.entries ?? [];
  checkEntries(entries);
  const skip = entries.length === 0 ? 0 : Math.max(0, first - entries[0]!.index);
  if (skip < entries.length) {
    const kept = skip === 0 ? entries : entries.slice(skip);
    const start = kept[0]!.index;
    assert(start <= last + 1, 'entries must not leave a gap after lastIndex');
    if (start <= last) ops.push({ kind: 'truncate', from: start });
    ops.push({ kind: 'entries', entries: kept });
  }
  if (write.hardState !== undefined) {
    const hs = write.hardState;
    assert(Number.isSafeInteger(hs.term) && hs.term >= 0, 'a hard state term is an integer');
    assert(Number.isSafeInteger(hs.commit) && hs.commit >= 0, 'a commit index is an integer');
    assert(Number.isInteger(hs.vote) && hs.vote >= 0 && hs.vote <= 0xffffffff, 'a vote is a u32');
    ops.push({ kind: 'hardState', hardState: hs });
  }
  return ops;
}

/** The operations of truncateSuffix(index). */
export function planTruncate(bounds: GroupBounds, index: number): LogOp[] {
  assert(Number.isSafeInteger(index), 'a truncation index is an integer');
  if (index > bounds.lastIndex) return [];
  assert(index >= bounds.firstIndex, 'compacted entries cannot be truncated');
  return [{ kind: 'truncate', from: index }];
}

/** The operations of compact(index). */
export function planCompact(bounds: GroupBounds, index: number): LogOp[] {
  assert(Number.isSafeInteger(index), 'a compaction index is an integer');
  if (index < bounds.firstIndex) return [];
  assert(index <= bounds.lastIndex, 'only stored entries can be compacted');
  return [{ kind: 'compact', index }];
}

/** Record bytes (frame header + data) of an entry: the unit of `maxBytes` in reads. */
export function entryRecordBytes(entry: Entry): number {
  return recordHeaderBytes + entry.data.length;
}
