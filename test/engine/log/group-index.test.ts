import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GroupIndex } from '../../../engine/log/group-index.js';
import { SegmentedLog } from '../../../engine/log/segmented-log.js';
import { FaultFs } from '../../support/fault-fs.js';
import { ents } from './helpers.js';

/** Appends `count` entries: a new segment every 1000 entries, a new term every 5000. */
function fill(index: GroupIndex, count: number): void {
  for (let i = 1; i <= count; i++) {
    const seg = 1 + Math.floor(i / 1000);
    index.append(i, seg, (i % 1000) * 40, 40, 1 + Math.floor(i / 5000));
  }
}

describe('GroupIndex', () => {
  it('costs at most 16 bytes per entry by its own accounting, 12 while growing', () => {
    const index = new GroupIndex();
    fill(index, 200_000);
    expect(index.memoryBytes() / 200_000).toBeLessThanOrEqual(12);
    index.compactTo(150_000, index.term(150_000)!);
    expect(index.memoryBytes() / 50_000).toBeLessThanOrEqual(16);
    index.truncateFrom(180_000);
    expect(index.memoryBytes() / 30_000).toBeLessThanOrEqual(16);
    expect(index.lastIndex).toBe(179_999);
    expect(index.term(179_999)).toBe(36);
    expect(index.segment(179_999)).toBe(180);
    expect(index.offset(179_999)).toBe(999 * 40);
  });

  it('keeps the log index under 16 bytes per entry in a real log', async () => {
    const log = await SegmentedLog.open({
      dir: '/log',
      fs: new FaultFs({ seed: 1 }),
      segmentBytes: 1024 * 1024,
      cacheBytesMax: 0,
    });
    for (let round = 0; round < 50; round++) {
      const writes = [1, 2, 3, 4].map((g) => ({
        group: g,
        entries: ents(g, round * 500 + 1, round * 500 + 500, 1 + (round >> 3), 8),
      }));
      await log.append(writes);
    }
    const stats = log.stats();
    expect(stats.indexedEntries).toBe(100_000);
    expect(stats.indexBytes / stats.indexedEntries).toBeLessThanOrEqual(16);
    await log.close();
  });

  it('indexes a run as entry-by-entry appends do, terms changing within it', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ bump: fc.boolean(), size: fc.integer({ min: 0, max: 50 }) }), {
          minLength: 1,
          maxLength: 60,
        }),
        fc.integer({ min: 0, max: 59 }),
        (shape, split) => {
          let term = 1;
          const entries = shape.map((e, k) => {
            if (e.bump) term++;
            return { index: k + 1, term, type: 1 as const, data: new Uint8Array(e.size) };
          });
          const one = new GroupIndex();
          const run = new GroupIndex();
          let offset = 100;
          for (const e of entries) {
            one.append(e.index, 3, offset, 32 + e.data.length, e.term);
            offset += 32 + e.data.length;
          }
          const cut = Math.min(split, entries.length);
          run.appendRun(entries, 0, cut, 3, 100);
          const rest = entries.slice(0, cut).reduce((at, e) => at + 32 + e.data.length, 100);
          run.appendRun(entries, cut, entries.length, 3, rest);
          expect(run.lastIndex).toBe(one.lastIndex);
          for (const e of entries) {
            expect(run.term(e.index)).toBe(one.term(e.index));
            expect(run.offset(e.index)).toBe(one.offset(e.index));
            expect(run.length(e.index)).toBe(one.length(e.index));
            expect(run.segment(e.index)).toBe(3);
          }
          expect(run.memoryBytes()).toBe(one.memoryBytes());
        },
      ),
    );
  });

  it('reports the bytes it drops per segment', () => {
    const index = new GroupIndex();
    fill(index, 2500);
    const dropped = new Map<number, number>();
    const sink = (seg: number, bytes: number) => dropped.set(seg, (dropped.get(seg) ?? 0) + bytes);
    index.compactTo(1500, index.term(1500)!, sink);
    expect(Object.fromEntries(dropped)).toEqual({ 1: 999 * 40, 2: 501 * 40 });
    dropped.clear();
    index.truncateFrom(2200, sink);
    expect(Object.fromEntries(dropped)).toEqual({ 3: 301 * 40 });
  });

  it('relocates an entry only from where it still is', () => {
    const index = new GroupIndex();
    fill(index, 10);
    expect(index.relocate(5, 1, 200, 9, 64)).toBe(true);
    expect([index.segment(5), index.offset(5), index.segment(4), index.segment(6)]).toEqual([
      9, 64, 1, 1,
    ]);
    expect(index.relocate(5, 1, 200, 9, 64)).toBe(false);
    expect(index.relocate(6, 2, 240, 9, 96)).toBe(false);
  });

  it('recovery may place entries in any order; holes are reported', () => {
    const index = new GroupIndex();
    index.place(5, 3, 0, 40, 2);
    index.place(6, 3, 40, 40, 2);
    expect(index.firstHole()).toBe(1);
    index.place(2, 4, 0, 40, 1);
    index.place(1, 4, 40, 40, 1);
    expect(index.firstHole()).toBe(3);
    index.place(3, 4, 80, 40, 1);
    index.place(4, 4, 120, 40, 1);
    expect(index.firstHole()).toBeUndefined();
    expect([1, 2, 3, 4, 5, 6].map((i) => index.term(i))).toEqual([1, 1, 1, 1, 2, 2]);
    expect([1, 2, 5].map((i) => index.segment(i))).toEqual([4, 4, 3]);
    expect(index.firstTermDecrease()).toBeUndefined();
  });

  it('answers like a plain array under random operations', () => {
    type Op =
      | { kind: 'append'; count: number; seg: number; term: number }
      | { kind: 'truncate'; back: number }
      | { kind: 'compact'; ahead: number }
      | { kind: 'relocate'; back: number; seg: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        kind: fc.constant('append' as const),
        count: fc.integer({ min: 1, max: 40 }),
        seg: fc.integer({ min: 1, max: 4 }),
        term: fc.integer({ min: 0, max: 1 }),
      }),
      fc.record({ kind: fc.constant('truncate' as const), back: fc.integer({ min: 0, max: 30 }) }),
      fc.record({ kind: fc.constant('compact' as const), ahead: fc.integer({ min: 0, max: 30 }) }),
      fc.record({
        kind: fc.constant('relocate' as const),
        back: fc.integer({ min: 0, max: 30 }),
        seg: fc.integer({ min: 5, max: 6 }),
      }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const index = new GroupIndex();
        let compacted = 0;
        let compactedTerm = 0;
        let term = 1;
        const model: { seg: number; off: number; term: number }[] = [];
        const at = (i: number) => model[i - compacted - 1]!;
        for (const o of ops) {
          const last = compacted + model.length;
          if (o.kind === 'append') {
            term += o.term;
            for (let k = 1; k <= o.count; k++) {
              const e = { seg: o.seg, off: (last + k) * 8, term };
              index.append(last + k, e.seg, e.off, 8, e.term);
              model.push(e);
            }
          } else if (o.kind === 'truncate' && last - o.back > compacted) {
            index.truncateFrom(last - o.back);
            model.length = last - o.back - compacted - 1;
          } else if (o.kind === 'compact' && compacted + o.ahead <= last && o.ahead > 0) {
            const c = compacted + o.ahead;
            compactedTerm = at(c).term;
            index.compactTo(c, compactedTerm);
            model.splice(0, o.ahead);
            compacted = c;
          } else if (o.kind === 'relocate' && last - o.back > compacted) {
            const i = last - o.back;
            const e = at(i);
            expect(index.relocate(i, e.seg, e.off, o.seg, e.off + 1)).toBe(true);
            e.seg = o.seg;
            e.off += 1;
          }
        }
        expect(index.firstIndex).toBe(compacted + 1);
        expect(index.lastIndex).toBe(compacted + model.length);
        expect(index.term(compacted)).toBe(compactedTerm);
        for (let i = compacted + 1; i <= compacted + model.length; i++) {
          const e = at(i);
          expect([index.segment(i), index.offset(i), index.term(i)]).toEqual([
            e.seg,
            e.off,
            e.term,
          ]);
        }
      }),
      { numRuns: 300 },
    );
  });
});
