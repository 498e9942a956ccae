/**
 * RaftNode: the consensus core of ONE group, a pure deterministic state machine in the style of
 * etcd's raft/rawnode. Inputs are `step(message)`, `tick()`, `propose(data)` and the other
 * requests; the output is a Ready (see ready.ts for the Ready/advance contract). It owns no
 * timer, socket, file, promise or clock; randomness comes from the injected RandomSource.
 *
 * Features: PreVote, CheckQuorum, pipelined replication with a per-peer inflight window (messages
 * and bytes), fast backtracking by term hint, ReadIndex with batched heartbeat rounds, optional
 * leader-lease reads, learners, joint consensus, leadership transfer, snapshots, bounded
 * uncommitted bytes, and proposal outcomes that are never silent.
 *
 * Memory: a follower holds its log view, its membership and a few dozen numbers; per-peer
 * Progress exists only while leading. No closures or timers per group.
 *
 * Durability rules the core relies on (see ready.ts): responses leave only after the state they
 * describe is durable; a leader counts itself toward a commit quorum only for entries `advance`
 * reported durable; a candidate counts its own vote — and so becomes leader — only once the hard
 * state recording it is durable. Together these let the host send requests before its write.
 *
 * Leader lease (readOnlyOption 'lease'). With CheckQuorum on, a follower that heard from its
 * leader less than `electionTicks` of its own ticks ago ignores (pre)vote requests, and a node
 * that just (re)started does the same for its first `electionTicks` ticks (it may have
 * acknowledged a leader before it crashed). So a quorum that acknowledged a heartbeat sent at
 * leader tick T elects nobody before each of its members has ticked `electionTicks` times after
 * receiving it. The leader serves lease reads until tick T + electionTicks - leaseMarginTicks of
 * its own clock. This is safe as long as no follower's tick rate exceeds the leader's by more
 * than a factor electionTicks / (electionTicks - leaseMarginTicks) (e.g. 10 / 8: 25 % drift),
 * the margin also absorbing up to one tick of phase difference. A campaign triggered by
 * TimeoutNow bypasses the followers' lease, so a leader that has started a transfer stops
 * serving lease reads for the rest of its term (a delayed TimeoutNow may still fire after an
 * aborted transfer); reads then take the ReadIndex path, which stays correct.
 *
 * Membership: the configuration lives in the log as ConfChange entries (conf-change.ts). A change
 * takes effect when its committed entry is handed to the host in a Ready; the Ready carries the
 * resulting `confState` for the host to persist with its applied index. One change may be pending
 * at a time; a leader that applies a configuration without itself steps down (handing over to
 * its most caught-up voter with TimeoutNow). A replica added to a running group starts with an
 * empty configuration (no voters): the group's founding membership is not in the log, so it
 * refuses every App until a snapshot (which carries the membership) has brought it in.
 *
 * Message terms: ReadIndex, ReadIndexResp and TransferLeader carry term 0 and bypass term
 * checks (etcd's "local" messages): a ReadIndexResp's index is valid whenever it arrives, since
 * the leader confirmed its leadership after the request was made.
 */
import { raftRetainedBytesMax } from '../limits.js';
import { assert } from './assert.js';
import { applyConfChangeTo, decodeConfChange, encodeConfChange, isJoint } from './conf-change.js';
import { type Progress, ProgressState, progressStateNames } from './progress.js';
import { ProposalLedger } from './proposal-ledger.js';
import { noEntries, RaftLog } from './raft-log.js';
import type {
  DroppedProposals,
  DroppedRead,
  PeerStatus,
  ProposeResult,
  RaftConfig,
  RaftRole,
  RaftStatus,
  ReadDropReason,
  ReadOnlyOption,
  Ready,
  Refusal,
  RefusalReason,
  RequestResult,
  SoftState,
} from './ready.js';
import { copyConfState, entryBytes, entryOverheadBytes, type RaftStorage } from './storage.js';
import { Tracker, VoteResult } from './tracker.js';
import {
  type ConfChange,
  type Entry,
  EntryType,
  type GroupId,
  type HardState,
  type Message,
  MessageType,
  type NodeId,
  type RandomSource,
  type ReadState,
  type SnapshotMeta,
} from './types.js';

const Role = { Follower: 0, PreCandidate: 1, Candidate: 2, Leader: 3 } as const;
type Role = (typeof Role)[keyof typeof Role];
const roleNames: readonly RaftRole[] = ['follower', 'pre-candidate', 'candidate', 'leader'];

/** Byte length of the heartbeat context: round sequence and send tick, two LE float64s. */
const roundContextBytes = 16;
/** Vote context marking a campaign started by TimeoutNow (voters skip the lease check). */
const transferMarker = 1;
const transferContext = Uint8Array.of(transferMarker);

