/**
 * NodeHost: the loop that drives every Raft group of one node (the pump of DESIGN.md).
 *
 * Once per event-loop turn it drains the Ready of every group that has one and does, for all of
 * them together:
 *   1. send each Ready's `messages` (they promise nothing about local state);
 *   2. ONE `LogStore.append` of every group's entries, snapshot marker and hard state (one write,
 *      one fdatasync);
 *   3. apply, in ONE state transaction, the committed entries the log already holds durably,
 *      and resolve their callers;
 *   4. once the append is durable: send `messagesAfterPersist`, apply (one transaction) the
 *      committed entries that needed it, serve reads, and `advance` every group.
 * Up to `hostAppendsInFlightMax` appends are in flight: a turn's append is handed to the log while
 * the previous one is being synced (the log coalesces it into its next write), so the CPU work of
 * a turn overlaps the fsync of the one before. A group has one Ready in flight at a time, except
 * a group whose only replica is this node, which may advance as soon as its append is handed over
 * (see mayAdvanceEarly). Committed entries are applied only once the log holds them durably
 * (`held`), in log order, and appends become durable in the order they were made.
 *
 * Ticks come from one timer for the whole node. Applied indexes are made durable by the state's
 * `flush` on a checkpoint timer, and only then is the log compacted up to them (less a slack).
 * A follower that needs what was compacted gets the shard's state instead, streamed on the
 * transport's snapshot lane (engine/host-snapshots.ts).
 */
import { assert } from './assert.js';
import { FlotillaError } from './errors.js';
import {
  type SnapshotGroup,
  SnapshotReceiver,
  SnapshotSender,
  type SnapshotStats,
  type SnapshotTuning,
  stateSnapshotMeta,
} from './host-snapshots.js';
import {
  compactionSlackEntries,
  hostAppendsInFlightMax,
  hostApplyEntriesPerTurnMax,
  hostCheckpointMs,
  hostReadsWaitingMax,
  leaderTransferTimeoutMs,
  proposalsPendingMax,
  proposalTimeoutMs,
  raftCommittedBytesPerReadyMax,
  raftElectionTicks,
  raftHeartbeatTicks,
  raftInflightBytesMax,
  raftInflightMsgsMax,
  raftLeaseMarginTicks,
  raftMessagesQueuedMax,
  raftMsgBytesMax,
  raftProposalRangesMax,
  raftReadsPendingMax,
  raftUncommittedBytesMax,
  readTimeoutMs,
  snapshotAckTimeoutMs,
  snapshotReceiveIdleMs,
  snapshotSendsMax,
  snapshotStallMs,
  tickMsDefault,
} from './limits.js';
import type { GroupWrite, LogStore } from './log/log-store.js';
import { RaftNode } from './raft/raft-node.js';
import type { DroppedProposals, RaftConfig, ReadOnlyOption, Ready, Refusal } from './raft/ready.js';
import { copyConfState, type InitialState, type RaftStorage } from './raft/storage.js';
import {
  type ConfChange,
  type ConfState,
  type Entry,
  EntryType,
  type GroupId,
  type Message,
  MessageType,
  type NodeId,
  type RandomSource,
  type SnapshotMeta,
} from './raft/types.js';
import { realScheduler, type Scheduler, type TimerHandle } from './scheduler.js';
import type { ApplyItem } from './state/apply.js';
import { type CommandResult, resultError } from './state/commands.js';
import type { KvState } from './state/kv-state.js';
import { defaultLogger, type Logger, type SnapshotChunk } from './transport/transport.js';

/** Carries a node's messages and snapshot chunks to other nodes; absent on a single node. */
export interface HostTransport {
  /** Queues a turn's messages for `to`; false when they were dropped (Raft retries). */
  send(to: NodeId, messages: Message[]): boolean;
  /** Queues a chunk on the snapshot lane; false when its bounded queue is full. */
  sendSnapshotChunk(to: NodeId, chunk: SnapshotChunk): boolean;
  /**
   * Sends what is queued now; the host calls it at the end of each turn, so that the turn's
   * messages leave at once, in the same frame per peer as those queued before them.
   */
  flush?(): void;
}

/** A group's leadership as this node learns it. */
export interface LeaderChange {
  group: GroupId;
  /** The leader this node now follows (itself when leading), 0 if none. */
  leader: NodeId;
  term: number;
}

/** How a host is set up. */
export interface NodeHostOptions {
  nodeId: NodeId;
  log: LogStore;
  state: KvState;
  random: RandomSource;
  scheduler?: Scheduler;
  transport?: HostTransport;
  tickMs?: number;
  /** Milliseconds between checkpoints (default hostCheckpointMs). */
  checkpointMs?: number;
  /** Entries kept below the durable applied index when compacting (default 1024). */
  compactionSlackEntries?: number;
  /** Raft tunables other than id, group and random. */
  raft?: Partial<Omit<RaftConfig, 'id' | 'group' | 'random' | 'applied'>>;
  /** Snapshot streaming tunables. */
  snapshot?: Partial<SnapshotTuning>;
  logger?: Logger;
}

/**
 * A group to host: its id and its membership when it is created for the first time. Empty
 * `voters` (and no learners) make a joining replica: it hosts nothing until the leader's
 * snapshot brings the state and the membership (which must then name this node).
 */
export interface GroupSpec {
  group: GroupId;
  voters: NodeId[];
  learners?: NodeId[];
}

/** The Raft tunables a host uses unless told otherwise. */
export function defaultRaftTunables(): Omit<RaftConfig, 'id' | 'group' | 'random' | 'applied'> {
  return {
    electionTicks: raftElectionTicks,
    heartbeatTicks: raftHeartbeatTicks,
    preVote: true,
    checkQuorum: true,
    inflightMsgsMax: raftInflightMsgsMax,
    inflightBytesMax: raftInflightBytesMax,
    msgBytesMax: raftMsgBytesMax,
    uncommittedBytesMax: raftUncommittedBytesMax,
    committedBytesPerReadyMax: raftCommittedBytesPerReadyMax,
    readsPendingMax: raftReadsPendingMax,
    messagesQueuedMax: raftMessagesQueuedMax,
    proposalRangesMax: raftProposalRangesMax,
    readOnlyOption: 'safe',
    leaseMarginTicks: raftLeaseMarginTicks,
  };
}

interface PendingProposal {
  term: number;
  deadline: number;
  resolve: (result: CommandResult) => void;
  reject: (err: FlotillaError) => void;
}

interface PendingRead {
  resolve: () => void;
  reject: (err: FlotillaError) => void;
}

/** The reads of one group that share one ReadIndex request (one Raft read context). */
interface ReadTicket {
  deadline: number;
  waiters: PendingRead[];
}

