/**
 * How the Raft core sees durable storage: a small synchronous read interface (RaftStorage), and
 * MemoryRaftStorage, the in-memory implementation used by tests, the simulator and benchmarks.
 *
 * The core never writes storage itself. It hands entries, hard state and snapshots to the host in
 * a Ready; the host makes them durable (in engine/log) and then calls `advance`, after which the
 * core reads them back through this interface. Until then they live in the core's unstable tail.
 */
import { assert } from './assert.js';
import type { ConfState, Entry, HardState, SnapshotMeta } from './types.js';

/** What a group restarts from. */
export interface InitialState {
  hardState: HardState;
  /** The membership as of the host's durable applied index (or the snapshot, if newer). */
  confState: ConfState;
}

/**
 * The durable log of one group, as the Raft core reads it. Every method is synchronous and must
 * reflect everything the host persisted before its last `advance`.
 *
 * Indexes: the log holds entries [firstIndex, lastIndex]. firstIndex - 1 is the index of the
 * latest snapshot (0 for a fresh group), whose term `term` still answers. An empty log has
 * lastIndex = firstIndex - 1.
 */
export interface RaftStorage {
  /** The persisted hard state and membership. Called once, by the RaftNode constructor. */
  initialState(): InitialState;
  /**
   * Entries [lo, hi), at most `maxBytes` by {@link entryBytes} but always at least one when
   * lo < hi. Callers keep firstIndex <= lo <= hi <= lastIndex + 1.
   */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** Term of the entry at `index`, for firstIndex - 1 <= index <= lastIndex; else undefined. */
  term(index: number): number | undefined;
  /** Index of the first entry still held (the one after the latest snapshot). */
  firstIndex(): number;
  /** Index of the last entry (firstIndex - 1 when empty). */
  lastIndex(): number;
  /**
   * The newest snapshot the host can send to a lagging follower, undefined if none yet. Its index
   * must be >= firstIndex() - 1, or the follower will still be behind the log after installing it.
   */
  snapshot(): SnapshotMeta | undefined;
}

/**
 * Per-entry overhead counted by the byte budgets (messages, inflight window, uncommitted bytes,
 * committed entries per Ready): the size of the record header that frames an entry on disk and on
 * the wire (wasm/format.ts `recordHeaderBytes`). Counting it keeps empty entries from escaping
 * every byte bound.
 */
export const entryOverheadBytes = 32;

/** The bytes an entry counts for in every byte budget of the core. */
export function entryBytes(entry: Entry): number {
  return entry.data.byteLength + entryOverheadBytes;
}

/**
 * Takes the longest prefix of `entries` whose total size is within `maxBytes`, but at least one
 * entry. Returns `entries` itself when everything fits (no copy).
 */
export function limitBytes(entries: Entry[], maxBytes: number): Entry[] {
  if (entries.length <= 1) return entries;
  let size = entryBytes(entries[0]!);
  for (let i = 1; i < entries.length; i++) {
    size += entryBytes(entries[i]!);
    if (size > maxBytes) return entries.slice(0, i);
  }
  return entries;
}

function emptyConfState(): ConfState {
  return { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
}

/**
 * RaftStorage in memory, with the write side a host would provide: append (overwriting a
 * conflicting suffix), hard state, membership, compaction and snapshot installation.
 */
export class MemoryRaftStorage implements RaftStorage {
  private hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private confState: ConfState;
  // Invariant: ents[k] has index snapIndex + 1 + k; snapIndex <= hardState.commit.
  private ents: Entry[] = [];
  private snapIndex = 0;
  private snapTerm = 0;
  private snap: SnapshotMeta | undefined;

  /** A fresh group whose initial membership is `conf` (voters must be non-empty to elect). */
  constructor(conf: ConfState = emptyConfState()) {
    this.confState = conf;
  }

  initialState(): InitialState {
    return { hardState: { ...this.hardState }, confState: copyConfState(this.confState) };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    assert(lo > this.snapIndex, 'entries: lo is compacted');
    assert(hi <= this.lastIndex() + 1, 'entries: hi is beyond the last index');
    if (lo >= hi) return [];
    return limitBytes(this.ents.slice(lo - this.snapIndex - 1, hi - this.snapIndex - 1), maxBytes);
  }

  term(index: number): number | undefined {
    if (index === this.snapIndex) return this.snapTerm;
    if (index < this.snapIndex || index > this.lastIndex()) return undefined;
    return this.ents[index - this.snapIndex - 1]!.term;
  }

  firstIndex(): number {
    return this.snapIndex + 1;
  }

  lastIndex(): number {
    return this.snapIndex + this.ents.length;
  }

  snapshot(): SnapshotMeta | undefined {
    return this.snap;
  }

  /** The persisted hard state (for tests that inspect what survived). */
  getHardState(): HardState {
    return { ...this.hardState };
  }

  /** Persists a hard state. */
  setHardState(hardState: HardState): void {
    this.hardState = { ...hardState };
  }

  /** Persists the membership as of the applied index (the host does this when it applies). */
  setConfState(conf: ConfState): void {
    this.confState = copyConfState(conf);
  }

  /**
   * Appends entries; an entry at an index already held replaces it and everything after it (the
   * leader's log overwrote a conflicting suffix). Entries at or below the snapshot are skipped.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    let start = 0;
    while (start < entries.length && entries[start]!.index <= this.snapIndex) start++;
    if (start === entries.length) return;
    const first = entries[start]!.index;
    assert(first <= this.lastIndex() + 1, 'append leaves a gap in the log');
    this.ents.length = first - this.snapIndex - 1;
    for (let i = start; i < entries.length; i++) this.ents.push(entries[i]!);
  }

  /**
   * Records a snapshot of the state machine at `index` (which must be applied by the host) with
   * membership `conf`, and drops every entry up to it.
   */
  compact(index: number, conf: ConfState): void {
    if (index <= this.snapIndex) return;
    assert(index <= this.lastIndex(), 'compact beyond the last index');
    const term = this.term(index)!;
    this.ents = this.ents.slice(index - this.snapIndex);
    this.snapIndex = index;
    this.snapTerm = term;
    this.snap = { index, term, conf: copyConfState(conf) };
  }

  /** Installs a snapshot received from the leader: the whole log is replaced by its marker. */
  applySnapshot(meta: SnapshotMeta): void {
    this.ents = [];
    this.snapIndex = meta.index;
    this.snapTerm = meta.term;
    this.snap = { index: meta.index, term: meta.term, conf: copyConfState(meta.conf) };
    this.confState = copyConfState(meta.conf);
  }
}

/** A deep copy of a membership (ConfState arrays are never shared between owners). */
export function copyConfState(conf: ConfState): ConfState {
  return {
    voters: conf.voters.slice(),
    votersOutgoing: conf.votersOutgoing.slice(),
    learners: conf.learners.slice(),
    learnersNext: conf.learnersNext.slice(),
    autoLeave: conf.autoLeave,
  };
}