function isTransferVote(m: Message): boolean {
  const c = m.context;
  return c !== undefined && c.byteLength === 1 && c[0] === transferMarker;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isResponse(type: MessageType): boolean {
  return (
    type === MessageType.AppResp ||
    type === MessageType.VoteResp ||
    type === MessageType.PreVoteResp ||
    type === MessageType.HeartbeatResp
  );
}

/** A read waiting at the leader; `from` 0 means it was requested on this node. */
interface PendingRead {
  context: Uint8Array;
  from: NodeId;
}

/** A read this follower forwarded to its leader, with the tick it left. */
interface ForwardedRead {
  context: Uint8Array;
  tick: number;
}

function refusal(reason: RefusalReason, leaderHint: NodeId, detail?: string): Refusal {
  return detail === undefined
    ? { ok: false, reason, leaderHint }
    : { ok: false, reason, leaderHint, detail };
}

const accepted: RequestResult = Object.freeze({ ok: true }) as RequestResult;

/** The Raft consensus core of one group. */
export class RaftNode {
  /** This node. */
  readonly id: NodeId;
  /** The group. */
  readonly group: GroupId;
  private readonly electionTicks: number;
  private readonly heartbeatTicks: number;
  private readonly random: RandomSource;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly readOnlyOption: ReadOnlyOption;
  private readonly leaseTicks: number;
  private readonly inflightMsgsMax: number;
  private readonly inflightBytesMax: number;
  private readonly msgBytesMax: number;
  private readonly uncommittedBytesMax: number;
  private readonly committedBytesPerReadyMax: number;
  private readonly readsPendingMax: number;
  private readonly messagesQueuedMax: number;
  private readonly proposalRangesMax: number;
  /** Planted bugs (test only; see RaftConfig.unsafe). */
  private readonly unsafeCommit: boolean;
  private readonly unsafeReads: boolean;

  private readonly log: RaftLog;
  private readonly tracker: Tracker;

  // Persistent state. Invariant: vote is 0 or the node this node voted for in `term`.
  private term: number;
  private vote: NodeId;
  // What the host reported durable (the newest hard state of an advanced Ready).
  private durableTerm: number;
  private durableVote: NodeId;
  // Volatile state. Invariant: lead === id iff role === Leader.
  private role: Role = Role.Follower;
  private lead: NodeId = 0;
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Ticks since this object was created: the leader's clock for leases. */
  private ticks = 0;
  /** Just restarted: behave as if in a leader's lease for the first election timeout. */
  private startupLease: boolean;
  // Leader only. Invariant: transferee is 0 or a voter other than id.
  private transferee: NodeId = 0;
  /** The term in which this node last started a transfer: no lease reads in it. */
  private transferTerm = -1;
  /** Index of the newest conf change (or of the log end at election); one pending at a time. */
  private pendingConfIndex = 0;
  private uncommittedBytes = 0;
  /** Whether Apps may be due to some peer (set by anything that can unblock replication). */
  private appendDirty = false;
  // Heartbeat rounds: `roundSeq` numbers every context-carrying heartbeat broadcast.
  private roundSeq = 0;
  // Candidate only.
  private votesGranted: NodeId[] | null = null;
  private votesRejected: NodeId[] | null = null;
  // Reads. Leader: `readsWaiting` wait for the next round, `readsInRound` for round
  // `readRoundSeq` whose answer is `readRoundIndex`. Follower: `readsForwarded`.
  private readsWaiting: PendingRead[] | null = null;
  private readsInRound: PendingRead[] | null = null;
  private readRoundSeq = 0;
  private readRoundIndex = 0;
  private readsForwarded: ForwardedRead[] | null = null;
  // Output accumulated for the next Ready.
  private msgs: Message[] | null = null;
  private msgsAfterPersist: Message[] | null = null;
  private readStates: ReadState[] | null = null;
  private droppedReads: DroppedRead[] | null = null;
  private confChanged = false;
  private messagesDropped = 0;
  /** Proposals made here and not yet settled (null while there are none). */
  private ledger: ProposalLedger | null = null;
  // The state last handed out, to report only changes.
  private prevTerm: number;
  private prevVote: NodeId;
  private prevCommit: number;
  private prevRole: Role = Role.Follower;
  private prevLead: NodeId = 0;
  private outstanding: Ready | null = null;
  private closed = false;

  /** A node of `config.group` restarting from `storage` (fresh when storage is empty). */
  constructor(config: RaftConfig, storage: RaftStorage) {
    validateConfig(config);
    this.id = config.id;
    this.group = config.group;
    this.electionTicks = config.electionTicks;
    this.heartbeatTicks = config.heartbeatTicks;
    this.random = config.random;
    this.preVote = config.preVote;
    this.checkQuorum = config.checkQuorum;
    this.readOnlyOption = config.readOnlyOption;
    this.leaseTicks = config.electionTicks - config.leaseMarginTicks;
    this.inflightMsgsMax = config.inflightMsgsMax;
    this.inflightBytesMax = config.inflightBytesMax;
    this.msgBytesMax = config.msgBytesMax;
    this.uncommittedBytesMax = config.uncommittedBytesMax;
    this.committedBytesPerReadyMax = config.committedBytesPerReadyMax;
    this.readsPendingMax = config.readsPendingMax;
    this.messagesQueuedMax = config.messagesQueuedMax;
    this.proposalRangesMax = config.proposalRangesMax;
    this.unsafeCommit = config.unsafe?.commitByCountingPreviousTerm === true;
    this.unsafeReads = config.unsafe?.readWithoutQuorum === true;
    const { hardState, confState } = storage.initialState();
    const retained = config.retainedBytesMax ?? raftRetainedBytesMax;
    this.log = new RaftLog(storage, hardState.commit, config.applied ?? 0, retained);
    this.tracker = new Tracker(copyConfState(confState));
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.durableTerm = hardState.term;
    this.durableVote = hardState.vote;
    this.prevTerm = hardState.term;
    this.prevVote = hardState.vote;
    this.prevCommit = this.log.committed;
    // A node that never left term 0 never acknowledged a leader: it owes nobody a lease.
    this.startupLease = config.checkQuorum && hardState.term > 0;
    this.resetRandomizedElectionTimeout();
  }

  // ---- Inputs --------------------------------------------------------------------------------

  /** One unit of logical time: drives elections, heartbeats, CheckQuorum and transfer aborts. */
  tick(): void {
    if (this.closed) return;
    this.ticks++;
    if (this.role === Role.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  /**
   * Feeds a message from a peer of this group. The core keeps references to the message's
   * entries, their data and its context (until persisted and handed out): the caller must not
   * reuse those buffers.
   */
  step(m: Message): void {
    assert(m.group === this.group, 'message for another group');
    assert(m.to === this.id, 'message for another node');
    if (this.closed) return;
    if (m.term === 0) {
      this.stepTermless(m);
      return;
    }
    if (m.term > this.term && !this.stepHigherTerm(m)) return;
    if (m.term < this.term) {
      this.stepLowerTerm(m);
      return;
    }
    if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
      this.handleVoteRequest(m);
      return;
    }
    if (this.role === Role.Leader) this.stepLeader(m);
    else if (this.role === Role.Follower) this.stepFollower(m);
    else this.stepCandidate(m);
  }

  /**
   * Proposes a command. On the leader it is appended at once and returned as { index, term };
   * the entry is later delivered in `committedEntries` or reported in `Ready.dropped`.
   * Followers refuse with 'not-leader' and a hint: the host routes proposals.
   */
  propose(data: Uint8Array): ProposeResult {
    const refused = this.proposalRefusal();
    if (refused !== undefined) return refused;
    const bytes = data.byteLength + entryOverheadBytes;
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + bytes > this.uncommittedBytesMax) {
      return refusal('too-many-uncommitted', this.id);
    }
    return this.appendProposal(EntryType.Normal, data, true);
  }

  /** Proposes a membership change (one pending at a time); outcome as for `propose`. */
  proposeConfChange(cc: ConfChange): ProposeResult {
    const refused = this.proposalRefusal();
    if (refused !== undefined) return refused;
    if (this.pendingConfIndex > this.log.applied) return refusal('conf-change-pending', this.id);
    for (const c of cc.changes) {
      if (!Number.isInteger(c.node) || c.node <= 0 || c.node > 0xffffffff) {
        return refusal('invalid-conf-change', this.id, `node id ${c.node} is not a u32 > 0`);
      }
    }
    const result = applyConfChangeTo(this.tracker.conf, cc);
    if (!result.ok) return refusal('invalid-conf-change', this.id, result.error);
    return this.appendProposal(EntryType.ConfChange, encodeConfChange(cc), true);
  }

  private proposalRefusal(): Refusal | undefined {
    if (this.closed) return refusal('closed', this.lead);
    if (this.role !== Role.Leader) return refusal('not-leader', this.lead);
    if (this.transferee !== 0) return refusal('transferring', this.transferee);
    return undefined;
  }

  /** Appends an entry of ours; `own` ones (the host's) are tracked until their outcome is known. */
  private appendProposal(type: EntryType, data: Uint8Array, own: boolean): ProposeResult {
    const index = this.log.lastIndex() + 1;
    const entry: Entry = { term: this.term, index, type, data };
    this.log.appendOne(entry);
    this.uncommittedBytes += entryBytes(entry);
    if (type === EntryType.ConfChange) this.pendingConfIndex = index;
    if (own) this.trackOwnProposal(index);
    this.appendDirty = true;
    return { ok: true, index, term: this.term };
  }

  /**
   * Requests a linearizable read. The ReadState (index, context) arrives in a later Ready — serve
   * the read once the applied index reaches it — or the read is reported in `droppedReads`.
   * `context` identifies the read (make it unique). A follower forwards it to its leader.
   */
  readIndex(context: Uint8Array, mode: ReadOnlyOption = this.readOnlyOption): RequestResult {
    if (this.closed) return refusal('closed', this.lead);
    assert(mode === 'safe' || this.checkQuorum, 'lease reads need checkQuorum');
    if (this.role === Role.Leader) {
      if (this.pendingReadCount() >= this.readsPendingMax) {
        return refusal('too-many-reads', this.id);
      }
      this.leaderRead({ context, from: 0 }, mode);
      return accepted;
    }
    if (this.lead === 0) return refusal('not-leader', 0);
    const forwarded = this.readsForwarded ?? [];
    if (forwarded.length >= this.readsPendingMax) return refusal('too-many-reads', this.lead);
    forwarded.push({ context, tick: this.ticks });
    this.readsForwarded = forwarded;
    const m = this.message(MessageType.ReadIndex, this.lead, 0);
    m.context = context;
    this.send(m);
    return accepted;
  }

  /**
   * Hands leadership to voter `target`: once it has the whole log it gets TimeoutNow and
   * campaigns at once. Proposals are refused meanwhile; the transfer is abandoned after an
   * election timeout. A follower may ask for itself (`target === id`): the request goes to the
   * leader.
   */
  transferLeader(target: NodeId): RequestResult {
    if (this.closed) return refusal('closed', this.lead);
    if (this.role !== Role.Leader) {
      if (target !== this.id || this.lead === 0) return refusal('not-leader', this.lead);
      this.send(this.message(MessageType.TransferLeader, this.lead, 0));
      return accepted;
    }
    return this.startTransfer(target);
  }

  /** Starts an election now (as if the election timeout elapsed), with PreVote if configured. */
  campaign(): RequestResult {
    if (this.closed) return refusal('closed', this.lead);
    if (this.role === Role.Leader) return accepted;
    if (!this.promotable()) return refusal('not-promotable', this.lead);
    this.startElection(this.preVote, false);
    return accepted;
  }

  /**
   * Adopts a snapshot that the host's state machine holds but its log never recorded (the node
   * stopped between installing a snapshot and persisting its marker): the log restarts from
   * it, and the next Ready carries the marker to persist, as for a snapshot from a leader.
   */
  restoreSnapshot(snap: SnapshotMeta): void {
    assert(!this.closed, 'restoring a snapshot into a closed group');
    assert(snap.index > this.log.lastIndex(), 'the snapshot is beyond the log');
    this.log.restore(snap);
    this.tracker.setConf(copyConfState(snap.conf), snap.index);
    this.confChanged = true;
  }

  /** The transport could not reach `peer`: stop pipelining to it until it answers again. */
  reportUnreachable(peer: NodeId): void {
    const pr = this.tracker.get(peer);
    if (pr !== undefined && pr.state === ProgressState.Replicate) pr.becomeProbe();
  }

  /**
   * The host finished (ok) or gave up (!ok) sending the snapshot announced by a Snap message to
   * `peer`. Either way the leader waits for the peer's next answer before sending again.
   */
  reportSnapshot(peer: NodeId, ok: boolean): void {
    const pr = this.tracker.get(peer);
    if (pr === undefined || pr.state !== ProgressState.Snapshot) return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    pr.probeSent = true;
  }

  /**
   * Closes the group: every request is refused with 'closed' from now on, and the next Ready
   * reports every pending proposal and read as dropped (outcome unknown).
   */
  close(): void {
    if (this.closed) return;
    this.dropPendingReads('closed');
    this.dropForwardedReads('closed');
    this.ledger?.dropAll('closed');
    this.closed = true;
  }

  // ---- Output --------------------------------------------------------------------------------

  /** Whether a Ready is waiting (always false while one is outstanding). */
  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    if (this.appendDirty && this.role === Role.Leader) this.flushAppends();
    return (
      this.msgs !== null ||
      this.msgsAfterPersist !== null ||
      this.log.hasUnstable() ||
      this.log.hasNextCommittedEntries() ||
      this.hardStateChanged() ||
      this.role !== this.prevRole ||
      this.lead !== this.prevLead ||
      this.readStates !== null ||
      this.droppedReads !== null ||
      this.ledger?.hasDrops() === true ||
      this.confChanged
    );
  }

  /** Takes the pending work; the host must call `advance(ready)` when it has done it. */
  ready(): Ready {
    assert(this.outstanding === null, 'ready() while the previous Ready is not advanced');
    if (this.appendDirty && this.role === Role.Leader) this.flushAppends();
    const committedEntries = this.log.nextCommittedEntries(this.committedBytesPerReadyMax);
    if (committedEntries.length > 0) this.deliverCommitted(committedEntries);
    const rd: Ready = {
      softState: this.softStateIfChanged(),
      hardState: this.hardStateChanged()
        ? { term: this.term, vote: this.vote, commit: this.log.committed }
        : undefined,
      snapshot: this.log.unstableSnapshot(),
      entries: this.log.unstableEntries(),
      mustSync: false,
      messages: this.msgs ?? noMessages,
      messagesAfterPersist: this.msgsAfterPersist ?? noMessages,
      committedEntries,
      confState: this.confChanged ? copyConfState(this.tracker.conf) : undefined,
      readStates: this.readStates ?? noReadStates,
      droppedReads: this.droppedReads ?? noDroppedReads,
      dropped: this.ledger?.takeDrops() ?? noDropped,
    };
    rd.mustSync =
      rd.entries.length > 0 ||
      rd.snapshot !== undefined ||
      this.term !== this.prevTerm ||
      this.vote !== this.prevVote;
    this.prevTerm = this.term;
    this.prevVote = this.vote;
    this.prevCommit = this.log.committed;
    this.prevRole = this.role;
    this.prevLead = this.lead;
    this.msgs = null;
    this.msgsAfterPersist = null;
    this.readStates = null;
    this.droppedReads = null;
    // A leader keeps its idle ledger: it will likely propose again before the next Ready, and
    // a new one per Ready was garbage on the write path. Others free it (many idle groups).
    if (this.role !== Role.Leader && this.ledger?.isIdle() === true) this.ledger = null;
    this.confChanged = false;
    this.outstanding = rd;
    return rd;
  }

  /** The host persisted, sent and applied `rd` as the contract in ready.ts describes. */
  advance(rd: Ready): void {
    assert(this.outstanding === rd, 'advance() with a Ready that is not the outstanding one');
    this.outstanding = null;
    if (rd.snapshot !== undefined) {
      this.log.stableSnapshot(rd.snapshot);
      this.log.appliedTo(rd.snapshot.index);
    }
    if (rd.entries.length > 0) this.log.stableWritten(rd.entries);
    if (rd.hardState !== undefined) {
      this.durableTerm = rd.hardState.term;
      this.durableVote = rd.hardState.vote;
    }
    const applied = rd.committedEntries[rd.committedEntries.length - 1];
    if (applied !== undefined) this.log.appliedTo(applied.index);
    if (this.closed) return;
    if (this.role === Role.Candidate) this.countDurableSelfVote();
    if (this.role === Role.Leader) this.leaderAdvanced();
  }

  private leaderAdvanced(): void {
    const self = this.tracker.get(this.id);
    assert(self !== undefined, 'a leader tracks its own progress');
    if (self.maybeUpdate(this.log.durableLastIndex())) this.maybeCommit();
    const conf = this.tracker.conf;
    if (isJoint(conf) && conf.autoLeave && this.pendingConfIndex <= this.log.applied) {
      // Leave the joint configuration on our own, bypassing the transfer check.
      const leave = encodeConfChange({ changes: [], transition: 'auto' });
      this.appendProposal(EntryType.ConfChange, leave, false);
    }
  }

  // ---- State queries -------------------------------------------------------------------------

  /** Whether this node currently leads its group. */
  isLeader(): boolean {
    return this.role === Role.Leader;
  }

  /** The leader this node knows of (itself when leading), 0 if none. */
  leader(): NodeId {
    return this.lead;
  }

  /** A snapshot of the node's state, for status pages and tests. */
  status(): RaftStatus {
    const progress: PeerStatus[] = (this.tracker.progress ?? []).map((pr) => ({
      id: pr.id,
      match: pr.match,
      next: pr.next,
      state: progressStateNames[pr.state],
      inflightMsgs: pr.inflightCount,
      inflightBytes: pr.inflightBytes,
      recentActive: pr.recentActive,
      learner: pr.isLearner,
      pendingSnapshot: pr.pendingSnapshot,
    }));
    return {
      id: this.id,
      group: this.group,
      role: roleNames[this.role]!,
      term: this.term,
      vote: this.vote,
      leader: this.lead,
      commit: this.log.committed,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      transferee: this.transferee,
      conf: copyConfState(this.tracker.conf),
      progress,
      uncommittedBytes: this.uncommittedBytes,
      messagesDropped: this.messagesDropped,
      closed: this.closed,
    };
  }

  private softStateIfChanged(): SoftState | undefined {
    if (this.role === this.prevRole && this.lead === this.prevLead) return undefined;
    return { role: roleNames[this.role]!, leader: this.lead, term: this.term };
  }

  private hardStateChanged(): boolean {
    return (
      this.term !== this.prevTerm ||
      this.vote !== this.prevVote ||
      this.log.committed !== this.prevCommit
    );
  }

  /** The persistent state as it stands (not necessarily durable yet). */
  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  // ---- Elections -----------------------------------------------------------------------------

  private tickElection(): void {
    this.electionElapsed++;
    if (this.startupLease && this.electionElapsed >= this.electionTicks) {
      this.startupLease = false;
    }
    if (this.readsForwarded !== null) this.expireForwardedReads();
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.startElection(this.preVote, false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0;
      if (this.checkQuorum) {
        if (!this.tracker.quorumActive(this.id)) {
          this.becomeFollower(this.term, 0);
          return;
        }
        for (const pr of this.tracker.progress!) if (pr.id !== this.id) pr.recentActive = false;
      }
      if (this.transferee !== 0) this.transferee = 0; // the transfer did not finish in time
    }
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  private promotable(): boolean {
    return this.tracker.isVoter(this.id) && this.log.unstableSnapshot() === undefined;
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTicks + this.random.intBelow(this.electionTicks);
  }

  /** Starts a pre-election (`pre`) or an election; `transfer` marks a TimeoutNow campaign. */
  private startElection(pre: boolean, transfer: boolean): void {
    let voteTerm: number;
    if (pre) {
      this.role = Role.PreCandidate;
      this.lead = 0;
      this.votesGranted = [this.id];
      this.votesRejected = [];
      voteTerm = this.term + 1;
    } else {
      this.reset(this.term + 1);
      this.role = Role.Candidate;
      this.vote = this.id;
      // Our own vote counts once the hard state recording it is durable (countDurableSelfVote).
      this.votesGranted = [];
      this.votesRejected = [];
      voteTerm = this.term;
    }
    const type = pre ? MessageType.PreVote : MessageType.Vote;
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of this.tracker.voterIds()) {
      if (id === this.id) continue;
      const m = this.message(type, id, voteTerm);
      m.index = lastIndex;
      m.logTerm = lastTerm;
      if (transfer) m.context = transferContext;
      this.send(m);
    }
    if (pre) this.poll();
  }

  private countDurableSelfVote(): void {
    if (this.durableTerm !== this.term || this.durableVote !== this.id) return;
    const granted = this.votesGranted!;
    if (!granted.includes(this.id)) granted.push(this.id);
    this.poll();
  }

  private poll(): void {
    const result = this.tracker.voteResult(this.votesGranted!, this.votesRejected!);
    if (result === VoteResult.Lost) {
      this.becomeFollower(this.term, 0);
    } else if (result === VoteResult.Won) {
      if (this.role === Role.PreCandidate) this.startElection(false, false);
      else if (this.durableTerm === this.term && this.durableVote === this.id) this.becomeLeader();
    }
  }

  private reset(term: number): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = 0;
    }
    this.lead = 0;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.transferee = 0;
    this.votesGranted = null;
    this.votesRejected = null;
    if (this.role === Role.Leader) this.dropPendingReads('not-leader');
    this.tracker.stopLeading();
    this.pendingConfIndex = 0;
    this.uncommittedBytes = 0;
    this.appendDirty = false;
  }

  private becomeFollower(term: number, lead: NodeId): void {
    const oldTerm = this.term;
    const oldLead = this.lead;
    this.reset(term);
    this.role = Role.Follower;
    this.lead = lead;
    if (this.readsForwarded !== null && (term !== oldTerm || lead !== oldLead)) {
      this.dropForwardedReads('leader-changed');
    }
  }

  private becomeLeader(): void {
    assert(this.role === Role.Candidate, 'only a candidate becomes leader');
    this.reset(this.term);
    this.role = Role.Leader;
    this.lead = this.id;
    this.dropForwardedReads('leader-changed');
    const lastIndex = this.log.lastIndex();
    this.tracker.startLeading(lastIndex);
    const self = this.tracker.get(this.id)!;
    self.maybeUpdate(this.log.durableLastIndex());
    self.becomeReplicate();
    self.recentActive = true;
    // No conf change until everything in the log at election time is applied: any of it may be
    // a conf change not yet in force.
    this.pendingConfIndex = lastIndex;
    const noop: Entry = {
      term: this.term,
      index: lastIndex + 1,
      type: EntryType.Normal,
      data: empty,
    };
    this.log.appendOne(noop);
    this.uncommittedBytes = entryBytes(noop);
    this.appendDirty = true;
  }

  /** Handles a message of a newer term; returns false when the message must be ignored. */
  private stepHigherTerm(m: Message): boolean {
    const isVote = m.type === MessageType.Vote || m.type === MessageType.PreVote;
    if (isVote && !isTransferVote(m) && this.inLease()) return false;
    if (m.type === MessageType.PreVote) return true; // a pre-vote never changes our term
    if (m.type === MessageType.PreVoteResp && !m.reject) return true; // counted at term + 1
    const fromLeader =
      m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap;
    const elapsed = this.electionElapsed;
    this.becomeFollower(m.term, fromLeader ? m.from : 0);
    // Raft §5.2: only a leader's message or a granted vote restarts the election timer. A
    // candidate that cannot win (stale log, fast clock) must not keep everybody else's timers
    // from firing by merely raising the term.
    if (!fromLeader) this.electionElapsed = elapsed;
    return true;
  }

  /** Whether this node still honours a leader's lease (and so ignores vote requests). */
  private inLease(): boolean {
    return (
      this.checkQuorum &&
      (this.lead !== 0 || this.startupLease) &&
      this.electionElapsed < this.electionTicks
    );
  }

  private stepLowerTerm(m: Message): void {
    if (m.type === MessageType.App || m.type === MessageType.Heartbeat) {
      // A stale leader learns the newer term from this answer (Raft §5.1). It may hear of it
      // no other way: with PreVote/CheckQuorum our vote requests stay pre-votes or are ignored,
      // and a member whose configuration is stale sends them to the wrong nodes.
      this.sendResponse(this.message(MessageType.AppResp, m.from, this.term));
    } else if (m.type === MessageType.PreVote) {
      const resp = this.message(MessageType.PreVoteResp, m.from, this.term);
      resp.reject = true;
      this.sendResponse(resp);
    }
  }

  private handleVoteRequest(m: Message): void {
    const pre = m.type === MessageType.PreVote;
    const canVote =
      this.vote === m.from || (this.vote === 0 && this.lead === 0) || (pre && m.term > this.term);
    const grant = canVote && this.log.isUpToDate(m.index, m.logTerm);
    const type = pre ? MessageType.PreVoteResp : MessageType.VoteResp;
    // A granted pre-vote answers at the requested term, so the pre-candidate can count it.
    const resp = this.message(type, m.from, grant && pre ? m.term : this.term);
    resp.reject = !grant;
    this.sendResponse(resp);
    if (grant && !pre) {
      this.electionElapsed = 0;
      this.vote = m.from;
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case MessageType.App:
      case MessageType.Heartbeat:
      case MessageType.Snap:
        this.becomeFollower(this.term, m.from);
        this.stepFollower(m);
        return;
      case MessageType.VoteResp:
      case MessageType.PreVoteResp: {
        const mine =
          this.role === Role.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
        if (m.type !== mine) return;
        const list = m.reject ? this.votesRejected! : this.votesGranted!;
        if (!this.votesGranted!.includes(m.from) && !this.votesRejected!.includes(m.from)) {
          list.push(m.from);
        }
        this.poll();
        return;
      }
      default:
        return; // responses meant for a leader, TimeoutNow for a follower: stale, harmless
    }
  }

  // ---- Follower ------------------------------------------------------------------------------

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.App:
        this.heardFromLeader(m.from);
        this.handleAppend(m);
        return;
      case MessageType.Heartbeat:
        this.heardFromLeader(m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.heardFromLeader(m.from);
        this.handleSnapshot(m);
        return;
      case MessageType.TimeoutNow:
        // The leader hands over: campaign at once, skipping PreVote and the voters' lease.
        if (this.promotable()) this.startElection(false, true);
        return;
      default:
        return; // answers to requests of an earlier role of ours: stale, harmless
    }
  }

  private heardFromLeader(from: NodeId): void {
    this.electionElapsed = 0;
    if (this.lead !== from) {
      if (this.readsForwarded !== null) this.dropForwardedReads('leader-changed');
      this.lead = from;
    }
  }

  private handleAppend(m: Message): void {
    const resp = this.message(MessageType.AppResp, m.from, this.term);
    if (this.tracker.conf.voters.length === 0) {
      // A joining replica knows no configuration yet. The one a group starts with is not in its
      // log, so replaying entries from index 1 cannot rebuild it: ask for a snapshot, which
      // carries it, by refusing even index 0 (which every other replica matches).
      resp.index = 0;
      resp.reject = true;
      this.sendResponse(resp);
      return;
    }
    if (m.index < this.log.committed) {
      resp.index = this.log.committed;
      this.sendResponse(resp);
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew >= 0) {
      resp.index = lastNew;
    } else {
      // Fast backtracking: point the leader at the last entry that can still match.
      const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
      resp.index = m.index;
      resp.reject = true;
      resp.rejectHint = hint;
      resp.logTermHint = this.log.term(hint) ?? 0;
    }
    this.sendResponse(resp);
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(m.commit);
    const resp = this.message(MessageType.HeartbeatResp, m.from, this.term);
    resp.context = m.context;
    this.sendResponse(resp);
  }

  private handleSnapshot(m: Message): void {
    const snap = m.snapshot;
    assert(snap !== undefined, 'Snap message without a snapshot');
    const resp = this.message(MessageType.AppResp, m.from, this.term);
    if (snap.index <= this.log.committed) {
      resp.index = this.log.committed;
    } else if (this.log.matchTerm(snap.index, snap.term)) {
      // We already hold the snapshot's last entry: the log up to it matches; just commit.
      this.log.commitTo(snap.index);
      resp.index = this.log.committed;
    } else {
      this.log.restore(snap);
      this.tracker.setConf(copyConfState(snap.conf), snap.index);
      this.confChanged = true;
      this.ledger?.settleSnapshot(snap.index, snap.term);
      if (!this.tracker.isMember(this.id)) this.ledger?.dropAll('removed');
      resp.index = this.log.lastIndex();
    }
    this.sendResponse(resp);
  }

  // ---- Leader --------------------------------------------------------------------------------

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.AppResp:
        this.handleAppResp(m);
        return;
      case MessageType.HeartbeatResp:
        this.handleHeartbeatResp(m);
        return;
      case MessageType.App:
      case MessageType.Heartbeat:
      case MessageType.Snap:
        assert(false, 'two leaders in one term');
        return;
      default:
        return; // vote answers that arrived after we won, or TimeoutNow: stale, harmless
    }
  }

  private handleAppResp(m: Message): void {
    const pr = this.tracker.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (m.reject && m.index === 0) {
      // Only a joining replica refuses index 0 (see handleAppend): it needs a snapshot.
      if (pr.state !== ProgressState.Snapshot) this.sendSnapshot(pr);
      return;
    }
    if (m.reject) {
      let hint = m.rejectHint;
      if (m.logTermHint > 0) hint = this.log.findConflictByTerm(m.rejectHint, m.logTermHint);
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.appendDirty = true;
      }
      return;
    }
    if (pr.maybeUpdate(m.index) || (pr.match === m.index && pr.state === ProgressState.Probe)) {
      if (pr.state === ProgressState.Probe) {
        pr.becomeReplicate();
      } else if (pr.state === ProgressState.Snapshot && pr.match + 1 >= this.log.firstIndex()) {
        pr.becomeProbe();
        pr.becomeReplicate();
      } else if (pr.state === ProgressState.Replicate) {
        pr.freeInflightsTo(m.index);
      }
      this.maybeCommit();
      this.appendDirty = true;
      if (m.from === this.transferee && pr.match === this.log.lastIndex()) {
        this.sendTimeoutNow(m.from);
      }
    }
  }

  private handleHeartbeatResp(m: Message): void {
    const pr = this.tracker.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.probeSent = false;
    if (pr.state === ProgressState.Replicate && pr.inflightCount >= this.inflightMsgsMax) {
      // Alive but the window is full: some App was probably lost. Free one slot so the next
      // App goes out; a gap makes the follower reject it and replication resumes by probing.
      pr.freeFirstInflight();
    }
    const last = this.log.lastIndex();
    if (pr.state === ProgressState.Replicate && pr.match < last && pr.next > last) {
      // Everything was sent but not everything acknowledged: if the last App was lost, nothing
      // else would reveal the gap. An empty App does (the follower rejects it, we back up).
      if (!pr.isPaused(this.inflightMsgsMax, this.inflightBytesMax)) this.sendAppend(pr);
    } else if (pr.match < last || pr.state === ProgressState.Probe) {
      this.appendDirty = true;
    }
    const ctx = m.context;
    if (ctx !== undefined && ctx.byteLength === roundContextBytes) {
      const view = new DataView(ctx.buffer, ctx.byteOffset, roundContextBytes);
      const seq = view.getFloat64(0, true);
      const sentTick = view.getFloat64(8, true);
      if (seq > pr.ackSeq && seq <= this.roundSeq) {
        pr.ackSeq = seq;
        if (sentTick > pr.ackTick) pr.ackTick = sentTick;
        if (this.readsInRound !== null) this.maybeFinishReadRound();
      }
    }
  }

  /** Advances the commit index to what a quorum holds, if that entry is of our term. */
  private maybeCommit(): void {
    const index = this.tracker.committedIndex();
    if (index <= this.log.committed) return;
    // Raft §5.4.2: an entry of an earlier term is never committed by counting its replicas.
    if (this.log.term(index) !== this.term && !this.unsafeCommit) return;
    const firstOfTerm = this.log.term(this.log.committed) !== this.term;
    this.log.commitTo(index);
    this.appendDirty = true;
    if (firstOfTerm && this.readsWaiting !== null) this.startReadRound();
  }

  /** Sends every App the window allows to every peer. */
  private flushAppends(): void {
    this.appendDirty = false;
    const list = this.tracker.progress!;
    for (let i = 0; i < list.length; i++) {
      const pr = list[i]!;
      if (pr.id !== this.id) this.sendAppends(pr);
    }
  }

  private sendAppends(pr: Progress): void {
    if (pr.state === ProgressState.Snapshot) return;
    if (pr.state === ProgressState.Probe) {
      if (!pr.probeSent) this.sendAppend(pr);
      return;
    }
    const last = this.log.lastIndex();
    let commitOnly = pr.sentCommit < this.log.committed;
    while (
      (pr.next <= last || commitOnly) &&
      !pr.isPaused(this.inflightMsgsMax, this.inflightBytesMax)
    ) {
      if (!this.sendAppend(pr)) return;
      commitOnly = false;
    }
  }

  /** Sends one App (or a Snap when the entries are compacted); false if nothing could go. */
  private sendAppend(pr: Progress): boolean {
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) return this.sendSnapshot(pr);
    const last = this.log.lastIndex();
    const entries =
      pr.next <= last ? this.log.slice(pr.next, last + 1, this.msgBytesMax) : noEntries;
    let bytes = 0;
    for (let i = 0; i < entries.length; i++) bytes += entryBytes(entries[i]!);
    const m = this.message(MessageType.App, pr.id, this.term);
    m.index = prevIndex;
    m.logTerm = prevTerm;
    m.entries = entries;
    m.commit = this.log.committed;
    this.send(m);
    pr.sentEntries(prevIndex + entries.length, bytes, this.inflightMsgsMax);
    pr.sentCommit = this.log.committed;
    return true;
  }

  private sendSnapshot(pr: Progress): boolean {
    // A peer that does not answer would not take the snapshot either; wait until it does.
    if (!pr.recentActive) return false;
    const snap = this.log.snapshot();
    if (snap === undefined) return false; // the host has not produced one yet: retry later
    const m = this.message(MessageType.Snap, pr.id, this.term);
    m.index = snap.index;
    m.logTerm = snap.term;
    m.snapshot = snap;
    this.send(m);
    pr.becomeSnapshot(snap.index);
    return false;
  }

  /** The periodic heartbeats; with a round context when a read round or the lease needs one. */
  private broadcastHeartbeat(): void {
    const needsAnswer = this.readOnlyOption === 'lease' || this.readsInRound !== null;
    this.sendHeartbeats(needsAnswer ? this.newRoundContext() : undefined);
  }

  /** A heartbeat to every peer, with the commit index each may apply and `context` to echo. */
  private sendHeartbeats(context: Uint8Array | undefined): void {
    const committed = this.log.committed;
    for (const pr of this.tracker.progress!) {
      if (pr.id === this.id) continue;
      const m = this.message(MessageType.Heartbeat, pr.id, this.term);
      m.commit = Math.min(pr.match, committed);
      m.context = context;
      this.send(m);
    }
  }

  /** A new heartbeat round: its sequence and send tick, echoed back by followers. */
  private newRoundContext(): Uint8Array {
    const seq = ++this.roundSeq;
    const ctx = new Uint8Array(roundContextBytes);
    const view = new DataView(ctx.buffer);
    view.setFloat64(0, seq, true);
    view.setFloat64(8, this.ticks, true);
    const self = this.tracker.get(this.id)!;
    self.ackSeq = seq;
    self.ackTick = this.ticks;
    return ctx;
  }

  private startTransfer(target: NodeId): RequestResult {
    if (target === this.id) {
      this.transferee = 0; // already leading: nothing to hand over
      return accepted;
    }
    if (!this.tracker.isVoter(target)) return refusal('not-a-voter', this.id);
    if (this.transferee === target) return accepted;
    this.transferee = target;
    this.transferTerm = this.term;
    this.electionElapsed = 0; // the transfer is abandoned after one election timeout
    const pr = this.tracker.get(target)!;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(target);
    else this.appendDirty = true;
    return accepted;
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send(this.message(MessageType.TimeoutNow, to, this.term));
  }

  // ---- Messages without a term ----------------------------------------------------------------

  private stepTermless(m: Message): void {
    switch (m.type) {
      case MessageType.ReadIndex:
        if (m.context === undefined) return;
        if (this.role !== Role.Leader) {
          this.rejectForwardedRead(m.from, m.context);
        } else if (this.pendingReadCount() >= this.readsPendingMax) {
          this.rejectForwardedRead(m.from, m.context);
        } else {
          this.leaderRead({ context: m.context, from: m.from }, this.readOnlyOption);
        }
        return;
      case MessageType.ReadIndexResp:
        if (m.context !== undefined) this.forwardedReadAnswered(m);
        return;
      case MessageType.TransferLeader:
        if (this.role === Role.Leader) this.startTransfer(m.from);
        return;
      default:
        return; // Prop is not used: followers refuse proposals and the host routes them
    }
  }

  // ---- Reads ---------------------------------------------------------------------------------

  private pendingReadCount(): number {
    return (this.readsWaiting?.length ?? 0) + (this.readsInRound?.length ?? 0);
  }

  private leaderRead(read: PendingRead, mode: ReadOnlyOption): void {
    const committedInTerm = this.log.term(this.log.committed) === this.term;
    if (committedInTerm) {
      const single =
        this.tracker.conf.voters.length === 1 && this.tracker.conf.votersOutgoing.length === 0;
      if (single || (mode === 'lease' && this.leaseValid()) || this.unsafeReads) {
        this.answerRead(read, this.log.committed);
        return;
      }
    }
    const waiting = this.readsWaiting ?? [];
    waiting.push(read);
    this.readsWaiting = waiting;
    // Until an entry of this term commits, the commit index may lag what an earlier leader
    // committed: the reads wait for that first (Raft §6.4).
    if (committedInTerm && this.readsInRound === null) this.startReadRound();
  }

  private leaseValid(): boolean {
    if (this.transferTerm === this.term) return false;
    return this.tracker.quorumAckTick() + this.leaseTicks > this.ticks;
  }

  /** Confirms leadership for every waiting read with one heartbeat round. */
  private startReadRound(): void {
    if (this.readsInRound !== null || this.readsWaiting === null) return;
    this.readsInRound = this.readsWaiting;
    this.readsWaiting = null;
    this.readRoundIndex = this.log.committed;
    const context = this.newRoundContext();
    this.readRoundSeq = this.roundSeq;
    this.sendHeartbeats(context);
    this.maybeFinishReadRound();
  }

  private maybeFinishReadRound(): void {
    const round = this.readsInRound;
    if (round === null || this.tracker.quorumAckSeq() < this.readRoundSeq) return;
    this.readsInRound = null;
    for (const read of round) this.answerRead(read, this.readRoundIndex);
    if (this.readsWaiting !== null) this.startReadRound();
  }

  private answerRead(read: PendingRead, index: number): void {
    if (read.from === 0) {
      this.pushReadState(index, read.context);
      return;
    }
    const m = this.message(MessageType.ReadIndexResp, read.from, 0);
    m.index = index;
    m.context = read.context;
    this.send(m);
  }

  private pushReadState(index: number, context: Uint8Array): void {
    if (this.readStates === null) this.readStates = [];
    this.readStates.push({ index, context });
  }

  private pushDroppedRead(context: Uint8Array, reason: ReadDropReason): void {
    if (this.droppedReads === null) this.droppedReads = [];
    this.droppedReads.push({ context, reason });
  }

  private rejectForwardedRead(to: NodeId, context: Uint8Array): void {
    const m = this.message(MessageType.ReadIndexResp, to, 0);
    m.reject = true;
    m.context = context;
    this.send(m);
  }

  private forwardedReadAnswered(m: Message): void {
    const list = this.readsForwarded;
    if (list === null) return;
    const at = list.findIndex((r) => sameBytes(r.context, m.context!));
    if (at < 0) return; // dropped already (leader change or timeout)
    const read = list[at]!;
    list.splice(at, 1);
    if (list.length === 0) this.readsForwarded = null;
    if (m.reject) this.pushDroppedRead(read.context, 'not-leader');
    else this.pushReadState(m.index, read.context);
  }

  private expireForwardedReads(): void {
    const list = this.readsForwarded!;
    while (list.length > 0 && this.ticks - list[0]!.tick >= this.electionTicks) {
      const read = list.shift()!;
      this.pushDroppedRead(read.context, 'timeout');
    }
    if (list.length === 0) this.readsForwarded = null;
  }

  /** Leader side: every read not yet confirmed is dropped (forwarded ones are refused). */
  private dropPendingReads(reason: ReadDropReason): void {
    for (const list of [this.readsInRound, this.readsWaiting]) {
      if (list === null) continue;
      for (const read of list) {
        if (read.from === 0) this.pushDroppedRead(read.context, reason);
        else this.rejectForwardedRead(read.from, read.context);
      }
    }
    this.readsInRound = null;
    this.readsWaiting = null;
  }

  private dropForwardedReads(reason: ReadDropReason): void {
    const list = this.readsForwarded;
    if (list === null) return;
    for (const read of list) this.pushDroppedRead(read.context, reason);
    this.readsForwarded = null;
  }

  // ---- Applying committed entries ------------------------------------------------------------

  /** Side effects of handing `entries` to the host: conf changes, budgets, proposal outcomes. */
  private deliverCommitted(entries: Entry[]): void {
    // Settle our proposals among these entries first: a conf change below may remove us.
    this.ledger?.settleCommitted(entries);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.type === EntryType.ConfChange) this.applyConfEntry(e);
      if (this.role === Role.Leader && e.term === this.term) {
        this.uncommittedBytes = Math.max(0, this.uncommittedBytes - entryBytes(e));
      }
    }
  }

  private applyConfEntry(e: Entry): void {
    const cc = decodeConfChange(e.data);
    const result = applyConfChangeTo(this.tracker.conf, cc);
    // The leader validated the change against this very configuration (one change at a time).
    assert(result.ok, 'a committed conf change does not apply to the configuration');
    this.tracker.setConf(result.conf, this.log.lastIndex());
    this.confChanged = true;
    if (!this.tracker.isMember(this.id)) this.ledger?.dropAll('removed');
    if (this.role !== Role.Leader) return;
    if (!this.tracker.isVoter(this.id)) {
      this.handOverAfterRemoval();
      return;
    }
    if (this.transferee !== 0 && !this.tracker.isVoter(this.transferee)) this.transferee = 0;
    this.maybeCommit(); // the quorum changed
    this.appendDirty = true;
  }

  /** This leader left the configuration: step down, letting a caught-up voter take over. */
  private handOverAfterRemoval(): void {
    let best: Progress | undefined;
    for (const pr of this.tracker.progress!) {
      if (pr.isLearner || pr.id === this.id) continue;
      if (best === undefined || pr.match > best.match) best = pr;
    }
    if (best !== undefined && best.match === this.log.lastIndex()) this.sendTimeoutNow(best.id);
    this.becomeFollower(this.term, 0);
  }

  // ---- Proposal outcomes ---------------------------------------------------------------------

  private trackOwnProposal(index: number): void {
    if (this.ledger === null) this.ledger = new ProposalLedger(this.proposalRangesMax);
    this.ledger.track(this.term, index);
  }

  // ---- Sending -------------------------------------------------------------------------------

  private message(type: MessageType, to: NodeId, term: number): Message {
    return {
      type,
      group: this.group,
      from: this.id,
      to,
      term,
      logTerm: 0,
      index: 0,
      entries: noEntries,
      commit: 0,
      reject: false,
      rejectHint: 0,
      logTermHint: 0,
      snapshot: undefined,
      context: undefined,
    };
  }

  /** Queues a message that may leave before the next write is durable. */
  private send(m: Message): void {
    assert(!isResponse(m.type), 'responses wait for persistence');
    if (this.queuedMessages() >= this.messagesQueuedMax) {
      this.messagesDropped++;
      return;
    }
    if (this.msgs === null) this.msgs = [];
    this.msgs.push(m);
  }

  /** Queues a response: it leaves only after the next write is durable. */
  private sendResponse(m: Message): void {
    if (this.queuedMessages() >= this.messagesQueuedMax) {
      this.messagesDropped++;
      return;
    }
    if (this.msgsAfterPersist === null) this.msgsAfterPersist = [];
    this.msgsAfterPersist.push(m);
  }

  private queuedMessages(): number {
    return (this.msgs?.length ?? 0) + (this.msgsAfterPersist?.length ?? 0);
  }
}

