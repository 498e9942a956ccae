/**
 * Where each entry of one group lives: index -> (segment, offset, length), plus its term.
 *
 * Memory: an entry's slot is its offset and length, a u32 pair in one typed array (8 B per slot;
 * one array rather than two, so that an append touches one buffer: with many groups appending
 * in turn, every buffer touched is a likely cache miss). Slots grow by 1.5x
 * and shrink (to 1.5x) once less than half full, so a group costs at most 16 B per stored entry
 * (12 B while growing), plus 20 B per run (a maximal range of entries with one term in one
 * segment: start f64, segment u32, term f64) and a fixed ~200 B. Terms change at elections and
 * segments every `segmentBytes`, so runs are few. `memoryBytes()` accounts for every array.
 *
 * Entries are normally appended at lastIndex + 1, dropped from the tail (truncation) and from
 * the front (compaction). Recovery may also place entries out of order, because live records of
 * old segments are rewritten forward (after newer entries of the same group): `place` accepts any
 * index and leaves holes (length 0) that `firstHole()` reports once replay is done.
 */
import { recordHeaderBytes } from '../../wasm/index.js';
import { assert } from '../assert.js';

const slotsMin = 16;
const runsMin = 4;
/** Bytes the fields of an index cost besides its arrays (a rough, fixed allowance). */
const objectOverheadBytes = 160;

/** Receives the bytes of records dropped from a segment. */
export type DropSink = (segment: number, bytes: number) => void;

/** The compact index of one group's entries. */
export class GroupIndex {
  // Invariant: compacted < lo and lo <= last + 1 (lo === compacted + 1 outside recovery).
  private compacted = 0;
  private compactedTerm = 0;
  private lo = 1;
  private last = 0;
  // Entry i (lo <= i <= last) lives in slot i - base. Invariant: base <= lo.
  private base = 1;
  // Slot k is (slots[2k], slots[2k + 1]) = (offset, length).
  private slots = new Uint32Array(2 * slotsMin);
  // Run r covers [runStart[r], runStart[r + 1] - 1]; the last run ends at `last`.
  // Invariant: runCount === 0 iff last < lo; otherwise runStart[0] === lo, starts increase.
  private runStart = new Float64Array(runsMin);
  private runSeg = new Uint32Array(runsMin);
  private runTerm = new Float64Array(runsMin);
  private runCount = 0;
  private lastRun = 0;
  // The segment and term of the last run, kept beside the arrays for the append path.
  // Invariant: when runCount > 0, endSeg === runSeg[runCount - 1], endTerm === runTerm[...].
  private endSeg = 0;
  private endTerm = 0;

  /** The first index stored. */
  get firstIndex(): number {
    return this.compacted + 1;
  }

  /** The last index stored (firstIndex - 1 when none). */
  get lastIndex(): number {
    return this.last;
  }

  /** The compaction point: entries <= it are gone. */
  get compactedIndex(): number {
    return this.compacted;
  }

  /** Term of `index`, known from the compaction point through lastIndex. */
  term(index: number): number | undefined {
    if (index === this.compacted) return this.compactedTerm;
    if (index < this.lo || index > this.last) return undefined;
    return this.runTerm[this.findRun(index)]!;
  }

  /** Segment of a stored entry. */
  segment(index: number): number {
    return this.runSeg[this.findRun(index)]!;
  }

  /** Offset of a stored entry's record in its segment. */
  offset(index: number): number {
    return this.slots[2 * (index - this.base)]!;
  }

  /** Bytes of a stored entry's record (0 for a hole left by recovery). */
  length(index: number): number {
    return this.slots[2 * (index - this.base) + 1]!;
  }

  /** Adds the entry lastIndex + 1. */
  append(index: number, segment: number, offset: number, length: number, term: number): void {
    assert(index === this.last + 1, 'entries are appended at lastIndex + 1');
    assert(length > 0, 'a record has bytes');
    if (this.runCount === 0) this.lo = index;
    this.ensureSlots(this.lo, index);
    const s = 2 * (index - this.base);
    this.slots[s] = offset;
    this.slots[s + 1] = length;
    this.last = index;
    if (this.runCount > 0 && this.endSeg === segment && this.endTerm === term) return;
    this.insertRun(this.runCount, index, segment, term);
  }

  /**
   * Adds entries[from..to) (consecutive indexes from lastIndex + 1, terms never decreasing: the
   * caller checked), whose records lie back to back from `offset` in `segment`: `append` for
   * each, with the slots made room for once.
   */
  appendRun(
    entries: readonly { index: number; term: number; data: Uint8Array }[],
    from: number,
    to: number,
    segment: number,
    offset: number,
  ): void {
    if (from >= to) return;
    const first = entries[from]!.index;
    assert(first === this.last + 1, 'entries are appended at lastIndex + 1');
    if (this.runCount === 0) this.lo = first;
    this.ensureSlots(this.lo, first + (to - from) - 1);
    const slots = this.slots;
    let s = 2 * (first - this.base);
    let at = offset;
    for (let k = from; k < to; k++) {
      const e = entries[k]!;
      const length = recordHeaderBytes + e.data.length;
      slots[s] = at;
      slots[s + 1] = length;
      s += 2;
      at += length;
      if (this.runCount === 0 || this.endSeg !== segment || this.endTerm !== e.term) {
        this.insertRun(this.runCount, e.index, segment, e.term);
      }
    }
    this.last = first + (to - from) - 1;
  }

