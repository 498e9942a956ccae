/**
 * The data contract of the Raft core: entries, messages, hard state, configuration, snapshots.
 *
 * The log (engine/log) stores Entry and HardState; the transport (engine/transport) carries
 * Message; the host (engine/host.ts) moves them between the three. This file imports nothing so
 * that every layer can depend on it. Terms and indexes are non-negative safe integers; node ids are
 * u32 > 0 (0 means "none"); group ids are u32.
 */

/** A node (process) of the cluster. 0 means "no node". */
export type NodeId = number;
/** A Raft group (a shard, or the meta group). */
export type GroupId = number;

/** What an entry carries. The numbers equal the log's record types (engine/records.ts). */
export const EntryType = {
  /** An application command (may be empty: a new leader's no-op). */
  Normal: 1,
  /** An encoded ConfChange. */
  ConfChange: 2,
} as const;
/** See {@link EntryType}. */
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

/** One entry of a group's log. */
export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

/** What must survive a crash besides the entries. */
export interface HardState {
  term: number;
  /** The node voted for in `term`, 0 if none. */
  vote: NodeId;
  commit: number;
}

/**
 * A group's membership. Outside a joint configuration, `votersOutgoing` is empty. During joint
 * consensus a decision needs a majority of `voters` AND a majority of `votersOutgoing`.
 */
export interface ConfState {
  voters: NodeId[];
  votersOutgoing: NodeId[];
  learners: NodeId[];
  /** Learners that become voters when the joint configuration is left. */
  learnersNext: NodeId[];
  /** Whether the leader proposes leaving the joint configuration by itself. */
  autoLeave: boolean;
}

/** One step of a membership change. */
export interface ConfChangeSingle {
  type: 'addVoter' | 'removeVoter' | 'addLearner';
  node: NodeId;
}

/**
 * A membership change. One single change is applied directly; several changes (or
 * `transition: 'joint'`) go through joint consensus. An empty `changes` list leaves a joint
 * configuration.
 */
export interface ConfChange {
  changes: ConfChangeSingle[];
  transition: 'auto' | 'joint-auto-leave' | 'joint-explicit';
}

/** Metadata of a snapshot: the state machine includes every entry up to `index`. */
export interface SnapshotMeta {
  index: number;
  term: number;
  conf: ConfState;
}

/** Message types. Numbers are part of the wire format: never renumber, only add. */
export const MessageType = {
  /** AppendEntries. */
  App: 1,
  AppResp: 2,
  Vote: 3,
  VoteResp: 4,
  PreVote: 5,
  PreVoteResp: 6,
  /**
   * Leader liveness and commit propagation; `context` carries a ReadIndex round id. A heartbeat
   * uses only group, from, to, term, commit and context (every other field is 0 / empty), so a
   * transport may coalesce all groups' heartbeats between two nodes into one frame.
   */
  Heartbeat: 7,
  /** Uses only group, from, to, term and context (the echoed round id): coalescible likewise. */
  HeartbeatResp: 8,
  /** The leader tells a follower to install a snapshot (metadata in `snapshot`). */
  Snap: 9,
  /** Leadership transfer: the target starts an election at once. */
  TimeoutNow: 10,
  /** A follower forwards a ReadIndex request to the leader. */
  ReadIndex: 11,
  ReadIndexResp: 12,
  /** A follower forwards a proposal to the leader. */
  Prop: 13,
  /** A follower asks the leader to transfer leadership. */
  TransferLeader: 14,
} as const;
/** See {@link MessageType}. */
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/**
 * A message between two replicas of one group. Fields that a type does not use are 0 / empty.
 */
export interface Message {
  type: MessageType;
  group: GroupId;
  from: NodeId;
  to: NodeId;
  term: number;
  /** App: term of the entry at `index` (the entry before `entries`). Vote: last log term. */
  logTerm: number;
  /** App: index before `entries`. AppResp: last index matched (or rejected). Vote: last index. */
  index: number;
  entries: Entry[];
  /** The sender's commit index. */
  commit: number;
  /** Responses: whether the request was refused. */
  reject: boolean;
  /** AppResp with reject: the follower's hint for fast backtracking (its last index). */
  rejectHint: number;
  /** AppResp with reject: term of the follower's entry at `rejectHint` (0 if none). */
  logTermHint: number;
  /** Snap: what to install. */
  snapshot?: SnapshotMeta;
  /** ReadIndex / Heartbeat: opaque request context echoed in the response. */
  context?: Uint8Array;
}

/** A linearizable read that may be served once the state machine has applied `index`. */
export interface ReadState {
  index: number;
  context: Uint8Array;
}

/** The injected random source (election jitter). Implemented by engine/random.ts. */
export interface RandomSource {
  /** A uniform integer in [0, n), for 0 < n <= 2^32. */
  intBelow(n: number): number;
}
