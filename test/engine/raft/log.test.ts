/**
 * The log view of the core (RaftLog over MemoryRaftStorage) and the inflight window of Progress.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Progress, ProgressState } from '../../../engine/raft/progress.js';
import { RaftLog } from '../../../engine/raft/raft-log.js';
import { entryBytes, MemoryRaftStorage } from '../../../engine/raft/storage.js';
import { type Entry, EntryType } from '../../../engine/raft/types.js';

function entries(terms: number[], from = 1): Entry[] {
  return terms.map((term, k) => ({
    term,
    index: from + k,
    type: EntryType.Normal,
    data: new Uint8Array(8),
  }));
}

describe('MemoryRaftStorage', () => {
  it('appending at an index already held replaces the suffix', () => {
    const s = new MemoryRaftStorage();
    s.append(entries([1, 1, 1, 1]));
    s.append(entries([2, 2], 3));
    expect(s.lastIndex()).toBe(4);
    expect([1, 2, 3, 4].map((i) => s.term(i))).toEqual([1, 1, 2, 2]);
    expect(() => s.append(entries([3], 9))).toThrow(/gap/);
  });

  it('compaction keeps the term of the compaction point and records a snapshot', () => {
    const s = new MemoryRaftStorage();
    s.append(entries([1, 1, 2, 2, 3]));
    const conf = {
      voters: [1],
      votersOutgoing: [],
      learners: [],
      learnersNext: [],
      autoLeave: false,
    };
    s.compact(3, conf);
    expect(s.firstIndex()).toBe(4);
    expect(s.term(3)).toBe(2);
    expect(s.term(2)).toBeUndefined();
    expect(s.snapshot()).toEqual({ index: 3, term: 2, conf });
    expect(s.entries(4, 6, 1e9).map((e) => e.index)).toEqual([4, 5]);
  });

  it('entries stop at the byte limit but always return one', () => {
    const s = new MemoryRaftStorage();
    s.append(entries([1, 1, 1, 1]));
    const one = entryBytes(entries([1])[0]!);
    expect(s.entries(1, 5, 0)).toHaveLength(1);
    expect(s.entries(1, 5, 2 * one)).toHaveLength(2);
    expect(s.entries(1, 5, 2 * one + 1)).toHaveLength(2);
  });
});

describe('RaftLog', () => {
  it('reads across the durable log and the unstable tail', () => {
    const s = new MemoryRaftStorage();
    s.append(entries([1, 1, 1]));
    const log = new RaftLog(s, 0, 0);
    log.appendOne(entries([2], 4)[0]!);
    log.appendOne(entries([2], 5)[0]!);
    expect(log.lastIndex()).toBe(5);
    expect(log.durableLastIndex()).toBe(3);
    expect(log.slice(2, 6, 1e9).map((e) => e.term)).toEqual([1, 1, 2, 2]);
    expect(log.slice(2, 6, entryBytes(entries([1])[0]!) * 3).map((e) => e.index)).toEqual([
      2, 3, 4,
    ]);
  });

  it('a conflicting append truncates the tail and is reported', () => {
    const s = new MemoryRaftStorage();
    s.append(entries([1, 1, 1, 1]));
    const log = new RaftLog(s, 1, 1);
    expect(log.maybeAppend(2, 1, 3, entries([2, 2], 3))).toBe(4);
    expect(log.conflictIndex).toBe(3);
    expect(log.term(3)).toBe(2);
    expect(log.committed).toBe(3);
    expect(log.maybeAppend(4, 9, 4, [])).toBe(-1); // no entry 4 of term 9
  });

  it('findConflictByTerm skips entries newer than the hinted term', () => {
    const s = new MemoryRaftStorage();
    s.append(entries([1, 1, 3, 3, 3, 5, 5]));
    const log = new RaftLog(s, 0, 0);
    expect(log.findConflictByTerm(7, 4)).toBe(5);
    expect(log.findConflictByTerm(7, 2)).toBe(2);
    expect(log.findConflictByTerm(7, 0)).toBe(0);
  });
});

describe('Progress inflight window', () => {
  it('tracks messages and bytes like a FIFO and frees by acknowledged index', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 500 })), { maxLength: 300 }),
        fc.integer({ min: 1, max: 20 }),
        (ops, window) => {
          const pr = new Progress(2, 1);
          pr.becomeReplicate();
          const model: Array<[number, number]> = [];
          let last = 0;
          for (const [send, n] of ops) {
            if (send && !pr.isPaused(window, Number.POSITIVE_INFINITY)) {
              last += 1 + (n % 5);
              pr.sentEntries(last, n, window);
              model.push([last, n]);
            } else if (!send) {
              const ack = last - (n % 7);
              pr.freeInflightsTo(ack);
              while (model.length > 0 && model[0]![0] <= ack) model.shift();
            }
            expect(pr.inflightCount).toBe(model.length);
            expect(pr.inflightBytes).toBe(model.reduce((a, [, b]) => a + b, 0));
            expect(pr.inflightCount).toBeLessThanOrEqual(window);
          }
        },
      ),
    );
  });

  it('a probe sends one App at a time; a snapshot pauses everything', () => {
    const pr = new Progress(2, 5);
    expect(pr.state).toBe(ProgressState.Probe);
    expect(pr.isPaused(8, 1e9)).toBe(false);
    pr.sentEntries(7, 10, 8);
    expect(pr.isPaused(8, 1e9)).toBe(true);
    expect(pr.maybeDecrTo(4, 2)).toBe(true); // the answer to the outstanding probe
    expect(pr.next).toBe(3);
    pr.becomeSnapshot(20);
    expect(pr.isPaused(8, 1e9)).toBe(true);
    pr.becomeProbe();
    expect(pr.next).toBe(21);
  });
});

/** A MemoryRaftStorage that counts the entry reads served from it. */
class CountingStorage extends MemoryRaftStorage {
  reads = 0;
  override entries(lo: number, hi: number, maxBytes: number): Entry[] {
    this.reads++;
    return super.entries(lo, hi, maxBytes);
  }
}

