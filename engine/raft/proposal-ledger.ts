/**
 * Which proposals made through this node still await their outcome, so that none is ever
 * silent: each is settled as delivered (its entry commits with its term), or reported dropped.
 *
 * A proposal at (index, term) is settled by the committed log, not by truncation: an entry cut
 * from the proposer's log can still commit through another replica that holds it (figure 8 of
 * the Raft paper shows how). So a drop is 'superseded' — definite — only once a committed entry
 * of another term sits at that index; other reasons mean the outcome is unknown.
 *
 * Proposals are kept as ranges, one per run of consecutive indexes in one term (a leadership
 * stint usually makes one), so the ledger stays a few numbers however many proposals there are.
 */
import type { DroppedProposals, DropReason } from './ready.js';
import type { Entry } from './types.js';

/** The proposals of one node awaiting their outcome, and the drops not yet reported. */
export class ProposalLedger {
  // Flat (term, fromIndex, toIndex) triples, oldest first; indexes grow along the list. Only
  // ranges[0, used) is live: the array never shrinks, since emptying it (every commit of a
  // leader's proposals does) gave up its storage and the next proposal allocated it again.
  private readonly ranges: number[] = [];
  private used = 0;
  private drops: DroppedProposals[] | null = null;
  private readonly rangesMax: number;

  /** A ledger tracking at most `rangesMax` ranges (older ones are dropped as 'untracked'). */
  constructor(rangesMax: number) {
    this.rangesMax = rangesMax;
  }

  /** Whether the ledger tracks nothing and has nothing to report. */
  isIdle(): boolean {
    return this.used === 0 && this.drops === null;
  }

  /** Whether drops wait to be reported. */
  hasDrops(): boolean {
    return this.drops !== null;
  }

  /** The drops to report, and forgets them. */
  takeDrops(): DroppedProposals[] | null {
    const drops = this.drops;
    this.drops = null;
    return drops;
  }

  /** Records a proposal accepted at (index, term). */
  track(term: number, index: number): void {
    const ranges = this.ranges;
    const n = this.used;
    if (n > 0 && ranges[n - 3] === term && ranges[n - 1] === index - 1) {
      ranges[n - 1] = index;
      return;
    }
    if (n / 3 >= this.rangesMax) {
      this.drop(ranges[0]!, ranges[1]!, ranges[2]!, 'untracked');
      this.removeRange(0);
    }
    const at = this.used;
    if (at === ranges.length) ranges.push(term, index, index);
    else {
      ranges[at] = term;
      ranges[at + 1] = index;
      ranges[at + 2] = index;
    }
    this.used = at + 3;
  }

  /**
   * Committed entries (consecutive, in order) settle the proposals at their indexes: one took
   * effect iff the committed entry there has its term; otherwise it was superseded.
   */
  settleCommitted(entries: Entry[]): void {
    const ranges = this.ranges;
    const first = entries[0]!.index;
    const last = entries[entries.length - 1]!.index;
    let k = 0;
    while (k < this.used) {
      const term = ranges[k]!;
      const lo = ranges[k + 1]!;
      const hi = ranges[k + 2]!;
      const to = Math.min(hi, last);
      let runStart = 0;
      for (let i = Math.max(lo, first); i <= to; i++) {
        const superseded = entries[i - first]!.term !== term;
        if (superseded && runStart === 0) runStart = i;
        if (!superseded && runStart !== 0) {
          this.drop(term, runStart, i - 1, 'superseded');
          runStart = 0;
        }
      }
      if (runStart !== 0) this.drop(term, runStart, to, 'superseded');
      if (hi <= last) {
        this.removeRange(k);
      } else {
        if (lo <= last) ranges[k + 1] = last + 1;
        k += 3;
      }
    }
  }

  /** A snapshot ending at (index, term) replaced the log: proposals up to it cannot be checked. */
  settleSnapshot(index: number, term: number): void {
    const ranges = this.ranges;
    let k = 0;
    while (k < this.used) {
      const t = ranges[k]!;
      const lo = ranges[k + 1]!;
      const hi = ranges[k + 2]!;
      if (lo > index) {
        k += 3;
        continue;
      }
      // Terms never decrease along a log: a proposal newer than the snapshot's last entry is not
      // in it.
      this.drop(t, lo, Math.min(hi, index), t > term ? 'superseded' : 'snapshot');
      if (hi <= index) {
        this.removeRange(k);
      } else {
        ranges[k + 1] = index + 1;
        k += 3;
      }
    }
  }

  /** Gives up on every proposal (outcome unknown, for `reason`). */
  dropAll(reason: DropReason): void {
    const ranges = this.ranges;
    for (let k = 0; k < this.used; k += 3) {
      this.drop(ranges[k]!, ranges[k + 1]!, ranges[k + 2]!, reason);
    }
    this.used = 0;
  }

  /** Removes the triple at `k` in place (splice allocated the removed part on every commit). */
  private removeRange(k: number): void {
    const ranges = this.ranges;
    for (let i = k + 3; i < this.used; i++) ranges[i - 3] = ranges[i]!;
    this.used -= 3;
  }

  private drop(term: number, fromIndex: number, toIndex: number, reason: DropReason): void {
    if (this.drops === null) this.drops = [];
    this.drops.push({ term, fromIndex, toIndex, reason });
  }
}
