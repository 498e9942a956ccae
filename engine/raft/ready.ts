/**
 * The typed surface of RaftNode: its configuration, what its methods return, and the Ready — the
 * batch of work the core hands to the host.
 *
 * The Ready/advance contract. The host drains a group with `if (node.hasReady()) { const rd =
 * node.ready(); ...; node.advance(rd) }`, doing, in this order:
 *
 *  1. `rd.messages` may be sent at once, before anything is persisted: they are the leader's
 *     App/Heartbeat/Snap/TimeoutNow, (pre)vote requests and ReadIndex forwarding — none of them
 *     promises anything about local state. (A leader writes its log in parallel with replicating
 *     it; it counts itself toward a quorum only for what `advance` reported durable, and a
 *     candidate counts its own vote only once the hard state recording it is durable.)
 *  2. If `rd.snapshot` is set: install the snapshot's data (staged by the host when the Snap
 *     message arrived) and persist its marker; the log now starts after `rd.snapshot.index`.
 *  3. Persist `rd.entries` — an entry at an index the log already holds replaces it and every
 *     entry after it — and `rd.hardState` if set, in one write; fsync if `rd.mustSync`.
 *  4. Only then send `rd.messagesAfterPersist`: every response (AppResp, VoteResp, PreVoteResp,
 *     HeartbeatResp), because each one promises the sender that this node's state is durable.
 *  5. Apply `rd.committedEntries` (always after step 3: they may include entries of this very
 *     Ready), and persist `rd.confState`, if set, with the applied index in the same transaction.
 *     ConfChange entries take effect inside the core when they are handed out here, so the host
 *     only records the resulting `confState`. Entries are bounded by `committedBytesPerReadyMax`.
 *  6. Serve `rd.readStates` once the applied index reaches each one's `index`; fail the reads in
 *     `rd.droppedReads` and the proposals in `rd.dropped` at once.
 *  7. Call `advance(rd)`. Until then `hasReady()` is false and `ready()` must not be called, but
 *     `step`, `tick`, `propose` and the rest may be (proposals pile up for the next Ready while
 *     the write is in flight).
 *
 * Every Ready field is owned by the host once handed out; the core never changes it afterwards.
 * Entries inside it are shared, immutable objects: never mutate an Entry or its data.
 *
 * Heartbeats: a Heartbeat carries only (group, from, to, term, commit, context) and a
 * HeartbeatResp only (group, from, to, term, context); `context` is absent unless a ReadIndex
 * round or the leader lease needs the answer echoed. A transport may batch every group's
 * heartbeats to one peer into one frame and split them again on arrival; the core treats each
 * as its own message.
 *
 * Messages with term 0 (ReadIndex, ReadIndexResp, TransferLeader) are routing requests between
 * a follower and its leader and bypass the term checks.
 */
import type {
  ConfState,
  Entry,
  GroupId,
  HardState,
  Message,
  NodeId,
  RandomSource,
  ReadState,
  SnapshotMeta,
} from './types.js';

/** The role of a node in its group. */
export type RaftRole = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

/** Volatile state the host reports (who leads, what this node is). */
export interface SoftState {
  role: RaftRole;
  /** The leader this node follows (itself when leading), 0 if unknown. */
  leader: NodeId;
  term: number;
}

/**
 * Why a proposal that was accepted did not commit, or may not have. Only 'superseded' is
 * definite: the committed log holds another entry at that index, so the proposal never takes
 * effect. The others mean the outcome is unknown (it may yet commit through another replica).
 */
export type DropReason =
  /** Definite: a committed entry with another term sits at that index. */
  | 'superseded'
  /** Unknown: a snapshot replaced the log before this node learned the entry's fate. */
  | 'snapshot'
  /** Unknown: the group was closed. */
  | 'closed'
  /** Unknown: this node left the configuration, so it no longer learns what commits. */
  | 'removed'
  /** Unknown: too many leadership terms with open proposals (`proposalRangesMax`). */
  | 'untracked';

