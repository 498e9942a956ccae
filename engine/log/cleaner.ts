/**
 * Reclaiming disk: the oldest segment (the head) is deleted once none of its records is live
 * and the records that made them dead are durable; and, when the log holds more than
 * `cleanSlackSegments` segments beyond what its live records need, the head's live records are
 * copied forward to the tail (rate-limited by a token bucket) so that an idle or slow group
 * cannot pin old segments. A copy takes over from the original (the index and the segments'
 * live bytes move) once it is written, and only if the original is still live then.
 *
 * Copies are replayed correctly by recovery because they are identical to live records and come
 * after every record that could void them: an entry copy is a placement at an index that is
 * already in place, a hard state / snapshot / compaction copy repeats the latest one.
 */
import type { RecordInput } from '../../wasm/index.js';
import type { Entry, GroupId } from '../raft/types.js';
import { RecordType } from '../records.js';
import { encodeConfState, encodeVote, segmentHeaderBytes } from './format.js';
import type { GroupState, RecordLoc } from './group-state.js';
import type { Segment, SegmentTable } from './segments.js';

/** Which live record of a group a copy replaces. */
export type RelocationKind = 'entry' | 'hardState' | 'snapshot' | 'compaction';

/** A copy of a live record, and the place of the original it takes over from. */
export interface Relocation {
  group: GroupState;
  kind: RelocationKind;
  /** The entry's index (entries only). */
  index: number;
  from: RecordLoc;
  to: RecordLoc;
}

/** What the cleaner needs from the log. */
export interface CleanerHost {
  readonly segments: SegmentTable;
  group(id: GroupId): GroupState | undefined;
  /** The segment appends go to; it and later ones are never cleaned. */
  tailSeq(): number;
  /** Log positions queued, written and made durable so far. */
  enqueuedLsn(): number;
  writtenLsn(): number;
  syncedLsn(): number;
  /** Queues `record` at the tail as a copy taking over from `from`. */
  copy(record: RecordInput, relocation: Omit<Relocation, 'to'>): RecordLoc;
  /** Entries from..to-1 of a group from cache or disk, at least one, within `budget` bytes. */
  readEntries(g: GroupState, from: number, to: number, budget: number, out: Entry[]): number;
  /** Moves the live bytes of a record from its old place to its copy's. */
  moveLive(from: RecordLoc, to: RecordLoc): void;
  /** The groups with live records in segment `seq`. */
  groupsLiveIn(seq: number): GroupId[];
}

/** How the cleaner is tuned. */
export interface CleanerOptions {
  segmentBytes: number;
  rewriteBytesPerSec: number;
  rewriteBurstBytes: number;
  cleanSlackSegments: number;
  now: () => number;
}

function sameLoc(a: RecordLoc | undefined, b: RecordLoc): boolean {
  return a !== undefined && a.segment === b.segment && a.offset === b.offset;
}

/** The cleaner of one log; see the module comment. */
export class Cleaner {
  private tokens: number;
  private tokensAt: number;
  /** Copies are in flight until the log is written up to here. */
  private rewriteLsn = -1;
  private rewritten = 0;

  constructor(
    private readonly host: CleanerHost,
    private readonly options: CleanerOptions,
  ) {
    this.tokens = options.rewriteBurstBytes;
    this.tokensAt = options.now();
  }

  /** Bytes of live records copied forward so far. */
  get rewrittenBytes(): number {
    return this.rewritten;
  }

  /** Deletes dead head segments, then queues copies from the head if the log is too big. */
  async clean(rewrite: boolean): Promise<void> {
    while (this.headDeletable()) await this.host.segments.deleteHead();
    this.rewrite(rewrite);
  }

  /** Whether the head segment can be deleted now (what `clean` would await). */
  headDeletable(): boolean {
    const head = this.host.segments.headSegment;
    if (head === undefined || head.seq >= this.host.tailSeq() || head.live > 0) return false;
    return this.host.syncedLsn() >= Math.max(head.deadLsn, head.endLsn);
  }

  /** The part of `clean` that does no I/O: queues copies from the head if the log is too big. */
  rewrite(rewrite: boolean): void {
    if (rewrite && this.host.writtenLsn() >= this.rewriteLsn) this.rewriteHead();
  }