const empty = new Uint8Array(0);
const noMessages: Message[] = Object.freeze([]) as unknown as Message[];
const noReadStates: ReadState[] = Object.freeze([]) as unknown as ReadState[];
const noDroppedReads: DroppedRead[] = Object.freeze([]) as unknown as DroppedRead[];
const noDropped: DroppedProposals[] = Object.freeze([]) as unknown as DroppedProposals[];

function validateConfig(c: RaftConfig): void {
  assert(Number.isInteger(c.id) && c.id > 0 && c.id <= 0xffffffff, 'id is a u32 > 0');
  assert(Number.isInteger(c.group) && c.group >= 0 && c.group <= 0xffffffff, 'group is a u32');
  assert(Number.isInteger(c.heartbeatTicks) && c.heartbeatTicks >= 1, 'heartbeatTicks >= 1');
  assert(c.electionTicks > c.heartbeatTicks, 'electionTicks > heartbeatTicks');
  assert(c.leaseMarginTicks >= 1, 'leaseMarginTicks >= 1');
  assert(c.leaseMarginTicks < c.electionTicks, 'leaseMarginTicks < electionTicks');
  assert(c.readOnlyOption !== 'lease' || c.checkQuorum, 'lease reads need checkQuorum');
  assert(c.inflightMsgsMax >= 1, 'inflightMsgsMax >= 1');
  assert(c.inflightBytesMax >= 1, 'inflightBytesMax >= 1');
  assert(c.msgBytesMax >= 1, 'msgBytesMax >= 1');
  assert(c.uncommittedBytesMax >= 1, 'uncommittedBytesMax >= 1');
  assert(c.committedBytesPerReadyMax >= 1, 'committedBytesPerReadyMax >= 1');
  assert(c.readsPendingMax >= 1, 'readsPendingMax >= 1');
  assert(c.messagesQueuedMax >= 1, 'messagesQueuedMax >= 1');
  assert(c.proposalRangesMax >= 1, 'proposalRangesMax >= 1');
}