  /** Recovery: records that entry `index` lives here, wherever it falls. */
  place(index: number, segment: number, offset: number, length: number, term: number): void {
    if (index <= this.compacted) return;
    if (index === this.last + 1 || this.runCount === 0) {
      if (this.runCount === 0) {
        this.lo = index;
        this.last = index - 1;
      }
      this.append(index, segment, offset, length, term);
      return;
    }
    if (index > this.last) {
      this.ensureSlots(this.lo, index);
      this.slots.fill(0, 2 * (this.last + 1 - this.base), 2 * (index - this.base));
      this.last = index;
    } else if (index < this.lo) {
      this.ensureSlots(index, this.last);
      this.slots.fill(0, 2 * (index + 1 - this.base), 2 * (this.lo - this.base));
      this.insertRun(0, index, segment, term);
      this.lo = index;
    }
    this.slots[2 * (index - this.base)] = offset;
    this.slots[2 * (index - this.base) + 1] = length;
    this.assign(index, segment, term);
  }

  /** Drops the entries >= index. */
  truncateFrom(index: number, drop?: DropSink): void {
    if (index > this.last) return;
    const from = Math.max(index, this.lo);
    if (drop !== undefined && from <= this.last) this.reportRange(from, this.last, drop);
    if (index <= this.lo) {
      // Everything goes (recovery may truncate below a hole at the front).
      this.runCount = 0;
      this.last = Math.max(this.compacted, index - 1);
      this.lo = this.last + 1;
    } else {
      const r = this.findRun(index);
      this.runCount = this.runStart[r] === index ? r : r + 1;
      this.last = index - 1;
      this.syncEnd();
    }
    this.maybeShrink();
  }

  /**
   * Drops the entries <= index; `term` is the term of `index` (at the current compaction point
   * it replaces the known term, as a snapshot there does). Beyond lastIndex empties the index.
   */
  compactTo(index: number, term: number, drop?: DropSink): void {
    if (index < this.compacted) return;
    if (index === this.compacted) {
      this.compactedTerm = term;
      return;
    }
    this.compacted = index;
    this.compactedTerm = term;
    if (index >= this.last) {
      if (drop !== undefined && this.runCount > 0) this.reportRange(this.lo, this.last, drop);
      this.runCount = 0;
      this.lo = index + 1;
      this.last = index;
    } else if (index >= this.lo) {
      if (drop !== undefined) this.reportRange(this.lo, index, drop);
      const r = this.findRun(index + 1);
      this.runStart.copyWithin(0, r, this.runCount);
      this.runSeg.copyWithin(0, r, this.runCount);
      this.runTerm.copyWithin(0, r, this.runCount);
      this.runCount -= r;
      this.runStart[0] = index + 1;
      this.syncEnd();
      this.lo = index + 1;
    }
    this.lastRun = 0;
    this.maybeShrink();
  }

  /** Moves entry `index` to a new place if it is still at the old one; says whether it moved. */
  relocate(index: number, from: number, fromOffset: number, to: number, toOffset: number) {
    if (index < this.lo || index > this.last) return false;
    if (this.segment(index) !== from || this.offset(index) !== fromOffset) return false;
    this.slots[2 * (index - this.base)] = toOffset;
    this.assign(index, to, this.term(index)!);
    return true;
  }

  /** Calls `visit` with each range of entries stored in `segment`, in index order. */
  rangesIn(segment: number, visit: (from: number, to: number) => void): void {
    for (let r = 0; r < this.runCount; r++) {
      if (this.runSeg[r] !== segment) continue;
      visit(this.runStart[r]!, this.runEnd(r));
    }
  }

  /** Whether some stored entry lives in `segment`. */
  hasEntriesIn(segment: number): boolean {
    for (let r = 0; r < this.runCount; r++) if (this.runSeg[r] === segment) return true;
    return false;
  }

  /** Reports the bytes of every stored entry, per segment. */
  bytesBySegment(sink: DropSink): void {
    if (this.runCount > 0) this.reportRange(this.lo, this.last, sink);
  }

  /** After recovery: the first index between the compaction point and lastIndex with no entry. */
  firstHole(): number | undefined {
    if (this.last <= this.compacted) return undefined;
    if (this.lo > this.compacted + 1) return this.compacted + 1;
    for (let i = this.lo; i <= this.last; i++) {
      if (this.slots[2 * (i - this.base) + 1] === 0) return i;
    }
    return undefined;
  }

  /** After recovery: the first index whose term is lower than its predecessor's, if any. */
  firstTermDecrease(): number | undefined {
    let prev = this.compactedTerm;
    for (let r = 0; r < this.runCount; r++) {
      if (this.runTerm[r]! < prev) return this.runStart[r]!;
      prev = this.runTerm[r]!;
    }
    return undefined;
  }

