/**
 * Membership and quorum arithmetic of one group (etcd's tracker + quorum packages): who votes,
 * who learns, and — while this node leads — each peer's Progress. Decisions of a joint
 * configuration need a majority of the incoming voters AND of the outgoing voters.
 */
import { assert } from './assert.js';
import { Progress } from './progress.js';
import type { ConfState, NodeId } from './types.js';

/** The outcome of an election so far. */
export const VoteResult = { Pending: 0, Won: 1, Lost: 2 } as const;
/** See {@link VoteResult}. */
export type VoteResult = (typeof VoteResult)[keyof typeof VoteResult];

/** Which per-peer number a quorum question is about. */
const Field = { Match: 0, AckSeq: 1, AckTick: 2 } as const;
type Field = (typeof Field)[keyof typeof Field];

// One scratch buffer for quorum sorting, shared by every group (the core is single-threaded).
const scratch: number[] = [];

/** The value that a majority of the `n` values in scratch[0, n) reach (descending pick). */
function majorityValue(n: number): number {
  if (n === 0) return Number.POSITIVE_INFINITY; // an empty config agrees with anything
  for (let i = 1; i < n; i++) {
    const v = scratch[i]!;
    let j = i - 1;
    while (j >= 0 && scratch[j]! < v) {
      scratch[j + 1] = scratch[j]!;
      j--;
    }
    scratch[j + 1] = v;
  }
  return scratch[(n >> 1) + 1 - 1]!;
}

function fieldOf(pr: Progress, field: Field): number {
  if (field === Field.Match) return pr.match;
  if (field === Field.AckSeq) return pr.ackSeq;
  return pr.ackTick;
}

function tally(voters: NodeId[], granted: NodeId[], rejected: NodeId[]): VoteResult {
  if (voters.length === 0) return VoteResult.Won;
  let yes = 0;
  let no = 0;
  for (const id of voters) {
    if (granted.includes(id)) yes++;
    else if (rejected.includes(id)) no++;
  }
  const quorum = (voters.length >> 1) + 1;
  if (yes >= quorum) return VoteResult.Won;
  if (voters.length - no < quorum) return VoteResult.Lost;
  return VoteResult.Pending;
}

/** Membership plus, while leading, the progress of every member. */
export class Tracker {
  /** The configuration in force (owned: never shared with the host). */
  conf: ConfState;
  /** Every member's progress while this node leads; null otherwise. */
  progress: Progress[] | null = null;

  /** A tracker in configuration `conf` (taken over, not copied). */
  constructor(conf: ConfState) {
    this.conf = conf;
  }

  /** Whether `id` votes in the incoming or the outgoing configuration. */
  isVoter(id: NodeId): boolean {
    return this.conf.voters.includes(id) || this.conf.votersOutgoing.includes(id);
  }

  /** Whether `id` is a member at all (voter or learner). */
  isMember(id: NodeId): boolean {
    return (
      this.isVoter(id) || this.conf.learners.includes(id) || this.conf.learnersNext.includes(id)
    );
  }

  /** Every voter of both configurations, once each, ascending. */
  voterIds(): NodeId[] {
    const ids = this.conf.voters.slice();
    for (const id of this.conf.votersOutgoing) if (!ids.includes(id)) ids.push(id);
    return ids.sort((a, b) => a - b);
  }

  /** Every member, once each, ascending. */
  memberIds(): NodeId[] {
    const ids = this.voterIds();
    for (const id of this.conf.learners) if (!ids.includes(id)) ids.push(id);
    for (const id of this.conf.learnersNext) if (!ids.includes(id)) ids.push(id);
    return ids.sort((a, b) => a - b);
  }

  /** Starts tracking progress (this node became leader with log ending at `lastIndex`). */
  startLeading(lastIndex: number): void {
    this.progress = this.memberIds().map((id) => new Progress(id, lastIndex + 1));
    this.flagMembers();
  }

  /** Stops tracking progress (this node no longer leads). */
  stopLeading(): void {
    this.progress = null;
  }

  /**
   * Switches to configuration `conf`. While leading, keeps the progress of members that stay and
   * starts new members at `lastIndex + 1`, marked recently active so that CheckQuorum gives them
   * an election timeout to answer.
   */
  setConf(conf: ConfState, lastIndex: number): void {
    this.conf = conf;
    if (this.progress === null) return;
    const old = this.progress;
    this.progress = this.memberIds().map((id) => {
      const kept = old.find((pr) => pr.id === id);
      if (kept !== undefined) return kept;
      const pr = new Progress(id, lastIndex + 1);
      pr.recentActive = true;
      return pr;
    });
    this.flagMembers();
  }

  private flagMembers(): void {
    for (const pr of this.progress!) {
      pr.inIncoming = this.conf.voters.includes(pr.id);
      pr.inOutgoing = this.conf.votersOutgoing.includes(pr.id);
      pr.isLearner = !pr.inIncoming && !pr.inOutgoing;
    }
  }

  /** The progress of `id`, undefined if it is not a member (or this node does not lead). */
  get(id: NodeId): Progress | undefined {
    const list = this.progress;
    if (list === null) return undefined;
    for (let i = 0; i < list.length; i++) if (list[i]!.id === id) return list[i];
    return undefined;
  }

  private quorumValue(field: Field): number {
    const list = this.progress;
    assert(list !== null, 'quorum question without progress');
    let n = 0;
    for (let i = 0; i < list.length; i++) {
      if (list[i]!.inIncoming) scratch[n++] = fieldOf(list[i]!, field);
    }
    const incoming = majorityValue(n);
    n = 0;
    for (let i = 0; i < list.length; i++) {
      if (list[i]!.inOutgoing) scratch[n++] = fieldOf(list[i]!, field);
    }
    return Math.min(incoming, majorityValue(n));
  }

  /** The highest index a quorum has in its log (joint: both quorums). */
  committedIndex(): number {
    return this.quorumValue(Field.Match);
  }

  /** The highest heartbeat round a quorum has echoed. */
  quorumAckSeq(): number {
    return this.quorumValue(Field.AckSeq);
  }

  /** The newest send tick of a heartbeat that a quorum has echoed. */
  quorumAckTick(): number {
    return this.quorumValue(Field.AckTick);
  }

  /** Whether a quorum answered since the last check (self counts as active). */
  quorumActive(selfId: NodeId): boolean {
    const list = this.progress;
    assert(list !== null, 'quorumActive without progress');
    const granted: NodeId[] = [];
    for (const pr of list) if (pr.recentActive || pr.id === selfId) granted.push(pr.id);
    return this.voteResult(granted, []) === VoteResult.Won;
  }

  /** The election outcome given the voters that granted and those that refused. */
  voteResult(granted: NodeId[], rejected: NodeId[]): VoteResult {
    const incoming = tally(this.conf.voters, granted, rejected);
    const outgoing = tally(this.conf.votersOutgoing, granted, rejected);
    if (incoming === VoteResult.Won && outgoing === VoteResult.Won) return VoteResult.Won;
    if (incoming === VoteResult.Lost || outgoing === VoteResult.Lost) return VoteResult.Lost;
    return VoteResult.Pending;
  }
}
