/**
 * What a leader knows about one peer's log (etcd's tracker.Progress), with the inflight window
 * that bounds pipelined AppendEntries in messages and bytes. Progress objects exist only while
 * the node leads; a follower keeps none, so idle groups stay small.
 */
import { assert } from './assert.js';

/** How the leader replicates to a peer. */
export const ProgressState = {
  /** Unknown match: one App at a time, waiting for its answer (or a heartbeat response). */
  Probe: 0,
  /** Known match: Apps are pipelined optimistically, bounded by the inflight window. */
  Replicate: 1,
  /** The peer needs a snapshot; nothing is sent until the host reports its fate. */
  Snapshot: 2,
} as const;
/** See {@link ProgressState}. */
export type ProgressState = (typeof ProgressState)[keyof typeof ProgressState];

/** Names of the progress states, for status output. */
export const progressStateNames = ['probe', 'replicate', 'snapshot'] as const;

/** One peer's replication progress, seen from the leader. */
export class Progress {
  /** The peer. */
  readonly id: number;
  // Invariant: match < next; in Replicate, every inflight lastIndex is in [match + 1, next - 1].
  /** Highest index known to be in the peer's log (durably, since AppResp follows persistence). */
  match = 0;
  /** Next index to send. */
  next: number;
  /** See {@link ProgressState}. */
  state: ProgressState = ProgressState.Probe;
  /** In Snapshot: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Whether the peer answered since the last CheckQuorum round. */
  recentActive = false;
  /** In Probe: an App is outstanding, so no other is sent. */
  probeSent = false;
  /** Non-voting member. */
  isLearner = false;
  /** Voter of the incoming (current) configuration. */
  inIncoming = false;
  /** Voter of the outgoing configuration (joint consensus only). */
  inOutgoing = false;
  /** Highest commit index sent to the peer in an App. */
  sentCommit = 0;
  /** Highest heartbeat round sequence the peer echoed (ReadIndex confirmation). */
  ackSeq = 0;
  /** The leader's tick when it sent the newest heartbeat the peer echoed (leader lease). */
  ackTick = Number.NEGATIVE_INFINITY;
  // Inflight ring: (lastIndex, bytes) pairs at ring[2k], ring[2k + 1]; grown on demand up to the
  // window so that peers that never pipeline cost nothing.
  private ring: number[] | null = null;
  private ringStart = 0;
  /** Apps in flight. */
  inflightCount = 0;
  /** Entry bytes in flight. */
  inflightBytes = 0;

  /** A peer whose next index is `next`. */
  constructor(id: number, next: number) {
    this.id = id;
    this.next = next;
  }

  /** Switches to Probe (after a rejection, an unreachable report or a snapshot). */
  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      this.next = Math.max(this.match + 1, this.pendingSnapshot + 1);
      this.pendingSnapshot = 0;
    } else {
      this.next = this.match + 1;
    }
    this.state = ProgressState.Probe;
    this.probeSent = false;
    this.resetInflights();
  }

  /** Switches to Replicate once the match is known. */
  becomeReplicate(): void {
    this.state = ProgressState.Replicate;
    this.next = this.match + 1;
    this.probeSent = false;
    this.resetInflights();
  }

  /** Switches to Snapshot: a snapshot at `index` is on its way. */
  becomeSnapshot(index: number): void {
    this.state = ProgressState.Snapshot;
    this.pendingSnapshot = index;
    this.probeSent = false;
    this.resetInflights();
  }

  /** The peer has everything up to `index`; returns whether that was news. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    if (this.next < index + 1) this.next = index + 1;
    return updated;
  }

  /**
   * The peer rejected an App whose previous index was `rejected`; `matchHint` is the highest
   * index that may still match (from the term hint). Returns false for a stale rejection.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      // Pipelined Apps may be rejected out of order; only one above the match means divergence.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In Probe only the answer to the outstanding App counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Whether the leader must hold Apps back from this peer. */
  isPaused(windowMsgs: number, windowBytes: number): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflightCount >= windowMsgs || this.inflightBytes >= windowBytes;
      default:
        return true;
    }
  }

  /** Records an App carrying entries up to `lastIndex` (`bytes` of them) sent to the peer. */
  sentEntries(lastIndex: number, bytes: number, windowMsgs: number): void {
    if (this.state === ProgressState.Replicate) {
      if (bytes > 0) {
        this.next = lastIndex + 1;
        this.addInflight(lastIndex, bytes, windowMsgs);
      }
    } else if (this.state === ProgressState.Probe) {
      this.probeSent = true;
    }
  }

  private addInflight(lastIndex: number, bytes: number, windowMsgs: number): void {
    let ring = this.ring;
    const slots = ring === null ? 0 : ring.length >> 1;
    if (this.inflightCount === slots) {
      assert(slots < windowMsgs, 'an App was sent through a full inflight window');
      // Grow (doubling, capped at the window) and unroll the ring so that it starts at 0.
      const grown: number[] = new Array(2 * Math.min(windowMsgs, Math.max(4, slots * 2)));
      for (let k = 0; k < this.inflightCount; k++) {
        const at = 2 * ((this.ringStart + k) % slots);
        grown[2 * k] = ring![at]!;
        grown[2 * k + 1] = ring![at + 1]!;
      }
      ring = grown;
      this.ring = grown;
      this.ringStart = 0;
    }
    const at = 2 * ((this.ringStart + this.inflightCount) % (ring!.length >> 1));
    ring![at] = lastIndex;
    ring![at + 1] = bytes;
    this.inflightCount++;
    this.inflightBytes += bytes;
  }

  /** Frees every inflight App whose last index is <= `index` (the peer acknowledged them). */
  freeInflightsTo(index: number): void {
    const ring = this.ring;
    if (ring === null) return;
    const slots = ring.length >> 1;
    while (this.inflightCount > 0) {
      const at = 2 * this.ringStart;
      if (ring[at]! > index) break;
      this.inflightBytes -= ring[at + 1]!;
      this.ringStart = (this.ringStart + 1) % slots;
      this.inflightCount--;
    }
    if (this.inflightCount === 0) this.ringStart = 0;
  }

  /** Frees the oldest inflight App (a heartbeat answer proves the peer alive: probe onwards). */
  freeFirstInflight(): void {
    const ring = this.ring;
    if (ring === null || this.inflightCount === 0) return;
    this.freeInflightsTo(ring[2 * this.ringStart]!);
  }

  private resetInflights(): void {
    this.inflightCount = 0;
    this.inflightBytes = 0;
    this.ringStart = 0;
  }
}