/** The host's view of one group. */
class HostedGroup implements SnapshotGroup {
  /** Proposals accepted by this node's RaftNode, by log index. */
  readonly proposals = new Map<number, PendingProposal>();
  /**
   * Reads that arrived since the group's last ReadIndex request, by mode: the pump hands each
   * batch to Raft as ONE request, so that every read of a turn shares one confirmation round.
   */
  readonly readQueue: { safe: PendingRead[]; lease: PendingRead[] } = { safe: [], lease: [] };
  /** ReadIndex requests waiting for their ReadState, by context sequence. */
  readonly reads = new Map<number, ReadTicket>();
  /** Confirmed reads waiting for `applied` to reach their index. Ascending by index. */
  readonly readyReads: { index: number; read: ReadTicket }[] = [];
  /** Reads of this group in readQueue, reads and readyReads (at most hostReadsWaitingMax). */
  readWaiters = 0;
  /** Whether a Ready of this group is being persisted (advance not yet called). */
  inFlight = false;
  /**
   * The last index of this group's log known durable. Invariant: durableIndex <= the log's last
   * index; committed entries above it wait in `held`.
   */
  durableIndex: number;
  /** Committed entries handed out by Raft, not applied yet, in log order (see drainHeld). */
  readonly held: HeldPart[] = [];
  /** The membership the Raft core works with (it changes when a Ready carries a confState). */
  raftConf: ConfState;
  /**
   * Whether this node may serve linearizable reads from its applied state without a quorum
   * round: it is the group's only voter, leads it, and has applied an entry of its own term (so
   * every write acknowledged before, by any earlier term, is applied).
   */
  localReads = false;
  /** The caller of transferLeader waiting for the new leader (one at a time). */
  transfer: { target: NodeId; done: (err?: FlotillaError) => void } | undefined;
  /** Callers waiting for this node to lead the group / to serve local reads. */
  leaderWaiters: (() => void)[] = [];
  localReadWaiters: (() => void)[] = [];
  // Invariant: applied equals the state's applied index of this group; it never decreases.
  applied: number;
  /** The membership as of `applied`. */
  confState: ConfState;

  constructor(
    readonly id: GroupId,
    readonly raft: RaftNode,
    applied: number,
    confState: ConfState,
    durableIndex: number,
  ) {
    this.applied = applied;
    this.confState = confState;
    this.raftConf = confState;
    this.durableIndex = durableIndex;
  }
}

/** Committed entries waiting until the log holds them durably: `needs` must be durable. */
interface HeldPart {
  entries: Entry[];
  /** The membership to store with the applied index, when the part ends a conf change. */
  conf?: ConfState;
  /** The index that must be durable: the last entry's (or the snapshot's, for a bare conf). */
  needs: number;
}

/** A Ready taken in a turn; `early` when it was advanced before its write was durable. */
interface Taken {
  hosted: HostedGroup;
  rd: Ready;
  early: boolean;
}

/** Committed entries of one group to apply together, and the membership they lead to. */
interface ApplyPart {
  hosted: HostedGroup;
  entries: Entry[];
  conf?: ConfState;
}

/** RaftStorage over the shared log for one group. */
class LogGroupStorage implements RaftStorage {
  constructor(
    private readonly log: LogStore,
    private readonly group: GroupId,
    private readonly initialConf: ConfState,
    /** The snapshot the state can export now (see NodeHost.snapshotMeta). */
    private readonly stateSnapshot: () => SnapshotMeta | undefined,
  ) {}
  initialState(): InitialState {
    return { hardState: this.log.hardState(this.group), confState: this.initialConf };
  }
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return this.log.entries(this.group, lo, hi, maxBytes);
  }
  term(index: number): number | undefined {
    return this.log.term(this.group, index);
  }
  firstIndex(): number {
    return this.log.firstIndex(this.group);
  }
  lastIndex(): number {
    return this.log.lastIndex(this.group);
  }
  /**
   * What a lagging follower would be sent: the state as it stands (its applied entry and the
   * membership then), which is exactly what the host exports. The state's applied index is at
   * or beyond the compaction point, since the host compacts only durably applied entries.
   */
  snapshot(): SnapshotMeta | undefined {
    const meta = this.stateSnapshot();
    if (meta === undefined || meta.index < this.log.firstIndex(this.group) - 1) return undefined;
    return meta;
  }
}

function refusalError(group: GroupId, r: Refusal): FlotillaError {
  switch (r.reason) {
    case 'not-leader':
    case 'transferring':
      return new FlotillaError(
        'NOT_LEADER',
        `shard ${group}: this node does not lead it (${r.reason}); retry at the leader`,
        { leaderHint: r.leaderHint, group },
      );
    case 'too-many-uncommitted':
    case 'too-many-reads':
    case 'conf-change-pending':
      return new FlotillaError('BUSY', `shard ${group}: ${r.reason}; back off and retry`, {
        group,
      });
    case 'closed':
      return new FlotillaError('CLOSED', `shard ${group} is closed`, { group });
    default:
      return new FlotillaError(
        'INVALID_ARGUMENT',
        `shard ${group}: ${r.reason}${r.detail ? `: ${r.detail}` : ''}`,
        { group },
      );
  }
}

let readSequence = 0;

/** A fresh read context: a process-wide sequence number, as 8 bytes (see contextKey). */
function readContext(): Uint8Array {
  readSequence++;
  const ctx = new Uint8Array(8);
  new DataView(ctx.buffer).setFloat64(0, readSequence, true);
  return ctx;
}

/** The sequence number a read context carries; -1 for a context the host did not make. */
function contextKey(ctx: Uint8Array): number {
  if (ctx.byteLength !== 8) return -1;
  return new DataView(ctx.buffer, ctx.byteOffset, 8).getFloat64(0, true);
}

/** The loop that drives every group of one node; see the module comment. */
export class NodeHost {
  readonly nodeId: NodeId;
  private readonly log: LogStore;
  private readonly state: KvState;
  private readonly scheduler: Scheduler;
  private readonly transport: HostTransport | undefined;
  private readonly random: RandomSource;
  private readonly tunables: Omit<RaftConfig, 'id' | 'group' | 'random' | 'applied'>;
  private readonly groups = new Map<GroupId, HostedGroup>();
  /** Groups that may have a Ready. */
  private readonly dirty = new Set<HostedGroup>();
  /** Groups with proposals or reads waiting, swept for deadlines on every tick. */
  private readonly waiting = new Set<HostedGroup>();
  /** Groups with reads queued for their next ReadIndex request (see requestReads). */
  private readonly readsQueued = new Set<HostedGroup>();
  private pumpScheduled = false;
  /** Log appends handed to the log and not yet durable (at most hostAppendsInFlightMax). */
  private appendsInFlight = 0;
  /** Whether an append waits for the state to be flushed (then no other append may start). */
  private flushingForSnapshot = false;
  /** Groups advanced early whose held entries may be durable: applied by applyTurn. */
  private readonly applyQueue = new Set<HostedGroup>();
  /**
   * Messages of Readies whose writes are durable (`messagesAfterPersist`), sent at the start of
   * the next turn: they then leave in the same frame per peer as that turn's messages.
   */
  private readonly persistedMessages: { hosted: HostedGroup; messages: Message[] }[] = [];
  /** Completes when the newest append has been handled (appends complete in order). */
  private lastAppend: Promise<void> | undefined;
  /** The newest log append: durable once it completes, with every append before it. */
  private logTail: Promise<void> = Promise.resolve();
  private pendingCount = 0;
  private failure: FlotillaError | undefined;
  private closed = false;
  private readonly timers: TimerHandle[] = [];
  private checkpointing = false;
  private readonly compactionSlack: number;
  private readonly logger: Logger;
  private readonly snapshotSender: SnapshotSender;
  private readonly snapshotReceiver: SnapshotReceiver;
  private readonly leaderListeners = new Set<(change: LeaderChange) => void>();