  /** Bytes this index holds in memory. */
  memoryBytes(): number {
    return (
      objectOverheadBytes +
      this.slots.byteLength +
      this.runStart.byteLength +
      this.runSeg.byteLength +
      this.runTerm.byteLength
    );
  }

  private runEnd(r: number): number {
    return r + 1 < this.runCount ? this.runStart[r + 1]! - 1 : this.last;
  }

  private findRun(index: number): number {
    const hint = this.lastRun;
    if (hint < this.runCount && this.runStart[hint]! <= index && index <= this.runEnd(hint)) {
      return hint;
    }
    let lo = 0;
    let hi = this.runCount - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.runStart[mid]! <= index) lo = mid;
      else hi = mid - 1;
    }
    this.lastRun = lo;
    return lo;
  }

  private reportRange(from: number, to: number, sink: DropSink): void {
    let r = this.findRun(from);
    let at = from;
    while (at <= to) {
      const end = Math.min(this.runEnd(r), to);
      let bytes = 0;
      for (let i = at; i <= end; i++) bytes += this.slots[2 * (i - this.base) + 1]!;
      if (bytes > 0) sink(this.runSeg[r]!, bytes);
      at = end + 1;
      r++;
    }
  }

  /** Gives index `index` (within [lo, last]) the run (segment, term), splitting runs as needed. */
  private assign(index: number, segment: number, term: number): void {
    const r = this.findRun(index);
    if (this.runSeg[r] === segment && this.runTerm[r] === term) return;
    const start = this.runStart[r]!;
    const end = this.runEnd(r);
    const same = (k: number) =>
      k >= 0 && k < this.runCount && this.runSeg[k] === segment && this.runTerm[k] === term;
    if (index === start && index === end) {
      this.runSeg[r] = segment;
      this.runTerm[r] = term;
      if (same(r + 1)) this.removeRun(r + 1);
      if (same(r - 1)) this.removeRun(r);
    } else if (index === start) {
      this.runStart[r] = index + 1;
      if (!same(r - 1)) this.insertRun(r, index, segment, term);
    } else if (index === end) {
      if (same(r + 1)) this.runStart[r + 1] = index;
      else this.insertRun(r + 1, index, segment, term);
    } else {
      const oldSeg = this.runSeg[r]!;
      const oldTerm = this.runTerm[r]!;
      this.insertRun(r + 1, index, segment, term);
      this.insertRun(r + 2, index + 1, oldSeg, oldTerm);
    }
    this.lastRun = 0;
    this.syncEnd();
  }

  private insertRun(at: number, start: number, segment: number, term: number): void {
    if (this.runCount === this.runStart.length) {
      const cap = this.runCount * 2;
      this.runStart = grow(this.runStart, new Float64Array(cap));
      this.runSeg = grow(this.runSeg, new Uint32Array(cap));
      this.runTerm = grow(this.runTerm, new Float64Array(cap));
    }
    this.runStart.copyWithin(at + 1, at, this.runCount);
    this.runSeg.copyWithin(at + 1, at, this.runCount);
    this.runTerm.copyWithin(at + 1, at, this.runCount);
    this.runStart[at] = start;
    this.runSeg[at] = segment;
    this.runTerm[at] = term;
    this.runCount++;
    this.syncEnd();
  }

  private removeRun(at: number): void {
    this.runStart.copyWithin(at, at + 1, this.runCount);
    this.runSeg.copyWithin(at, at + 1, this.runCount);
    this.runTerm.copyWithin(at, at + 1, this.runCount);
    this.runCount--;
    this.syncEnd();
  }

  private syncEnd(): void {
    if (this.runCount === 0) return;
    this.endSeg = this.runSeg[this.runCount - 1]!;
    this.endTerm = this.runTerm[this.runCount - 1]!;
  }

  /** Makes slots cover [from, to], keeping the slots of [lo, last]. */
  private ensureSlots(from: number, to: number): void {
    const cap = this.slots.length / 2;
    if (from >= this.base && to - this.base < cap) return;
    const needed = to - from + 1;
    this.resize(needed <= cap ? cap : Math.max(slotsMin, Math.ceil(needed * 1.5)), from);
  }

  private maybeShrink(): void {
    const used = Math.max(0, this.last - this.lo + 1);
    const cap = this.slots.length / 2;
    if (cap > slotsMin && used < cap / 2) {
      this.resize(Math.max(slotsMin, Math.ceil(used * 1.5)), this.lo);
    }
  }

  /** Reallocates (or shifts in place) the slots so that slot 0 holds index `newBase`. */
  private resize(cap: number, newBase: number): void {
    const used = Math.max(0, this.last - this.lo + 1);
    const src = this.lo - this.base;
    const dst = this.lo - newBase;
    if (2 * cap === this.slots.length) {
      this.slots.copyWithin(2 * dst, 2 * src, 2 * (src + used));
    } else {
      const slots = new Uint32Array(2 * cap);
      slots.set(this.slots.subarray(2 * src, 2 * (src + used)), 2 * dst);
      this.slots = slots;
    }
    this.base = newBase;
  }
}

function grow<T extends Float64Array | Uint32Array>(from: T, to: T): T {
  to.set(from);
  return to;
}