/** Proposals [fromIndex, toIndex] of `term`, made through this node, that were dropped. */
export interface DroppedProposals {
  term: number;
  fromIndex: number;
  toIndex: number;
  reason: DropReason;
}

/** Why a read that was accepted will never get a ReadState. */
export type ReadDropReason =
  /** This node stopped leading (or the leader it forwarded to did) before confirming it. */
  | 'not-leader'
  /** The follower's leader changed while the forwarded read was outstanding. */
  | 'leader-changed'
  /** A forwarded read got no answer within an election timeout. */
  | 'timeout'
  /** The group was closed. */
  | 'closed';

/** A read that was accepted by `readIndex` and then dropped. */
export interface DroppedRead {
  context: Uint8Array;
  reason: ReadDropReason;
}

/** Why a request was refused outright (nothing changed). */
export type RefusalReason =
  /** This node does not lead; `leaderHint` names the leader if known (0 otherwise). */
  | 'not-leader'
  /** The uncommitted-bytes budget is spent: back off until entries commit. */
  | 'too-many-uncommitted'
  /** A leadership transfer is in progress: retry at the new leader. */
  | 'transferring'
  /** The group was closed. */
  | 'closed'
  /** A membership change is already pending (one at a time). */
  | 'conf-change-pending'
  /** The membership change cannot apply to the current configuration; see `detail`. */
  | 'invalid-conf-change'
  /** Too many reads are already waiting (`readsPendingMax`). */
  | 'too-many-reads'
  /** The transfer target is not a voter of the group. */
  | 'not-a-voter'
  /** This node cannot campaign (not a voter, or installing a snapshot). */
  | 'not-promotable';

/** A refused request. */
export interface Refusal {
  ok: false;
  reason: RefusalReason;
  /** The leader this node knows of, 0 if none. */
  leaderHint: NodeId;
  /** Human-readable specifics (for 'invalid-conf-change'). */
  detail?: string;
}

/** An accepted proposal: it sits at (index, term) in the leader's log. */
export interface Proposed {
  ok: true;
  index: number;
  term: number;
}

/** The outcome of `propose` / `proposeConfChange`. */
export type ProposeResult = Proposed | Refusal;

/** The outcome of requests without a payload (`readIndex`, `transferLeader`, `campaign`). */
export type RequestResult = { ok: true } | Refusal;

/** How the leader confirms it still leads before answering a read. */
export type ReadOnlyOption =
  /** One heartbeat round acknowledged by a quorum per batch of reads (ReadIndex). */
  | 'safe'
  /** Trust a lease backed by recent heartbeat acknowledgements; needs checkQuorum. */
  | 'lease';

/**
 * Configuration of one group's RaftNode. Tunables come from engine/limits.ts (the host passes
 * them); the core validates them with assertions.
 */