  /** Applies the copies of a chunk that has just been written. */
  applyRelocations(relocations: readonly Relocation[]): void {
    for (const r of relocations) {
      const g = r.group;
      let moved = false;
      switch (r.kind) {
        case 'entry':
          moved = g.index.relocate(
            r.index,
            r.from.segment,
            r.from.offset,
            r.to.segment,
            r.to.offset,
          );
          break;
        case 'hardState':
          moved = sameLoc(g.hardStateAt, r.from);
          if (moved) g.hardStateAt = r.to;
          break;
        case 'snapshot':
          moved = sameLoc(g.snapshotAt, r.from);
          if (moved) g.snapshotAt = r.to;
          break;
        case 'compaction':
          moved = sameLoc(g.compactionAt, r.from);
          if (moved) g.compactionAt = r.to;
          break;
      }
      if (moved) this.host.moveLive(r.from, r.to);
    }
  }

  private rewriteHead(): void {
    const { segments } = this.host;
    const head = segments.headSegment;
    const tailSeq = this.host.tailSeq();
    if (head === undefined || head.seq >= tailSeq || head.live === 0) return;
    const usable = this.options.segmentBytes - segmentHeaderBytes;
    const needed = Math.ceil(segments.liveBytes / usable) + this.options.cleanSlackSegments;
    if (tailSeq - head.seq <= needed) return;
    const now = this.options.now();
    const refill = ((now - this.tokensAt) / 1000) * this.options.rewriteBytesPerSec;
    this.tokens = Math.min(this.options.rewriteBurstBytes, this.tokens + refill);
    this.tokensAt = now;
    let taken = 0;
    head.groups ??= new Set(this.host.groupsLiveIn(head.seq));
    for (const id of [...head.groups]) {
      if (taken >= this.tokens) break;
      const g = this.host.group(id);
      const copied = g === undefined ? 0 : this.copyGroup(g, head, this.tokens - taken);
      if (copied === 0) head.groups.delete(id);
      taken += copied;
    }
    this.tokens -= taken;
    this.rewritten += taken;
    if (taken > 0) this.rewriteLsn = this.host.enqueuedLsn();
  }

  /** Queues copies of a group's live records in `head` (up to about `budget` bytes). */
  private copyGroup(g: GroupState, head: Segment, budget: number): number {
    let taken = 0;
    const copy = (kind: RelocationKind, from: RecordLoc, record: RecordInput, index = 0) => {
      taken += this.host.copy(record, { group: g, kind, index, from }).bytes;
    };
    const seq = head.seq;
    const none: Uint8Array = new Uint8Array(0);
    const mark = (type: number, term: number, index: number, payload = none): RecordInput => ({
      type,
      group: g.id,
      term,
      index,
      payload,
    });
    if (g.snapshotAt?.segment === seq && g.snapshot !== undefined) {
      const { index, term, conf } = g.snapshot;
      copy(
        'snapshot',
        g.snapshotAt,
        mark(RecordType.SnapshotMarker, term, index, encodeConfState(conf)),
      );
    }
    if (g.compactionAt?.segment === seq) {
      const index = g.index.compactedIndex;
      copy(
        'compaction',
        g.compactionAt,
        mark(RecordType.CompactionPoint, g.index.term(index)!, index),
      );
    }
    if (g.hardStateAt?.segment === seq) {
      const hs = g.hardState;
      copy(
        'hardState',
        g.hardStateAt,
        mark(RecordType.HardState, hs.term, hs.commit, encodeVote(hs.vote)),
      );
    }
    const ranges: [number, number][] = [];
    g.index.rangesIn(seq, (from, to) => ranges.push([from, to]));
    for (const [from, to] of ranges) {
      for (let i = from; i <= to && taken < budget; ) {
        const block: Entry[] = [];
        this.host.readEntries(g, i, to + 1, budget - taken, block);
        for (const e of block) {
          const loc = {
            segment: seq,
            offset: g.index.offset(e.index),
            bytes: g.index.length(e.index),
          };
          copy('entry', loc, mark(e.type, e.term, e.index, e.data), e.index);
        }
        i += block.length;
      }
    }
    return taken;
  }
}