/** Persists the log's unstable tail as a host does: storage first, then stableWritten. */
function persist(log: RaftLog, storage: MemoryRaftStorage): void {
  const written = log.unstableEntries();
  storage.append(written);
  log.stableWritten(written);
}

describe('RaftLog retention of durable unapplied entries', () => {
  it('hands out entries just made durable without reading them back from storage', () => {
    const s = new CountingStorage();
    const log = new RaftLog(s, 0, 0, 1e6);
    for (const e of entries([1, 1, 1])) log.appendOne(e);
    persist(log, s);
    log.commitTo(3);
    const committed = log.nextCommittedEntries(1e9);
    expect(committed.map((e) => e.index)).toEqual([1, 2, 3]);
    expect(s.reads).toBe(0);
    log.appliedTo(3);
    // Applied entries are forgotten: an older range comes from storage again.
    expect(log.slice(2, 4, 1e9).map((e) => e.index)).toEqual([2, 3]);
    expect(s.reads).toBe(1);
  });

  it('empties itself beyond its byte cap, and storage serves instead', () => {
    const s = new CountingStorage();
    const one = entryBytes(entries([1])[0]!);
    const log = new RaftLog(s, 0, 0, one * 2);
    for (const e of entries([1, 1, 1])) log.appendOne(e);
    persist(log, s);
    log.commitTo(3);
    expect(log.nextCommittedEntries(1e9).map((e) => e.index)).toEqual([1, 2, 3]);
    expect(s.reads).toBe(1);
  });

  it('serves what storage holds through appends, truncations, persists and applies', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('propose' as const), n: fc.integer({ min: 1, max: 4 }) }),
      fc.record({
        kind: fc.constant('replace' as const),
        back: fc.integer({ min: 0, max: 5 }),
        n: fc.integer({ min: 0, max: 3 }),
      }),
      fc.record({ kind: fc.constant('persist' as const) }),
      fc.record({ kind: fc.constant('commit' as const), n: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ kind: fc.constant('apply' as const), bytes: fc.integer({ min: 1, max: 400 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), fc.integer({ min: 0, max: 600 }), (ops, cap) => {
        const sa = new MemoryRaftStorage();
        const sb = new MemoryRaftStorage();
        const a = new RaftLog(sa, 0, 0, cap);
        const b = new RaftLog(sb, 0, 0, 0);
        let term = 1;
        for (const o of ops) {
          if (o.kind === 'propose') {
            for (const e of entries(new Array(o.n).fill(term), a.lastIndex() + 1)) {
              a.appendOne(e);
              b.appendOne(e);
            }
          } else if (o.kind === 'replace') {
            // A new leader's entries replace an uncommitted suffix (as a follower sees it).
            const at = Math.max(a.committed + 1, a.lastIndex() + 1 - o.back);
            term++;
            const news = entries(new Array(o.n).fill(term), at);
            const prevTerm = a.term(at - 1) ?? 0;
            expect(a.maybeAppend(at - 1, prevTerm, a.committed, news)).toBe(
              b.maybeAppend(at - 1, prevTerm, b.committed, news),
            );
          } else if (o.kind === 'persist') {
            persist(a, sa);
            persist(b, sb);
          } else if (o.kind === 'commit') {
            const to = Math.min(a.committed + o.n, a.lastIndex());
            a.commitTo(to);
            b.commitTo(to);
          } else {
            const ca = a.nextCommittedEntries(o.bytes);
            expect(ca).toEqual(b.nextCommittedEntries(o.bytes));
            const last = ca[ca.length - 1];
            if (last !== undefined) {
              a.appliedTo(last.index);
              b.appliedTo(last.index);
            }
          }
          const lo = a.firstIndex();
          expect(a.slice(lo, a.lastIndex() + 1, 1e9)).toEqual(b.slice(lo, b.lastIndex() + 1, 1e9));
        }
      }),
      { numRuns: 300 },
    );
  });
});
