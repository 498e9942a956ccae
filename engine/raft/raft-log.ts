/**
 * The log of one group as the Raft core sees it: the durable part (RaftStorage) plus an in-memory
 * unstable tail of entries (and at most one snapshot) that the host has not yet persisted, as in
 * etcd's raftLog/unstable. All reads go through here so that the tail shadows storage.
 */
import { assert } from './assert.js';
import { entryBytes, type RaftStorage } from './storage.js';
import type { Entry, SnapshotMeta } from './types.js';

/** A shared empty entry list (frozen: pushing onto it throws). */
export const noEntries: Entry[] = Object.freeze([]) as unknown as Entry[];

/** How many of entries[start, end) fit in `maxBytes` (at least one when start < end). */
function countWithin(entries: Entry[], start: number, end: number, maxBytes: number): number {
  if (end - start <= 1) return end - start;
  let size = entryBytes(entries[start]!);
  for (let i = start + 1; i < end; i++) {
    size += entryBytes(entries[i]!);
    if (size > maxBytes) return i - start;
  }
  return end - start;
}

/** Storage plus the unstable tail. */
export class RaftLog {
  /** The durable log. */
  readonly storage: RaftStorage;
  // Unstable tail: unstable[k] has index `offset + k`. A pending snapshot, when present, sits
  // just below it (pendingSnapshot.index === offset - 1 right after a restore).
  private unstable: Entry[] = noEntries;
  /** `unstable` was handed out in a Ready: copy it before the next in-place change. */
  private unstableShared = false;
  private offset: number;
  private pendingSnapshot: SnapshotMeta | undefined = undefined;
  // Retained: entries the host made durable that are not applied yet, kept so that handing
  // them out as committed (usually the very next Ready) needs no read back from storage, which
  // built a second copy of each entry. retained[k] has index `retainedOffset + k`; the list
  // always ends at `offset - 1` and holds at most retainedBytesMax bytes (beyond, it is emptied
  // and storage serves as before). Only retained[0, retainedCount) is live; freed slots hold
  // undefined: the array keeps its storage, which emptying it (every apply does) gave up.
  private readonly retained: (Entry | undefined)[] = [];
  private retainedCount = 0;
  private retainedOffset = 0;
  private retainedBytes = 0;
  private readonly retainedBytesMax: number;
  // Invariant: applied <= committed <= lastIndex(); both only grow.
  /** Highest index known to be committed. */
  committed: number;
  /** Highest index the host has applied (reported through advance). */
  applied: number;
  /**
   * Set by maybeAppend: the first index whose existing entry was replaced by a different one
   * (a conflicting suffix was truncated), 0 when nothing was replaced.
   */
  conflictIndex = 0;

  /**
   * A log over `storage`, whose state machine has applied up to `applied`, keeping up to
   * `retainedBytesMax` bytes of durable unapplied entries in memory.
   */
  constructor(storage: RaftStorage, committed: number, applied: number, retainedBytesMax = 0) {
    this.storage = storage;
    this.retainedBytesMax = retainedBytesMax;
    const last = storage.lastIndex();
    this.offset = last + 1;
    assert(committed <= last, 'persisted commit is beyond the persisted log');
    assert(applied <= last, 'applied index is beyond the persisted log');
    // An applied entry was committed even if the hard state recording that (written without
    // fsync when only the commit index changed) was lost in a crash.
    const floor = Math.max(applied, storage.firstIndex() - 1);
    this.committed = Math.max(committed, floor);
    this.applied = floor;
  }

  /** Index of the first entry still available. */
  firstIndex(): number {
    if (this.pendingSnapshot !== undefined) return this.pendingSnapshot.index + 1;
    return this.storage.firstIndex();
  }

  /** Index of the last entry. */
  lastIndex(): number {
    if (this.unstable.length > 0) return this.offset + this.unstable.length - 1;
    if (this.pendingSnapshot !== undefined) return this.pendingSnapshot.index;
    return this.storage.lastIndex();
  }

  /** The last index the host has made durable. */
  durableLastIndex(): number {
    if (this.unstable.length > 0) return this.offset - 1;
    return this.lastIndex();
  }

  /** Term of the entry at `index`, undefined when compacted away or beyond the end. */
  term(index: number): number | undefined {
    if (index >= this.offset) {
      const entry = this.unstable[index - this.offset];
      return entry === undefined ? undefined : entry.term;
    }
    const snap = this.pendingSnapshot;
    if (snap !== undefined) return index === snap.index ? snap.term : undefined;
    return this.storage.term(index);
  }

  /** Term of the last entry. */
  lastTerm(): number {
    const term = this.term(this.lastIndex());
    assert(term !== undefined, 'the last entry has a term');
    return term;
  }

