/**
 * Record types of the framed record stream (wasm/format.ts), shared by the log on disk and the
 * transport on the wire.
 *
 * HARD FORMAT: these numbers are written to disk. Never renumber one; only add new ones.
 */
export const RecordType = {
  /** A Raft log entry carrying a normal command; payload = the entry's data. */
  EntryNormal: 1,
  /** A Raft log entry carrying an encoded configuration change; payload = the encoded change. */
  EntryConfChange: 2,
  /** The hard state (term, vote, commit) of a group; index = commit, term = term. */
  HardState: 3,
  /** A snapshot was installed for the group: index/term of the snapshot, payload = membership. */
  SnapshotMarker: 4,
  /** Everything of the group up to and including `index` is no longer needed. */
  CompactionPoint: 5,
  /** The group's log was truncated: entries with index >= `index` are void. */
  Truncation: 6,
  /**
   * Ends one write of the node's log (engine/log): `index` = bytes of the write's records before
   * it, `term` = their count, group 0, no payload. Recovery keeps only writes that end with one,
   * so a write is all or nothing. Never sent on the wire.
   */
  LogWriteEnd: 7,
} as const;

/** A record type number; see {@link RecordType}. */
export type RecordType = (typeof RecordType)[keyof typeof RecordType];
