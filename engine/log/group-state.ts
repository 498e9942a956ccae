/**
 * What the file log knows about one group: the index of its entries, and its latest hard state,
 * snapshot and compaction point together with where their records live (those records are live
 * until superseded, so the cleaner rewrites them forward).
 */
import type { GroupId, HardState, SnapshotMeta } from '../raft/types.js';
import { GroupIndex } from './group-index.js';

/** Where one record lives. */
export interface RecordLoc {
  segment: number;
  offset: number;
  bytes: number;
}

/** One group of the file log. */
export class GroupState {
  readonly index = new GroupIndex();
  hardState: HardState = { term: 0, vote: 0, commit: 0 };
  hardStateAt: RecordLoc | undefined;
  snapshot: SnapshotMeta | undefined;
  snapshotAt: RecordLoc | undefined;
  /** The latest CompactionPoint record, while it is beyond the snapshot (else superseded). */
  compactionAt: RecordLoc | undefined;

  constructor(readonly id: GroupId) {}

  /** Whether the group holds anything beyond the initial state of a new group. */
  get isEmpty(): boolean {
    const hs = this.hardState;
    return (
      this.index.lastIndex === 0 &&
      this.snapshot === undefined &&
      hs.term === 0 &&
      hs.vote === 0 &&
      hs.commit === 0
    );
  }
}