  /** Whether the entry at `index` has term `term`. */
  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Whether a log ending at (lastIndex, lastTerm) is at least as up to date as this one. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * The largest index <= `index` whose term is <= `term` (etcd's findConflictByTerm): every entry
   * above it has a newer term than `term`, so none can match a log whose entry at `index` has
   * `term`. Stops at the compaction point.
   */
  findConflictByTerm(index: number, term: number): number {
    for (;;) {
      const t = this.term(index);
      if (t === undefined || t <= term) return index;
      index--;
    }
  }

  /**
   * Follower side of AppendEntries: if the entry at `index` has `logTerm`, appends `entries`
   * (replacing a conflicting suffix), commits up to min(committed, last new index) and returns
   * the last new index; otherwise returns -1 and changes nothing.
   */
  maybeAppend(index: number, logTerm: number, committed: number, entries: Entry[]): number {
    this.conflictIndex = 0;
    if (!this.matchTerm(index, logTerm)) return -1;
    const lastNew = index + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      assert(conflict > this.committed, 'an append conflicts with a committed entry');
      if (conflict <= this.lastIndex()) this.conflictIndex = conflict;
      const from = conflict - (index + 1);
      this.truncateAndAppend(from === 0 ? entries : entries.slice(from));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  /** First entry of `entries` not already in the log with the same term, 0 if all are. */
  private findConflict(entries: Entry[]): number {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /** Appends one entry at lastIndex + 1 (the leader's proposal path). */
  appendOne(entry: Entry): void {
    assert(entry.index === this.lastIndex() + 1, 'appendOne leaves a gap');
    this.writableUnstable().push(entry);
  }

  /** The unstable tail, ready for in-place appends (copied if a Ready holds it). */
  private writableUnstable(): Entry[] {
    if (this.unstable === noEntries) {
      this.unstable = [];
    } else if (this.unstableShared) {
      this.unstable = this.unstable.slice();
    }
    this.unstableShared = false;
    return this.unstable;
  }

  private replaceUnstable(entries: Entry[]): void {
    this.unstable = entries;
    this.unstableShared = false;
  }

  private truncateAndAppend(entries: Entry[]): void {
    if (entries.length === 0) return;
    const after = entries[0]!.index;
    assert(after > this.committed, 'truncating committed entries');
    if (after === this.offset + this.unstable.length) {
      const tail = this.writableUnstable();
      for (const e of entries) tail.push(e);
    } else if (after <= this.offset) {
      // The new entries replace part of the durable log: storage drops its suffix when the host
      // persists them (the Ready's entries start at `after`).
      this.offset = after;
      this.dropRetainedFrom(after);
      this.replaceUnstable(entries.slice());
    } else {
      const tail = this.unstable.slice(0, after - this.offset);
      for (const e of entries) tail.push(e);
      this.replaceUnstable(tail);
    }
  }

  /** Entries [lo, hi), at most maxBytes (but at least one when lo < hi). */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    assert(lo >= this.firstIndex(), 'slice: lo is compacted');
    assert(hi <= this.lastIndex() + 1, 'slice: hi is beyond the log');
    if (lo >= hi) return noEntries;
    if (lo >= this.offset) {
      const start = lo - this.offset;
      const end = hi - this.offset;
      return this.unstable.slice(start, start + countWithin(this.unstable, start, end, maxBytes));
    }
    const storedHi = Math.min(hi, this.offset);
    const stored =
      lo >= this.retainedOffset && this.retainedCount > 0
        ? this.retainedSlice(lo, storedHi, maxBytes)
        : this.storage.entries(lo, storedHi, maxBytes);
    assert(stored.length > 0, 'storage returned no entries for a non-empty range');
    if (stored.length < storedHi - lo || hi <= this.offset) return stored;
    let size = 0;
    for (const e of stored) size += entryBytes(e);
    const out = stored.slice();
    for (let i = 0; i < hi - this.offset; i++) {
      const e = this.unstable[i]!;
      size += entryBytes(e);
      if (size > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /** Whether committed entries wait to be handed to the host. */
  hasNextCommittedEntries(): boolean {
    return Math.max(this.applied + 1, this.firstIndex()) <= this.committed;
  }

  /** Committed entries after `applied` (or after a pending snapshot), at most maxBytes. */
  nextCommittedEntries(maxBytes: number): Entry[] {
    const lo = Math.max(this.applied + 1, this.firstIndex());
    if (lo > this.committed) return noEntries;
    return this.slice(lo, this.committed + 1, maxBytes);
  }

  /** Raises the commit index (never lowers it). */
  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), 'commit beyond the last index');
    this.committed = index;
  }

  /** Records that the host applied everything up to `index`. */
  appliedTo(index: number): void {
    if (index <= this.applied) return;
    assert(index <= this.committed, 'applied beyond the commit index');
    this.applied = index;
    this.dropRetainedTo(index);
  }

  /** Retained entries [lo, hi) (all retained: lo >= retainedOffset, hi <= offset), capped. */
  private retainedSlice(lo: number, hi: number, maxBytes: number): Entry[] {
    const start = lo - this.retainedOffset;
    const end = hi - this.retainedOffset;
    const kept = this.retained as Entry[];
    return kept.slice(start, start + countWithin(kept, start, end, maxBytes));
  }

  /** Keeps unstable[0, count) — just made durable, ending at offset - 1 — as retained. */
  private retain(count: number): void {
    const kept = this.retained;
    if (this.retainedCount === 0) this.retainedOffset = this.offset;
    assert(
      this.retainedOffset + this.retainedCount === this.offset,
      'retained entries are contiguous',
    );
    for (let i = 0; i < count; i++) {
      const e = this.unstable[i]!;
      if (e.index <= this.applied) continue;
      if (this.retainedCount === 0) this.retainedOffset = e.index;
      if (this.retainedCount === kept.length) kept.push(e);
      else kept[this.retainedCount] = e;
      this.retainedCount++;
      this.retainedBytes += entryBytes(e);
    }
    if (this.retainedBytes > this.retainedBytesMax) this.clearRetained();
  }

  /** Forgets retained entries at `index` and below (applied: never handed out again). */
  private dropRetainedTo(index: number): void {
    const kept = this.retained;
    const count = this.retainedCount;
    if (count === 0 || index < this.retainedOffset) return;
    const n = Math.min(index - this.retainedOffset + 1, count);
    if (n === count) {
      this.clearRetained();
      return;
    }
    for (let i = 0; i < n; i++) this.retainedBytes -= entryBytes(kept[i]!);
    // In place: a new array per applied batch would be garbage on the write path.
    kept.copyWithin(0, n, count);
    this.setRetainedCount(count - n);
    this.retainedOffset += n;
  }

  /** Forgets retained entries at `index` and above (the log is being replaced from there). */
  private dropRetainedFrom(index: number): void {
    const kept = this.retained;
    const count = this.retainedCount;
    if (count === 0) return;
    const n = Math.max(0, index - this.retainedOffset);
    if (n >= count) return;
    for (let i = n; i < count; i++) this.retainedBytes -= entryBytes(kept[i]!);
    this.setRetainedCount(n);
    if (n === 0) this.retainedBytes = 0;
  }

  private clearRetained(): void {
    this.setRetainedCount(0);
    this.retainedBytes = 0;
  }

  /** Shrinks the live part to `count`, freeing the slots after it for the collector. */
  private setRetainedCount(count: number): void {
    for (let i = count; i < this.retainedCount; i++) this.retained[i] = undefined;
    this.retainedCount = count;
  }

  /** Replaces the log by a snapshot received from the leader (persisted via the next Ready). */
  restore(snap: SnapshotMeta): void {
    assert(snap.index > this.committed, 'restoring a snapshot older than the commit index');
    this.committed = snap.index;
    this.clearRetained();
    this.replaceUnstable(noEntries);
    this.offset = snap.index + 1;
    this.pendingSnapshot = snap;
  }

  /**
   * The unstable entries for a Ready. The array is shared with the tail until the tail next
   * changes in place, which copies it first: the Ready's list never changes under the host.
   */
  unstableEntries(): Entry[] {
    if (this.unstable.length === 0) return noEntries;
    this.unstableShared = true;
    return this.unstable;
  }

  /** The snapshot waiting to be persisted, if any. */
  unstableSnapshot(): SnapshotMeta | undefined {
    return this.pendingSnapshot;
  }

  /** Whether the host has something of the log to persist. */
  hasUnstable(): boolean {
    return this.unstable.length > 0 || this.pendingSnapshot !== undefined;
  }

  /**
   * The host persisted `written` (a Ready's entries): drops from the tail every entry that is
   * still the very entry written. Entries replaced while the write was in flight stay unstable
   * and are written again with the next Ready.
   */
  stableWritten(written: Entry[]): void {
    for (let k = written.length - 1; k >= 0; k--) {
      const e = written[k]!;
      const pos = e.index - this.offset;
      if (pos < 0) return;
      if (pos < this.unstable.length && this.unstable[pos] === e) {
        if (this.retainedBytesMax > 0) this.retain(pos + 1);
        const rest = pos + 1 === this.unstable.length ? noEntries : this.unstable.slice(pos + 1);
        this.replaceUnstable(rest);
        this.offset = e.index + 1;
        return;
      }
    }
  }

  /** The host persisted snapshot `snap`. */
  stableSnapshot(snap: SnapshotMeta): void {
    if (this.pendingSnapshot === snap) this.pendingSnapshot = undefined;
  }

  /** The snapshot to send a follower that needs compacted entries. */
  snapshot(): SnapshotMeta | undefined {
    return this.pendingSnapshot ?? this.storage.snapshot();
  }
}