  constructor(options: NodeHostOptions) {
    this.nodeId = options.nodeId;
    this.log = options.log;
    this.state = options.state;
    this.scheduler = options.scheduler ?? realScheduler;
    this.transport = options.transport;
    this.random = options.random;
    this.logger = options.logger ?? defaultLogger;
    this.tunables = { ...defaultRaftTunables(), ...options.raft };
    this.compactionSlack = options.compactionSlackEntries ?? compactionSlackEntries;
    assert(Number.isSafeInteger(this.compactionSlack), 'the compaction slack is an integer');
    assert(this.compactionSlack >= 0, 'the compaction slack is not negative');
    const tuning: SnapshotTuning = {
      sendsMax: snapshotSendsMax,
      stallMs: snapshotStallMs,
      ackTimeoutMs: snapshotAckTimeoutMs,
      receiveIdleMs: snapshotReceiveIdleMs,
      ...options.snapshot,
    };
    const snapshotHost = {
      nodeId: this.nodeId,
      state: this.state,
      scheduler: this.scheduler,
      logger: this.logger,
      sendChunk: (to: NodeId, chunk: SnapshotChunk) =>
        this.transport?.sendSnapshotChunk(to, chunk) === true,
      group: (id: GroupId) => this.groups.get(id),
      markDirty: (group: SnapshotGroup) => this.markDirty(group as HostedGroup),
      fail: (err: unknown) => this.fail(err),
    };
    this.snapshotSender = new SnapshotSender(snapshotHost, tuning);
    this.snapshotReceiver = new SnapshotReceiver(snapshotHost, tuning);
    const tickMs = options.tickMs ?? tickMsDefault;
    const checkpointMs = options.checkpointMs ?? hostCheckpointMs;
    this.timers.push(this.scheduler.every(tickMs, () => this.tick()));
    this.timers.push(this.scheduler.every(checkpointMs, () => void this.checkpoint()));
  }

  /**
   * Starts hosting a group. A group new to this node starts with the membership of `spec`; a
   * group found in the log and state resumes from them (committed entries after the state's
   * applied index are applied again).
   */
  addGroup(spec: GroupSpec): void {
    this.checkOpen();
    assert(!this.groups.has(spec.group), 'a group is added once');
    const stored = this.state.confState(spec.group);
    const conf: ConfState = stored ?? {
      voters: [...spec.voters],
      votersOutgoing: [],
      learners: [...(spec.learners ?? [])],
      learnersNext: [],
      autoLeave: false,
    };
    const applied = this.state.appliedIndex(spec.group);
    const storage = new LogGroupStorage(this.log, spec.group, conf, () =>
      this.snapshotMeta(spec.group),
    );
    // The state is ahead of the log only when a snapshot was installed and the node stopped
    // before the log recorded its marker: the log then restarts from that snapshot.
    const logLast = this.log.lastIndex(spec.group);
    const raft = new RaftNode(
      {
        ...this.tunables,
        id: this.nodeId,
        group: spec.group,
        random: this.random,
        applied: Math.min(applied, logLast),
      },
      storage,
    );
    if (applied > logLast) {
      const { term } = this.state.applied(spec.group);
      raft.restoreSnapshot({ index: applied, term, conf: copyConfState(conf) });
    }
    const hosted = new HostedGroup(spec.group, raft, applied, conf, logLast);
    this.groups.set(spec.group, hosted);
    if (conf.voters.length === 1 && conf.voters[0] === this.nodeId && conf.learners.length === 0) {
      // A group this node alone votes in needs no election timeout to elect itself.
      raft.campaign();
    }
    this.markDirty(hosted);
  }

  /** The groups hosted here. */
  groupIds(): GroupId[] {
    return [...this.groups.keys()];
  }

  /** Throws the error that stopped the node, if one did. */
  checkHealthy(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** Whether `group` is hosted here. */
  hosts(group: GroupId): boolean {
    return this.groups.has(group);
  }

  /** Throws STALE_EPOCH unless `group` is hosted here. */
  checkHosted(group: GroupId): void {
    this.groupOf(group);
  }

  /** Whether this node currently leads `group`. */
  isLeader(group: GroupId): boolean {
    return this.groupOf(group).raft.isLeader();
  }

  /** The leader this node knows for `group`, 0 if none. */
  leaderOf(group: GroupId): NodeId {
    return this.groupOf(group).raft.leader();
  }

  /** The Raft status of a group (for status pages and tests). */
  status(group: GroupId) {
    return this.groupOf(group).raft.status();
  }

  /** Starts an election for `group` now (a preferred leader at start, or a transfer target). */
  campaign(group: GroupId): void {
    this.checkOpen();
    const hosted = this.groupOf(group);
    hosted.raft.campaign();
    this.markDirty(hosted);
  }

  /**
   * Calls `listener` whenever this node learns of a new leader (or of none) for a group, after
   * the change is durable here. Returns the unsubscribe function. A listener must not throw.
   */
  onLeaderChange(listener: (change: LeaderChange) => void): () => void {
    this.leaderListeners.add(listener);
    return () => {
      this.leaderListeners.delete(listener);
    };
  }

  /** The transport cannot reach `peer` now: stop pipelining to it in every group. */
  reportUnreachable(peer: NodeId): void {
    for (const hosted of this.groups.values()) hosted.raft.reportUnreachable(peer);
  }

  /**
   * A connection to `peer` was lost: besides being unreachable, every snapshot stream to it may
   * have lost chunks; they are abandoned, and Raft asks for them again.
   */
  reportConnectionLost(peer: NodeId): void {
    if (this.closed) return;
    this.reportUnreachable(peer);
    this.snapshotSender.abortPeer(peer);
  }

  /** Feeds one snapshot chunk from another node to its group (see engine/host-snapshots.ts). */
  receiveSnapshotChunk(from: NodeId, chunk: SnapshotChunk): void {
    if (this.closed || this.failure !== undefined) return;
    try {
      this.snapshotReceiver.receive(from, chunk);
    } catch (err) {
      this.fail(err);
    }
  }

  /** Counters of snapshot streaming. */
  snapshotStats(): SnapshotStats {
    return { ...this.snapshotSender.stats(), ...this.snapshotReceiver.stats() };
  }

  /** The snapshot of `group` the state would export now; undefined before anything is applied. */
  private snapshotMeta(group: GroupId): SnapshotMeta | undefined {
    const hosted = this.groups.get(group);
    if (hosted === undefined || hosted.applied === 0) return undefined;
    return stateSnapshotMeta(this.state, hosted);
  }

  /**
   * Proposes an encoded command to `group`; resolves with its result once it is committed and
   * applied here, or rejects with a typed error (NOT_LEADER, BUSY, TIMEOUT with outcome unknown,
   * DROPPED, CLOSED, or the command's own error).
   */
  propose(group: GroupId, data: Uint8Array): Promise<CommandResult> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(closedError());
    const hosted = this.groupOf(group);
    if (this.pendingCount >= proposalsPendingMax) return Promise.reject(this.pendingError());
    const accepted = hosted.raft.propose(data);
    if (!accepted.ok) return Promise.reject(refusalError(group, accepted));
    // One executor for every proposal (it runs synchronously and only hands over the settle
    // functions): a closure per proposal was garbage on the hottest path.
    const promise = new Promise<CommandResult>(this.captureSettlers);
    const resolve = this.capturedResolve as (result: CommandResult) => void;
    const reject = this.capturedReject as (err: FlotillaError) => void;
    this.capturedResolve = undefined;
    this.capturedReject = undefined;
    this.track(hosted, accepted, resolve, reject);
    return promise;
  }

