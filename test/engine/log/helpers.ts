/**
 * Small builders shared by the log tests: entries whose data is derived from (group, index,
 * term), so any read can be checked against what was written.
 */
import type { LogStore } from '../../../engine/log/log-store.js';
import type { ConfState, Entry, SnapshotMeta } from '../../../engine/raft/types.js';

/** Deterministic data for entry (group, index, term), `size` bytes long. */
export function entryData(group: number, index: number, term: number, size = 16): Uint8Array {
  const out = new Uint8Array(size);
  let x = (group * 2654435761 + index * 40503 + term * 97) >>> 0;
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Entries [from, to] of `group` in `term`, each `size` bytes of data. */
export function ents(group: number, from: number, to: number, term: number, size = 16): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) {
    out.push({ index: i, term, type: 1, data: entryData(group, i, term, size) });
  }
  return out;
}

/** A membership for snapshots. */
export const conf: ConfState = {
  voters: [1, 2, 3],
  votersOutgoing: [],
  learners: [4],
  learnersNext: [],
  autoLeave: false,
};

/** A snapshot at (index, term). */
export function snap(index: number, term: number): SnapshotMeta {
  return { index, term, conf };
}

/** Entry summary for comparisons: [index, term, type, data bytes]. */
export function summary(entries: readonly Entry[]): [number, number, number, number[]][] {
  return entries.map((e) => [e.index, e.term, e.type, [...e.data]]);
}

/** Every entry of a group, read in one go. */
export function allEntries(log: LogStore, group: number): Entry[] {
  return log.entries(group, log.firstIndex(group), log.lastIndex(group) + 1, Number.MAX_VALUE);
}
