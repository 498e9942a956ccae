/**
 * The LogStore conformance suite: one set of behaviours every implementation must show (the
 * segmented file log on real files and on the fault fs, and the in-memory twin).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AssertionError } from '../../../engine/assert.js';
import { ErrorCode, isFlotillaError } from '../../../engine/errors.js';
import type { LogStore } from '../../../engine/log/log-store.js';
import { allEntries, ents, snap, summary } from './helpers.js';

/** How the suite gets logs. */
export interface LogStoreFactory {
  /** A new, empty log. */
  open(): Promise<LogStore>;
  /** Closes `log` and opens the same store again, for persistent implementations. */
  reopen?(log: LogStore): Promise<LogStore>;
}

/** Registers the conformance tests for one implementation. */
export function logStoreConformance(name: string, factory: LogStoreFactory): void {
  describe(`LogStore conformance: ${name}`, () => {
    let log: LogStore | undefined;
    const open = async () => {
      log = await factory.open();
      return log;
    };
    afterEach(async () => {
      await log?.close();
      log = undefined;
    });

    it('a new group is empty: firstIndex 1, lastIndex 0, term(0) = 0', async () => {
      const l = await open();
      expect(l.firstIndex(7)).toBe(1);
      expect(l.lastIndex(7)).toBe(0);
      expect(l.term(7, 0)).toBe(0);
      expect(l.term(7, 1)).toBeUndefined();
      expect(l.hardState(7)).toEqual({ term: 0, vote: 0, commit: 0 });
      expect(l.snapshot(7)).toBeUndefined();
      expect(l.groups()).toEqual([]);
      expect(l.entries(7, 1, 1, 100)).toEqual([]);
    });

    it('appended entries read back with their terms and types', async () => {
      const l = await open();
      const written = [...ents(1, 1, 3, 1), ...ents(1, 4, 6, 2)];
      written[4] = { ...written[4]!, type: 2 };
      await l.append([{ group: 1, entries: written }]);
      expect(l.lastIndex(1)).toBe(6);
      expect(summary(allEntries(l, 1))).toEqual(summary(written));
      expect(l.term(1, 3)).toBe(1);
      expect(l.term(1, 4)).toBe(2);
      expect(l.term(1, 7)).toBeUndefined();
      expect(summary(l.entries(1, 2, 5, Number.MAX_VALUE))).toEqual(summary(written.slice(1, 4)));
    });

    it('maxBytes bounds a read, which still returns at least one entry', async () => {
      const l = await open();
      await l.append([{ group: 1, entries: ents(1, 1, 10, 1, 68) }]);
      expect(l.entries(1, 1, 11, 1)).toHaveLength(1);
      expect(l.entries(1, 1, 11, 100)).toHaveLength(1);
      expect(l.entries(1, 1, 11, 200)).toHaveLength(2);
      expect(l.entries(1, 3, 11, 700)).toHaveLength(7);
      expect(l.entries(1, 3, 11, 5000)).toHaveLength(8);
    });

    it('the latest hard state wins', async () => {
      const l = await open();
      await l.append([{ group: 2, hardState: { term: 1, vote: 3, commit: 0 } }]);
      await l.append([{ group: 2, hardState: { term: 2, vote: 0, commit: 0 } }]);
      expect(l.hardState(2)).toEqual({ term: 2, vote: 0, commit: 0 });
      expect(l.groups()).toEqual([2]);
    });

    it('entries overlapping the tail replace it, as when a new leader overwrites it', async () => {
      const l = await open();
      await l.append([{ group: 1, entries: ents(1, 1, 5, 1) }]);
      await l.append([{ group: 1, entries: ents(1, 3, 4, 2) }]);
      expect(l.lastIndex(1)).toBe(4);
      expect(summary(allEntries(l, 1))).toEqual(
        summary([...ents(1, 1, 2, 1), ...ents(1, 3, 4, 2)]),
      );
    });

    it('entries at or below the compaction point are ignored', async () => {
      const l = await open();
      await l.append([{ group: 1, entries: ents(1, 1, 5, 1) }]);
      await l.compact(1, 3);
      await l.append([{ group: 1, entries: ents(1, 2, 7, 1) }]);
      expect(l.firstIndex(1)).toBe(4);
      expect(summary(allEntries(l, 1))).toEqual(summary(ents(1, 4, 7, 1)));
      await l.append([{ group: 1, entries: ents(1, 1, 2, 1) }]);
      expect(l.lastIndex(1)).toBe(7);
    });

    it('truncateSuffix drops the tail; past lastIndex it does nothing', async () => {
      const l = await open();
      await l.append([{ group: 1, entries: ents(1, 1, 5, 1) }]);
      await l.truncateSuffix(1, 9);
      expect(l.lastIndex(1)).toBe(5);
      await l.truncateSuffix(1, 3);
      expect(l.lastIndex(1)).toBe(2);
      expect(l.term(1, 3)).toBeUndefined();
      await l.append([{ group: 1, entries: ents(1, 3, 3, 4) }]);
      expect(summary(allEntries(l, 1))).toEqual(
        summary([...ents(1, 1, 2, 1), ...ents(1, 3, 3, 4)]),
      );
    });

    it('compaction moves firstIndex and keeps the term of the compaction point', async () => {
      const l = await open();
      await l.append([{ group: 1, entries: [...ents(1, 1, 3, 1), ...ents(1, 4, 6, 2)] }]);
      await l.compact(1, 4);
      expect(l.firstIndex(1)).toBe(5);
      expect(l.term(1, 4)).toBe(2);
      expect(l.term(1, 3)).toBeUndefined();
      expect(summary(allEntries(l, 1))).toEqual(summary(ents(1, 5, 6, 2)));
      await l.compact(1, 2);
      expect(l.firstIndex(1)).toBe(5);
      await l.compact(1, 6);
      expect(l.firstIndex(1)).toBe(7);
      expect(l.lastIndex(1)).toBe(6);
      expect(l.term(1, 6)).toBe(2);
      expect(allEntries(l, 1)).toEqual([]);
    });

    it('a snapshot discards every entry and moves firstIndex past it', async () => {
      const l = await open();
      await l.append([{ group: 3, entries: ents(3, 1, 8, 1) }]);
      await l.append([{ group: 3, snapshot: snap(5, 2) }]);
      expect(l.firstIndex(3)).toBe(6);
      expect(l.lastIndex(3)).toBe(5);
      expect(l.term(3, 5)).toBe(2);
      expect(l.term(3, 6)).toBeUndefined();
      expect(l.snapshot(3)).toEqual(snap(5, 2));
      await l.append([{ group: 3, snapshot: snap(20, 3) }]);
      expect(l.firstIndex(3)).toBe(21);
      expect(l.lastIndex(3)).toBe(20);
    });

    it('a snapshot, the entries after it and a hard state can come in one write', async () => {
      const l = await open();
      await l.append([{ group: 4, entries: ents(4, 1, 3, 1) }]);
      const hardState = { term: 3, vote: 2, commit: 12 };
      await l.append([{ group: 4, snapshot: snap(10, 3), entries: ents(4, 9, 12, 3), hardState }]);
      expect(l.firstIndex(4)).toBe(11);
      expect(summary(allEntries(l, 4))).toEqual(summary(ents(4, 11, 12, 3)));
      expect(l.hardState(4)).toEqual(hardState);
    });

    it('keeps many interleaved groups apart', async () => {
      const l = await open();
      for (let round = 0; round < 5; round++) {
        const writes = [];
        for (let g = 1; g <= 20; g++) {
          writes.push({ group: g, entries: ents(g, round * 3 + 1, round * 3 + 3, 1, 40 + g) });
        }
        await l.append(writes);
      }
      for (let g = 1; g <= 20; g++) {
        expect(summary(allEntries(l, g))).toEqual(summary(ents(g, 1, 15, 1, 40 + g)));
      }
      expect(l.groups()).toEqual(Array.from({ length: 20 }, (_, k) => k + 1));
    });

    it('applies the writes of one call in order, even for the same group', async () => {
      const l = await open();
      await l.append([
        { group: 1, entries: ents(1, 1, 4, 1) },
        { group: 1, entries: ents(1, 3, 5, 2), hardState: { term: 2, vote: 1, commit: 2 } },
        { group: 1, hardState: { term: 2, vote: 1, commit: 4 } },
      ]);
      expect(summary(allEntries(l, 1))).toEqual(
        summary([...ents(1, 1, 2, 1), ...ents(1, 3, 5, 2)]),
      );
      expect(l.hardState(1).commit).toBe(4);
    });

    it('appends to known groups in one call: the same group again, then an overwrite', async () => {
      const l = await open();
      await l.append([
        { group: 1, entries: ents(1, 1, 2, 1) },
        { group: 2, entries: ents(2, 1, 2, 1) },
      ]);
      const calls = [
        l.append([
          { group: 1, entries: ents(1, 3, 4, 1) },
          { group: 2, entries: ents(2, 3, 3, 1) },
          { group: 1, entries: ents(1, 5, 6, 2) },
          { group: 1, entries: ents(1, 6, 7, 3) },
          { group: 3, entries: ents(3, 1, 1, 1) },
        ]),
        // Arrives while the first call's write may be in flight: joins the next one.
        l.append([
          { group: 2, entries: ents(2, 4, 5, 1) },
          { group: 3, entries: ents(3, 2, 2, 1) },
        ]),
      ];
      const bad = [...ents(1, 8, 8, 3), ...ents(1, 9, 9, 2)];
      await expect(l.append([{ group: 1, entries: bad }])).rejects.toThrow(AssertionError);
      await Promise.all(calls);
      expect(summary(allEntries(l, 1))).toEqual(
        summary([...ents(1, 1, 4, 1), ...ents(1, 5, 5, 2), ...ents(1, 6, 7, 3)]),
      );
      expect(summary(allEntries(l, 2))).toEqual(summary(ents(2, 1, 5, 1)));
      expect(summary(allEntries(l, 3))).toEqual(summary(ents(3, 1, 2, 1)));
    });

    it('reads see a write as soon as append returns, before it is durable', async () => {
      const l = await open();
      const done = l.append([{ group: 1, entries: ents(1, 1, 3, 1) }]);
      expect(l.lastIndex(1)).toBe(3);
      expect(summary(allEntries(l, 1))).toEqual(summary(ents(1, 1, 3, 1)));
      await done;
    });

    it('keeps large entries intact', async () => {
      const l = await open();
      const big = ents(1, 1, 6, 1, 3000);
      for (const e of big) await l.append([{ group: 1, entries: [e] }]);
      expect(summary(allEntries(l, 1))).toEqual(summary(big));
    });

    it('treats reads outside the stored range and entry gaps as programmer errors', async () => {
      const l = await open();
      await l.append([{ group: 1, entries: ents(1, 1, 3, 1) }]);
      await l.compact(1, 1);
      expect(() => l.entries(1, 1, 3, 100)).toThrow(AssertionError);
      expect(() => l.entries(1, 2, 5, 100)).toThrow(AssertionError);
      await expect(l.append([{ group: 1, entries: ents(1, 5, 6, 1) }])).rejects.toThrow(
        AssertionError,
      );
      await expect(l.compact(1, 9)).rejects.toThrow(AssertionError);
    });

    it('fails reads and writes with CLOSED after close', async () => {
      const l = await open();
      await l.append([{ group: 1, entries: ents(1, 1, 1, 1) }]);
      await l.close();
      const closed = (err: unknown) => isFlotillaError(err, ErrorCode.CLOSED);
      await expect(l.append([{ group: 1, entries: ents(1, 2, 2, 1) }])).rejects.toSatisfy(closed);
      expect(() => l.lastIndex(1)).toThrow(expect.objectContaining({ code: ErrorCode.CLOSED }));
      log = undefined;
    });

    if (factory.reopen !== undefined) {
      const reopen = factory.reopen;
      it('keeps everything across close and open', async () => {
        let l = await open();
        await l.append([
          { group: 1, entries: ents(1, 1, 6, 1), hardState: { term: 1, vote: 1, commit: 3 } },
          { group: 2, entries: ents(2, 1, 4, 2) },
          { group: 3, snapshot: snap(10, 2), entries: ents(3, 11, 12, 3) },
        ]);
        await l.append([{ group: 2, entries: ents(2, 3, 5, 3) }]);
        await l.compact(1, 2);
        await l.truncateSuffix(1, 6);
        l = await reopen(l);
        log = l;
        expect(l.groups()).toEqual([1, 2, 3]);
        expect(summary(allEntries(l, 1))).toEqual(summary(ents(1, 3, 5, 1)));
        expect(l.term(1, 2)).toBe(1);
        expect(l.hardState(1)).toEqual({ term: 1, vote: 1, commit: 3 });
        expect(summary(allEntries(l, 2))).toEqual(
          summary([...ents(2, 1, 2, 2), ...ents(2, 3, 5, 3)]),
        );
        expect(l.snapshot(3)).toEqual(snap(10, 2));
        expect(l.term(3, 10)).toBe(2);
        expect(summary(allEntries(l, 3))).toEqual(summary(ents(3, 11, 12, 3)));
        const more = l.append([{ group: 1, entries: ents(1, 6, 7, 2) }]);
        expect(summary(allEntries(l, 1))).toEqual(
          summary([...ents(1, 3, 5, 1), ...ents(1, 6, 7, 2)]),
        );
        await more;
      });
    }
  });
}