  private capturedResolve: ((result: CommandResult) => void) | undefined;
  private capturedReject: ((err: FlotillaError) => void) | undefined;
  private readonly captureSettlers = (
    resolve: (result: CommandResult) => void,
    reject: (err: FlotillaError) => void,
  ): void => {
    this.capturedResolve = resolve;
    this.capturedReject = reject;
  };

  private pendingError(): FlotillaError {
    return new FlotillaError(
      'BUSY',
      `${this.pendingCount} proposals are pending; back off and retry`,
    );
  }

  /**
   * Remembers the caller of a proposal Raft accepted at (index, term), until it is applied,
   * dropped or overdue. A proposal of an older term still held at that index was replaced in
   * the new leader's log: its caller hears DROPPED.
   */
  private track(
    hosted: HostedGroup,
    accepted: { index: number; term: number },
    resolve: (result: CommandResult) => void,
    reject: (err: FlotillaError) => void,
  ): void {
    const previous = hosted.proposals.get(accepted.index);
    if (previous !== undefined) {
      this.pendingCount--;
      previous.reject(droppedError(hosted.id, 'another leader overwrote it'));
    }
    hosted.proposals.set(accepted.index, {
      term: accepted.term,
      // Whole milliseconds: a fractional one was a boxed number per proposal.
      deadline: Math.ceil(this.scheduler.now() + proposalTimeoutMs),
      resolve,
      reject,
    });
    this.pendingCount++;
    this.waiting.add(hosted);
    this.markDirty(hosted);
  }

