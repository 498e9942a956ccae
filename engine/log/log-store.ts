/**
 * The log of every Raft group of a node, as the host and the Raft core see it. Two
 * implementations pass one conformance suite: SegmentedLog (files, group commit) and
 * MemoryLogStore (the simulator's in-memory twin).
 *
 * Reads are synchronous, as etcd's raft Storage: the Raft core asks for entries and terms while it
 * steps. A write is visible to reads as soon as the call that made it returns; its promise says
 * when it is durable. A write whose promise rejects with BUSY or CLOSED changed nothing.
 *
 * Per group, the log holds the entries [firstIndex, lastIndex] and knows the term of
 * firstIndex - 1 (the compaction or snapshot point; 0 for index 0 of a new group).
 */
import type { Entry, GroupId, HardState, SnapshotMeta } from '../raft/types.js';

/**
 * What one group persists in one turn, applied in this order: the snapshot (discards every entry
 * and moves firstIndex to snapshot.index + 1), the entries, the hard state.
 */
export interface GroupWrite {
  group: GroupId;
  /**
   * Consecutive entries. Those at or below the compaction point are ignored; the first of the
   * rest may start anywhere in [firstIndex, lastIndex + 1]: from it on, the old tail is replaced
   * (a new leader overwrote it).
   */
  entries?: Entry[];
  hardState?: HardState;
  snapshot?: SnapshotMeta;
}

/** The shared log of a node; see the module comment for its contract. */
export interface LogStore {
  /**
   * Persists the writes of many groups together (one durable write for the file log).
   * Resolves once they are durable. Rejects with BUSY when too many bytes are waiting to be
   * written, CLOSED after close(), IO after a failed write (the log then refuses further writes
   * and must be reopened).
   */
  append(writes: readonly GroupWrite[]): Promise<void>;
  /** Drops the entries >= index of a group; durable through the same path as append. */
  truncateSuffix(group: GroupId, index: number): Promise<void>;
  /**
   * Declares the entries <= index of a group no longer needed: firstIndex becomes index + 1 and
   * the term of index stays known. Indexes at or below the current compaction point are a no-op.
   */
  compact(group: GroupId, index: number): Promise<void>;
  /**
   * Entries [lo, hi) of a group, stopping once their records (header + data) exceed `maxBytes`
   * but always returning at least one entry when lo < hi. The range must lie within
   * [firstIndex, lastIndex + 1] (asserted).
   */
  entries(group: GroupId, lo: number, hi: number, maxBytes: number): Entry[];
  /** The term of `index`: known for firstIndex - 1 through lastIndex, undefined otherwise. */
  term(group: GroupId, index: number): number | undefined;
  /** The first index still stored (1 for a group never compacted). */
  firstIndex(group: GroupId): number;
  /** The last index stored (firstIndex - 1 when the group holds no entries). */
  lastIndex(group: GroupId): number;
  /** The latest hard state of a group (all zeros for a new one). */
  hardState(group: GroupId): HardState;
  /** The latest snapshot installed in a group, if any. */
  snapshot(group: GroupId): SnapshotMeta | undefined;
  /** Every group holding more than the initial state (entries, hard state, snapshot), sorted. */
  groups(): GroupId[];
  /** Waits for pending writes to become durable, then releases the files. */
  close(): Promise<void>;
}