export interface RaftConfig {
  /** This node, > 0. */
  id: NodeId;
  group: GroupId;
  /** Ticks without a leader before campaigning (randomized in [n, 2n)). */
  electionTicks: number;
  /** Ticks between a leader's heartbeats; < electionTicks. */
  heartbeatTicks: number;
  /** The election jitter source (may be shared by every group of a node). */
  random: RandomSource;
  /** Run a pre-election so that a partitioned node cannot disrupt the group on return. */
  preVote: boolean;
  /** A leader steps down after an election timeout without hearing from a quorum. */
  checkQuorum: boolean;
  /** Inflight window per peer, in App messages. */
  inflightMsgsMax: number;
  /** Inflight window per peer, in entry bytes. */
  inflightBytesMax: number;
  /** Target size of one App message's entries, in bytes (one entry always fits). */
  msgBytesMax: number;
  /** Uncommitted proposal bytes a leader accepts before refusing proposals. */
  uncommittedBytesMax: number;
  /** Committed entry bytes handed out per Ready (one entry always fits). */
  committedBytesPerReadyMax: number;
  /**
   * Durable entries not applied yet kept in memory, in bytes, so that delivering them as
   * committed reads nothing back from storage (default raftRetainedBytesMax; 0 keeps none).
   */
  retainedBytesMax?: number;
  /** Reads a node queues (waiting for confirmation, or forwarded to the leader). */
  readsPendingMax: number;
  /** Outgoing messages queued between two Readies; beyond it messages are dropped (Raft
   * tolerates loss) rather than queued without bound. */
  messagesQueuedMax: number;
  /** Leadership terms with unresolved proposals tracked for drop reporting. */
  proposalRangesMax: number;
  /** Default way of confirming reads. */
  readOnlyOption: ReadOnlyOption;
  /**
   * Lease reads: the lease lasts `electionTicks - leaseMarginTicks` ticks from the send time of
   * the heartbeat a quorum acknowledged. Safe while tick rates differ by less than the margin
   * allows; see RaftNode.
   */
  leaseMarginTicks: number;
  /** The host's durable applied index (on restart): committed entries after it are replayed. */
  applied?: number;
  /**
   * TEST ONLY: deliberate safety bugs, so that the cluster simulator (test/sim) can prove it
   * catches them. Absent (the default) means the correct algorithm; never set it elsewhere.
   */
  unsafe?: RaftUnsafe;
}

/** The planted bugs of `RaftConfig.unsafe` (test only); every switch defaults to off. */
export interface RaftUnsafe {
  /** Commit an entry of an earlier term by counting its replicas (the bug of Raft §5.4.2). */
  commitByCountingPreviousTerm?: boolean;
  /** Answer ReadIndex at once from the commit index, without a quorum round (stale reads). */
  readWithoutQuorum?: boolean;
}

/** Work for the host; see the contract at the top of this file. */
export interface Ready {
  /** Role/leader, when changed since the previous Ready. */
  softState: SoftState | undefined;
  /** Hard state to persist, when changed since the previous Ready. */
  hardState: HardState | undefined;
  /** A snapshot to install and persist (before `entries`). */
  snapshot: SnapshotMeta | undefined;
  /** Entries to persist; the first may replace a suffix of the persisted log. */
  entries: Entry[];
  /** Whether the write must be fsynced (entries, snapshot, or a new term/vote). */
  mustSync: boolean;
  /** Messages that may be sent before the write is durable. */
  messages: Message[];
  /** Messages to send only after the write is durable (every response). */
  messagesAfterPersist: Message[];
  /** Entries to apply, in order. */
  committedEntries: Entry[];
  /** The membership after this Ready's conf changes (or snapshot), to persist when applied. */
  confState: ConfState | undefined;
  /** Confirmed reads: serve each once applied >= its index. */
  readStates: ReadState[];
  /** Accepted reads that will not be confirmed. */
  droppedReads: DroppedRead[];
  /** Accepted proposals that were (or may have been) dropped. */
  dropped: DroppedProposals[];
}

/** One member's replication state, as the leader sees it. */
export interface PeerStatus {
  id: NodeId;
  match: number;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot';
  inflightMsgs: number;
  inflightBytes: number;
  recentActive: boolean;
  learner: boolean;
  pendingSnapshot: number;
}

/** A snapshot of a node's state for status pages and tests. */
export interface RaftStatus {
  id: NodeId;
  group: GroupId;
  role: RaftRole;
  term: number;
  vote: NodeId;
  leader: NodeId;
  commit: number;
  applied: number;
  firstIndex: number;
  lastIndex: number;
  /** The transfer target while a leadership transfer runs, else 0. */
  transferee: NodeId;
  conf: ConfState;
  /** Leader only: every member's progress (empty otherwise). */
  progress: PeerStatus[];
  /** Uncommitted proposal bytes (leader only). */
  uncommittedBytes: number;
  /** Outgoing messages dropped because the queue was full. */
  messagesDropped: number;
  closed: boolean;
}