  /**
   * Proposes a membership change of `group` (engine/raft/conf-change.ts); resolves with the
   * membership once the change is committed and applied here (a joint change resolves when the
   * joint configuration is entered; the leader leaves it on its own). Rejects with NOT_LEADER,
   * BUSY (another change is pending), INVALID_ARGUMENT (the change does not apply to the current
   * membership), TIMEOUT with outcome unknown, DROPPED or CLOSED.
   */
  changeMembership(group: GroupId, change: ConfChange): Promise<ConfState> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(closedError());
    const hosted = this.groupOf(group);
    const bad = confChangeProblem(change);
    if (bad !== undefined) {
      return Promise.reject(
        new FlotillaError('INVALID_ARGUMENT', `shard ${group}: ${bad}`, { group }),
      );
    }
    if (this.pendingCount >= proposalsPendingMax) return Promise.reject(this.pendingError());
    const accepted = hosted.raft.proposeConfChange(change);
    if (!accepted.ok) return Promise.reject(refusalError(group, accepted));
    return new Promise<ConfState>((resolve, reject) => {
      const applied = () => {
        // apply() stored the new membership just before. The core counts the change applied
        // only once this turn's Ready is advanced (after the turn's write): resolve after
        // that, so that the caller's next change is not refused as still pending.
        const conf = copyConfState(hosted.confState);
        queueMicrotask(() => {
          const settle = () => resolve(conf);
          if (this.lastAppend === undefined) settle();
          else this.lastAppend.then(settle, settle);
        });
      };
      this.track(hosted, accepted, applied, reject);
    });
  }

  /**
   * Hands the leadership of `group` to its voter `target`. This node must lead the group, or be
   * `target` (a follower may ask for itself). Resolves once this node learns that `target`
   * leads; rejects with NOT_LEADER, INVALID_ARGUMENT (`target` is not a voter), BUSY (a
   * transfer is already awaited here) or TIMEOUT (not done within leaderTransferTimeoutMs; the
   * core abandons a transfer after one election timeout, e.g. when the target lags too far).
   */
  transferLeader(group: GroupId, target: NodeId): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(closedError());
    const hosted = this.groupOf(group);
    if (hosted.raft.isLeader() && target === this.nodeId) return Promise.resolve();
    if (hosted.transfer !== undefined) {
      return Promise.reject(
        new FlotillaError('BUSY', `shard ${group}: a leadership transfer is in progress`, {
          group,
        }),
      );
    }
    const accepted = hosted.raft.transferLeader(target);
    if (!accepted.ok) return Promise.reject(refusalError(group, accepted));
    this.markDirty(hosted);
    return new Promise<void>((resolve, reject) => {
      const finish = (err?: FlotillaError) => {
        if (hosted.transfer !== current) return;
        hosted.transfer = undefined;
        timer.cancel();
        unsubscribe();
        if (err === undefined) resolve();
        else reject(err);
      };
      const current = { target, done: finish };
      hosted.transfer = current;
      const unsubscribe = this.onLeaderChange((change) => {
        if (change.group === group && change.leader === target) finish();
      });
      const timer = this.scheduler.after(leaderTransferTimeoutMs, () =>
        finish(
          new FlotillaError('TIMEOUT', `shard ${group}: n${target} did not take over in time`, {
            outcome: 'unknown',
            group,
          }),
        ),
      );
    });
  }

  /**
   * Stops hosting `group`, once a membership change removed this node from it: its requests
   * fail with STALE_EPOCH (proposals with outcome unknown), and it is no longer ticked or
   * pumped. The group's state and log stay: hosting it again (`addGroup` with the spec it was
   * first added with) resumes from them as a lagging replica, which the leader catches up from
   * its log or a snapshot.
   */
  async removeGroup(group: GroupId): Promise<void> {
    this.checkOpen();
    const hosted = this.groupOf(group);
    // A Ready being persisted finishes first, so the pump never meets a removed group.
    while (hosted.inFlight && this.failure === undefined && this.lastAppend !== undefined) {
      await this.lastAppend.catch(() => undefined);
    }
    if (this.groups.get(group) !== hosted) return;
    this.groups.delete(group);
    this.dirty.delete(hosted);
    this.waiting.delete(hosted);
    this.applyQueue.delete(hosted);
    const moved = new FlotillaError(
      'STALE_EPOCH',
      `shard ${group} moved off node ${this.nodeId}; refresh the shard map and retry`,
      { group, outcome: 'unknown' },
    );
    hosted.transfer?.done(moved);
    this.failGroup(hosted, moved);
    hosted.raft.close();
  }

  /** Whether a linearizable read of `group` may be served from the applied state at once. */
  canReadLocally(group: GroupId): boolean {
    const hosted = this.groupOf(group);
    return hosted.localReads && hosted.raft.isLeader() && this.soleVoter(hosted);
  }

  /** Resolves once this node leads `group`. */
  whenLeader(group: GroupId): Promise<void> {
    const hosted = this.groupOf(group);
    if (hosted.raft.isLeader()) return Promise.resolve();
    return new Promise((resolve) => hosted.leaderWaiters.push(resolve));
  }

  /** Resolves once `group` can serve linearizable reads locally (see canReadLocally). */
  whenLocalReadsReady(group: GroupId): Promise<void> {
    const hosted = this.groupOf(group);
    if (this.canReadLocally(group)) return Promise.resolve();
    return new Promise((resolve) => hosted.localReadWaiters.push(resolve));
  }

  /**
   * Resolves once this node's state of `group` reflects every write committed before the call
   * (ReadIndex: the leader confirms its leadership with a quorum — or, with mode 'lease', trusts
   * its lease — then waits until it has applied that far).
   */
  readBarrier(group: GroupId, mode: ReadOnlyOption = 'safe'): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(closedError());
    const hosted = this.groupOf(group);
    if (hosted.readWaiters >= hostReadsWaitingMax) {
      const busy: Refusal = {
        ok: false,
        reason: 'too-many-reads',
        leaderHint: hosted.raft.leader(),
      };
      return Promise.reject(refusalError(group, busy));
    }
    return new Promise<void>((resolve, reject) => {
      const queue = mode === 'lease' ? hosted.readQueue.lease : hosted.readQueue.safe;
      queue.push({ resolve, reject });
      hosted.readWaiters++;
      this.readsQueued.add(hosted);
      this.schedulePump();
    });
  }

  /**
   * Hands each group's queued reads to Raft, one ReadIndex request per group and mode: the
   * index Raft confirms for it is at least the commit index when the request is made, after
   * every read in the batch arrived, so it serves all of them (Raft thesis §6.4).
   */
  private requestReads(): void {
    const deadline = this.scheduler.now() + readTimeoutMs;
    for (const hosted of this.readsQueued) {
      const { safe, lease } = hosted.readQueue;
      if (safe.length > 0) this.requestRead(hosted, 'safe', safe.splice(0), deadline);
      if (lease.length > 0) this.requestRead(hosted, 'lease', lease.splice(0), deadline);
    }
    this.readsQueued.clear();
  }

  private requestRead(
    hosted: HostedGroup,
    mode: ReadOnlyOption,
    waiters: PendingRead[],
    deadline: number,
  ): void {
    const ctx = readContext();
    const accepted = hosted.raft.readIndex(ctx, mode);
    if (!accepted.ok) {
      hosted.readWaiters -= waiters.length;
      const err = refusalError(hosted.id, accepted);
      for (const w of waiters) w.reject(err);
      return;
    }
    hosted.reads.set(contextKey(ctx), { deadline, waiters });
    this.waiting.add(hosted);
    // Called from the pump, right before its appendTurn takes the group's Ready.
    this.dirty.add(hosted);
  }

  /**
   * Feeds messages from another node into their groups. Messages for a group not hosted here
   * are dropped: a node takes a new replica of a group only when told to (`addGroup` with an
   * empty membership, then the leader's snapshot), never because a peer wrote to it.
   */
  receive(messages: readonly Message[]): void {
    if (this.closed) return;
    for (const m of messages) {
      const hosted = this.groups.get(m.group);
      if (hosted === undefined) continue;
      hosted.raft.step(m);
      this.markDirty(hosted);
    }
  }

  /** Stops the loop: rejects everything pending with CLOSED and waits for the last write. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) t.cancel();
    this.snapshotSender.close();
    this.snapshotReceiver.close();
    await this.lastAppend?.catch(() => undefined);
    for (const hosted of this.groups.values()) {
      this.failGroup(hosted, closedError());
      hosted.raft.close();
    }
  }

  private groupOf(group: GroupId): HostedGroup {
    const hosted = this.groups.get(group);
    if (hosted === undefined) {
      throw new FlotillaError(
        'STALE_EPOCH',
        `shard ${group} is not hosted on node ${this.nodeId}`,
        {
          group,
        },
      );
    }
    return hosted;
  }

  private checkOpen(): void {
    if (this.closed) throw closedError();
    if (this.failure !== undefined) throw this.failure;
  }

  private markDirty(hosted: HostedGroup): void {
    // A group removed meanwhile (a snapshot stream may still name it) has nothing to do.
    if (this.groups.get(hosted.id) !== hosted) return;
    this.dirty.add(hosted);
    if (this.mayAppend()) this.schedulePump();
  }

  private mayAppend(): boolean {
    return this.appendsInFlight < hostAppendsInFlightMax && !this.flushingForSnapshot;
  }

  private tick(): void {
    if (this.closed || this.failure !== undefined) return;
    for (const hosted of this.groups.values()) {
      hosted.raft.tick();
      if (hosted.raft.hasReady()) this.markDirty(hosted);
    }
    this.snapshotSender.tick();
    this.snapshotReceiver.tick();
    this.sweepDeadlines();
  }

  private sweepDeadlines(): void {
    const now = this.scheduler.now();
    for (const hosted of this.waiting) {
      for (const [index, p] of hosted.proposals) {
        if (p.deadline > now) continue;
        hosted.proposals.delete(index);
        this.pendingCount--;
        p.reject(timeoutError(hosted.id, 'the proposal did not commit in time'));
      }
      for (const [key, r] of hosted.reads) {
        if (r.deadline > now) continue;
        hosted.reads.delete(key);
        this.rejectReads(hosted, r, readTimeoutError(hosted.id));
      }
      if (
        hosted.proposals.size === 0 &&
        hosted.reads.size === 0 &&
        hosted.readyReads.length === 0
      ) {
        this.waiting.delete(hosted);
      }
    }
  }

  /** One turn of the pump; see the module comment. */
  private pump(): void {
    this.pumpScheduled = false;
    if (this.closed || this.failure !== undefined) return;
    for (const { hosted, messages } of this.persistedMessages) this.send(hosted, messages);
    this.persistedMessages.length = 0;
    if (this.readsQueued.size > 0) this.requestReads();
    if (this.mayAppend()) this.appendTurn();
    this.applyTurn();
    this.transport?.flush?.();
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.closed) return;
    this.pumpScheduled = true;
    this.scheduler.nextTurn(() => this.pump());
  }

  /** Takes every dirty group's Ready and hands their records to the log in one append. */
  private appendTurn(): void {
    const batch: Taken[] = [];
    for (const hosted of this.dirty) {
      if (hosted.inFlight || !hosted.raft.hasReady()) continue;
      const rd = hosted.raft.ready();
      hosted.inFlight = true;
      batch.push({ hosted, rd, early: false });
    }
    this.dirty.clear();
    if (batch.length === 0) return;
    const writes: GroupWrite[] = [];
    for (const taken of batch) this.take(taken, writes);
    const snapshot = writes.some((w) => w.snapshot !== undefined);
    let durable = this.persist(writes, snapshot);
    // A write waiting for the state flush must stay the newest append: nothing joins it.
    if (snapshot) for (const taken of batch) taken.early = false;
    else {
      const more = this.advanceEarly(batch);
      if (more.length > 0) {
        const moreWrites: GroupWrite[] = [];
        for (const taken of more) this.take(taken, moreWrites);
        if (moreWrites.length > 0) {
          const first = durable;
          durable = Promise.all([first, this.persist(moreWrites, false)]).then(() => undefined);
        }
        for (const taken of more) if (taken.early) this.finishReady(taken.hosted, taken.rd, false);
        batch.push(...more);
        writes.push(...moreWrites);
      }
    }
    // A turn with nothing to write holds no slot: it only waits for the appends before it.
    const counted = writes.length > 0;
    if (counted) this.appendsInFlight++;
    if (snapshot) this.flushingForSnapshot = true;
    this.lastAppend = durable.then(
      () => this.afterAppend(batch, writes, snapshot, counted),
      (err: unknown) => this.fail(err),
    );
    const parts: ApplyPart[] = [];
    for (const { hosted, early } of batch) {
      if (early) this.applyQueue.add(hosted);
      else drainHeld(hosted, parts, Number.POSITIVE_INFINITY);
    }
    this.apply(parts);
  }

  /**
   * Applies the durable committed entries of groups advanced early, at most
   * `hostApplyEntriesPerTurnMax` per turn: once the callers of the first ones have proposed
   * again, the next turn appends their proposals before applying more, so applying overlaps
   * the fsync of the append before (the load splits into cohorts that take turns).
   */
  private applyTurn(): void {
    if (this.applyQueue.size === 0) return;
    const parts: ApplyPart[] = [];
    let budget = hostApplyEntriesPerTurnMax;
    for (const hosted of this.applyQueue) {
      if (budget <= 0) break;
      budget -= drainHeld(hosted, parts, budget);
      if (!hasDurableHeld(hosted)) this.applyQueue.delete(hosted);
    }
    this.apply(parts);
    if (this.applyQueue.size > 0) this.schedulePump();
  }

  /**
   * Advances the Readies that may be advanced before their write is durable (mayAdvanceEarly),
   * and takes the Ready each advance makes: it delivers the entries the advance committed, so
   * that their commit joins this turn's append and they are applied as soon as it is durable.
   */
  private advanceEarly(batch: readonly Taken[]): Taken[] {
    const more: Taken[] = [];
    for (const { hosted, rd, early } of batch) {
      if (!early) continue;
      this.finishReady(hosted, rd, false);
      if (!hosted.raft.hasReady()) continue;
      hosted.inFlight = true;
      more.push({ hosted, rd: hosted.raft.ready(), early: false });
    }
    return more;
  }

  /**
   * Does what a Ready asks before its write is durable: sends its messages, queues its records
   * for the turn's append, fails what it dropped, and holds its committed entries until the log
   * holds them durably. Decides whether it may be advanced before its write is durable.
   */
  private take(taken: Taken, writes: GroupWrite[]): void {
    const { hosted, rd } = taken;
    if (rd.softState !== undefined) {
      hosted.localReads = false;
      if (rd.softState.leader !== this.nodeId) this.failOnStepDown(hosted);
    }
    if (rd.confState !== undefined) hosted.raftConf = rd.confState;
    this.send(hosted, rd.messages);
    if (rd.entries.length > 0 || rd.hardState !== undefined || rd.snapshot !== undefined) {
      const w: GroupWrite = { group: hosted.id };
      if (rd.entries.length > 0) {
        w.entries = rd.entries;
        // Entries from here on are being (re)written: they are durable once this write is.
        hosted.durableIndex = Math.min(hosted.durableIndex, rd.entries[0]!.index - 1);
      }
      if (rd.hardState !== undefined) w.hardState = rd.hardState;
      if (rd.snapshot !== undefined) {
        w.snapshot = rd.snapshot;
        hosted.durableIndex = Math.min(hosted.durableIndex, rd.snapshot.index - 1);
      }
      writes.push(w);
    }
    // Checked here: a for-of over the (usually empty) lists allocated iterators every Ready.
    if (rd.dropped.length > 0) this.failDropped(hosted, rd.dropped);
    if (rd.droppedReads.length > 0) this.failDroppedReads(hosted, rd.droppedReads);
    if (rd.snapshot !== undefined && rd.confState !== undefined) {
      // The membership a snapshot brought is stored once its marker is durable.
      hosted.held.push({ entries: [], conf: rd.confState, needs: rd.snapshot.index });
    }
    const committed = rd.committedEntries;
    if (committed.length > 0) {
      const part: HeldPart = { entries: committed, needs: committed[committed.length - 1]!.index };
      // The membership is stored with the applied index that includes its last change.
      if (rd.confState !== undefined && hasConfChange(committed)) part.conf = rd.confState;
      hosted.held.push(part);
    }
    taken.early = this.mayAdvanceEarly(hosted, rd);
  }

  /**
   * This node stopped leading `hosted`: its proposals above the commit index may yet commit
   * under the next leader or be overwritten, and a deposed leader cut off from the majority may
   * not learn which for a long time. Their callers hear now that the outcome is unknown, so they
   * can retry at the new leader (a client session makes the retry exactly-once) rather than wait
   * for the proposal deadline. Raft still reports the fate later; nobody is waiting for it then.
   */
  private failOnStepDown(hosted: HostedGroup): void {
    const commit = hosted.raft.hardState().commit;
    for (const [index, p] of hosted.proposals) {
      if (index <= commit) continue;
      hosted.proposals.delete(index);
      this.pendingCount--;
      p.reject(timeoutError(hosted.id, 'this node stopped leading before it committed'));
    }
  }

  /**
   * Whether `rd` may be advanced as soon as its write is handed to the log, so that the group's
   * next Ready (and append) need not wait for this fsync. Safe only for a group whose every
   * replica is this node — one voter, no learner, not joint — led by it in a steady term:
   *  - the commit index Raft then moves early reaches nobody but this host, which applies (and
   *    acknowledges) an entry only once the write holding it is durable (`held`), and the log
   *    makes writes durable in order, so no hard state records a commit its entries lack;
   *  - a Ready that changes term, vote, role or snapshot takes the ordinary path;
   *  - a Ready appending a membership change takes the ordinary path, so the group has no write
   *    in flight when the change commits and the first message to a new replica leaves.
   */
  private mayAdvanceEarly(hosted: HostedGroup, rd: Ready): boolean {
    if (rd.softState !== undefined || rd.snapshot !== undefined || !hosted.raft.isLeader()) {
      return false;
    }
    const c = hosted.raftConf;
    const alone =
      c.voters.length === 1 &&
      c.voters[0] === this.nodeId &&
      c.votersOutgoing.length === 0 &&
      c.learners.length === 0 &&
      c.learnersNext.length === 0;
    return alone && rd.messages.length === 0 && !hasConfChange(rd.entries);
  }

  /**
   * Writes a turn's log records. A snapshot marker compacts its group's log up to the snapshot,
   * so it waits until the state that the snapshot installed is durable: the log never gives up
   * entries the durable state has not applied. No other append starts meanwhile, so the log
   * receives appends in the order the pump made them.
   */
  private persist(writes: GroupWrite[], snapshot: boolean): Promise<void> {
    // A turn with nothing to write completes after the appends before it, like any other.
    if (writes.length === 0) return this.logTail;
    this.logTail = snapshot
      ? this.state.flush().then(() => this.log.append(writes))
      : this.log.append(writes);
    return this.logTail;
  }

  private afterAppend(
    batch: Taken[],
    writes: GroupWrite[],
    snapshot: boolean,
    counted: boolean,
  ): void {
    if (counted) this.appendsInFlight--;
    if (snapshot) this.flushingForSnapshot = false;
    if (this.failure !== undefined) return;
    for (const w of writes) {
      // A group removed meanwhile (removeGroup) no longer needs its durable index.
      const hosted = this.groups.get(w.group);
      if (hosted === undefined) continue;
      const last = w.entries?.[w.entries.length - 1];
      if (last !== undefined) hosted.durableIndex = last.index;
      else if (w.snapshot !== undefined) hosted.durableIndex = w.snapshot.index;
    }
    for (const { hosted, rd } of batch) {
      const messages = rd.messagesAfterPersist;
      if (messages.length > 0) this.persistedMessages.push({ hosted, messages });
    }
    // A Ready advanced only now has its committed entries applied first (ready.ts, step 5).
    const parts: ApplyPart[] = [];
    for (const { hosted, early } of batch) {
      if (early) this.applyQueue.add(hosted);
      else drainHeld(hosted, parts, Number.POSITIVE_INFINITY);
    }
    this.apply(parts);
    for (const { hosted, rd, early } of batch) {
      if (!early) this.finishReady(hosted, rd, true);
      else if (!this.closed) this.dirty.add(hosted);
    }
    const more = (this.dirty.size > 0 && this.mayAppend()) || this.applyQueue.size > 0;
    if (more || this.persistedMessages.length > 0) this.schedulePump();
  }

  /** Serves a Ready's reads and advances it; `redo` marks the group for another turn. */
  private finishReady(hosted: HostedGroup, rd: Ready, redo: boolean): void {
    for (let i = 0; i < rd.readStates.length; i++) {
      const rs = rd.readStates[i]!;
      const key = contextKey(rs.context);
      const read = hosted.reads.get(key);
      if (read === undefined) continue;
      hosted.reads.delete(key);
      hosted.readyReads.push({ index: rs.index, read });
    }
    this.serveReads(hosted);
    hosted.raft.advance(rd);
    hosted.inFlight = false;
    if (hosted.leaderWaiters.length > 0 && hosted.raft.isLeader()) {
      for (const wake of hosted.leaderWaiters.splice(0)) wake();
    }
    if (rd.softState !== undefined) this.announceLeader(hosted.id, rd.softState);
    if (redo && !this.closed) this.dirty.add(hosted);
  }

  private failDroppedReads(hosted: HostedGroup, dropped: Ready['droppedReads']): void {
    for (const d of dropped) {
      const key = contextKey(d.context);
      const read = hosted.reads.get(key);
      if (read === undefined) continue;
      hosted.reads.delete(key);
      this.rejectReads(
        hosted,
        read,
        new FlotillaError('NOT_LEADER', `shard ${hosted.id}: read dropped (${d.reason}); retry`, {
          leaderHint: hosted.raft.leader(),
          group: hosted.id,
        }),
      );
    }
  }

  /** Applies committed entries of many groups in one state transaction; resolves proposals. */
  private apply(parts: ApplyPart[]): void {
    if (parts.length === 0) return;
    const items: ApplyItem[] = [];
    const confs = new Map<number, ConfState>();
    for (let p = 0; p < parts.length; p++) {
      const { hosted, entries, conf } = parts[p]!;
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!;
        items.push({ shard: hosted.id, index: e.index, term: e.term, data: e.data, type: e.type });
      }
      if (conf !== undefined) {
        confs.set(hosted.id, conf);
        hosted.confState = conf;
      }
    }
    let results: CommandResult[];
    try {
      results = this.state.applyBatch(items, confs);
    } catch (err) {
      this.fail(err);
      return;
    }
    let at = 0;
    for (let p = 0; p < parts.length; p++) {
      const { hosted, entries } = parts[p]!;
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!;
        const result = results[at++]!;
        // A snapshot installed meanwhile may already have moved the state past this entry.
        hosted.applied = Math.max(hosted.applied, e.index);
        if (!hosted.localReads && this.soleVoter(hosted) && hosted.raft.isLeader()) {
          hosted.localReads = e.term === hosted.raft.hardState().term;
        }
        const pending = hosted.proposals.get(e.index);
        if (pending === undefined) continue;
        hosted.proposals.delete(e.index);
        this.pendingCount--;
        if (pending.term !== e.term) {
          pending.reject(droppedError(hosted.id, 'another leader overwrote it'));
          continue;
        }
        const error = resultError(result);
        if (error !== undefined) pending.reject(error);
        else pending.resolve(result);
      }
      this.serveReads(hosted);
      if (hosted.localReads && hosted.localReadWaiters.length > 0) {
        for (const wake of hosted.localReadWaiters.splice(0)) wake();
      }
    }
  }

  private soleVoter(hosted: HostedGroup): boolean {
    const c = hosted.confState;
    return c.voters.length === 1 && c.voters[0] === this.nodeId && c.votersOutgoing.length === 0;
  }

  /** Resolves, in one pass, every confirmed read whose index the group has applied. */
  private serveReads(hosted: HostedGroup): void {
    const waiting = hosted.readyReads;
    let served = 0;
    while (served < waiting.length && waiting[served]!.index <= hosted.applied) {
      const { waiters } = waiting[served]!.read;
      hosted.readWaiters -= waiters.length;
      for (const w of waiters) w.resolve();
      served++;
    }
    if (served > 0) waiting.splice(0, served);
  }

  private rejectReads(hosted: HostedGroup, ticket: ReadTicket, err: FlotillaError): void {
    hosted.readWaiters -= ticket.waiters.length;
    for (const w of ticket.waiters) w.reject(err);
  }

  private failDropped(hosted: HostedGroup, dropped: readonly DroppedProposals[]): void {
    for (const d of dropped) {
      for (let i = d.fromIndex; i <= d.toIndex; i++) {
        const pending = hosted.proposals.get(i);
        if (pending === undefined || pending.term !== d.term) continue;
        hosted.proposals.delete(i);
        this.pendingCount--;
        pending.reject(
          d.reason === 'superseded'
            ? droppedError(hosted.id, 'another leader overwrote it')
            : timeoutError(hosted.id, `its outcome is unknown (${d.reason})`),
        );
      }
    }
  }

  private announceLeader(group: GroupId, soft: { leader: NodeId; term: number }): void {
    for (const listener of [...this.leaderListeners]) {
      try {
        listener({ group, leader: soft.leader, term: soft.term });
      } catch (err) {
        // A listener's bug must not stop the pump: it surfaces as an uncaught exception.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  /**
   * Sends a Ready's messages, one batch per peer. A Snap message starts a snapshot stream
   * instead of travelling itself; a batch the transport drops marks the peer unreachable.
   */
  private send(hosted: HostedGroup, messages: Message[]): void {
    if (messages.length === 0) return;
    if (this.transport === undefined) return;
    const byPeer = new Map<NodeId, Message[]>();
    for (const m of messages) {
      if (m.type === MessageType.Snap) {
        this.snapshotSender.start(hosted, m);
        continue;
      }
      const list = byPeer.get(m.to);
      if (list === undefined) byPeer.set(m.to, [m]);
      else list.push(m);
    }
    for (const [to, list] of byPeer) {
      if (!this.transport.send(to, list)) hosted.raft.reportUnreachable(to);
    }
  }

  /** Makes applied indexes durable, then lets the log drop what no group needs. */
  private async checkpoint(): Promise<void> {
    if (this.checkpointing || this.closed || this.failure !== undefined) return;
    this.checkpointing = true;
    try {
      const marks = [...this.groups.values()].map((g) => ({ group: g.id, applied: g.applied }));
      await this.state.flush();
      // Invariant: a group's log is compacted only up to an applied index made durable above,
      // and never past its own last entry (a snapshot may have moved the state beyond it).
      for (const { group, applied } of marks) {
        const upTo = Math.min(applied - this.compactionSlack, this.log.lastIndex(group));
        if (upTo >= this.log.firstIndex(group)) await this.log.compact(group, upTo);
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.checkpointing = false;
    }
  }

  /** A failed write or apply stops the node: nothing more is acknowledged. */
  private fail(err: unknown): void {
    if (this.failure !== undefined) return;
    this.failure =
      err instanceof FlotillaError
        ? err
        : new FlotillaError('IO', `node ${this.nodeId} stopped: ${String(err)}`, { cause: err });
    for (const hosted of this.groups.values()) this.failGroup(hosted, this.failure);
  }

  private failGroup(hosted: HostedGroup, err: FlotillaError): void {
    const unknown =
      err.code === 'CLOSED'
        ? new FlotillaError('CLOSED', err.message, { outcome: 'unknown', group: hosted.id })
        : err;
    for (const p of hosted.proposals.values()) p.reject(unknown);
    this.pendingCount -= hosted.proposals.size;
    hosted.proposals.clear();
    for (const r of hosted.reads.values()) this.rejectReads(hosted, r, err);
    hosted.reads.clear();
    for (const { read } of hosted.readyReads) this.rejectReads(hosted, read, err);
    hosted.readyReads.length = 0;
    const { safe, lease } = hosted.readQueue;
    this.rejectReads(
      hosted,
      { deadline: 0, waiters: [...safe.splice(0), ...lease.splice(0)] },
      err,
    );
    this.readsQueued.delete(hosted);
    hosted.transfer?.done(err);
    // Waiters go on and meet the error at their next call.
    for (const wake of hosted.leaderWaiters.splice(0)) wake();
    for (const wake of hosted.localReadWaiters.splice(0)) wake();
  }
}

const confChangeTypes = new Set(['addVoter', 'removeVoter', 'addLearner']);
const confTransitions = new Set(['auto', 'joint-auto-leave', 'joint-explicit']);

/** What is malformed in a membership change from a caller, or undefined if nothing is. */
function confChangeProblem(change: ConfChange): string | undefined {
  if (!Array.isArray(change.changes)) return 'a membership change needs a list of changes';
  if (!confTransitions.has(change.transition)) return `unknown transition ${change.transition}`;
  for (const c of change.changes) {
    if (!confChangeTypes.has(c.type)) return `unknown membership change type ${String(c.type)}`;
    if (!Number.isInteger(c.node) || c.node <= 0 || c.node > 0xffffffff) {
      return `node id ${c.node} is not an integer in 1..2^32-1`;
    }
  }
  return undefined;
}

/** How many of `committed` (ascending) are at or below `durableLast`. */
function splitDurable(committed: Entry[], durableLast: number): number {
  let cut = 0;
  while (cut < committed.length && committed[cut]!.index <= durableLast) cut++;
  return cut;
}

function hasConfChange(entries: readonly Entry[]): boolean {
  // Indexed: it runs on every Ready, and a for-of allocated an iterator when not optimized.
  for (let i = 0; i < entries.length; i++)
    if (entries[i]!.type === EntryType.ConfChange) return true;
  return false;
}

/**
 * Moves up to `budget` held committed entries of `hosted` that the log holds durably into `out`,
 * in log order, and returns how many; a part taken only in part is split, its membership going
 * with the piece that holds the part's last change.
 */
function drainHeld(hosted: HostedGroup, out: ApplyPart[], budget: number): number {
  const held = hosted.held;
  let moved = 0;
  let taken = 0;
  for (; taken < held.length; taken++) {
    const part = held[taken]!;
    const room = budget - moved;
    if (part.needs <= hosted.durableIndex && part.entries.length <= room) {
      out.push({ hosted, entries: part.entries, conf: part.conf });
      moved += part.entries.length;
      continue;
    }
    const cut = Math.min(splitDurable(part.entries, hosted.durableIndex), room);
    if (cut > 0) {
      const head = part.entries.slice(0, cut);
      const tail = part.entries.slice(cut);
      const conf = part.conf !== undefined && !hasConfChange(tail) ? part.conf : undefined;
      out.push({ hosted, entries: head, conf });
      moved += cut;
      part.entries = tail;
      if (conf !== undefined) part.conf = undefined;
    }
    break;
  }
  if (taken > 0) {
    // In place: splice would build an array of the removed parts on every apply.
    held.copyWithin(0, taken);
    held.length -= taken;
  }
  return moved;
}

/** Whether the oldest held entry of `hosted` is durable (so there is something to apply). */
function hasDurableHeld(hosted: HostedGroup): boolean {
  const first = hosted.held[0];
  if (first === undefined) return false;
  const entry = first.entries[0];
  return (entry === undefined ? first.needs : entry.index) <= hosted.durableIndex;
}

function closedError(): FlotillaError {
  return new FlotillaError('CLOSED', 'the store is closed');
}

function timeoutError(group: GroupId, why: string): FlotillaError {
  return new FlotillaError('TIMEOUT', `shard ${group}: ${why}; it may or may not have applied`, {
    outcome: 'unknown',
    group,
  });
}

function readTimeoutError(group: GroupId): FlotillaError {
  return new FlotillaError('TIMEOUT', `shard ${group}: the read was not confirmed in time`, {
    outcome: 'not-applied',
    group,
  });
}

function droppedError(group: GroupId, why: string): FlotillaError {
  return new FlotillaError('DROPPED', `shard ${group}: the proposal was dropped: ${why}; retry`, {
    reason: why,
    group,
  });
}
