/**
 * A deliberately plain model of a log, written apart from the implementations (which share
 * engine/log/plan.ts): what the property tests compare them with.
 */
import { expect } from 'vitest';
import type { GroupWrite, LogStore } from '../../../engine/log/log-store.js';
import type { Entry, HardState, SnapshotMeta } from '../../../engine/raft/types.js';
import { summary } from './helpers.js';

/** One group of the model. */
export interface ModelGroup {
  compacted: number;
  compactedTerm: number;
  /** entries[k] has index compacted + 1 + k. */
  entries: Entry[];
  hardState: HardState;
  snapshot: SnapshotMeta | undefined;
}

/** The whole model: groups by id. */
export type ModelLog = Map<number, ModelGroup>;

function fresh(): ModelGroup {
  return {
    compacted: 0,
    compactedTerm: 0,
    entries: [],
    hardState: { term: 0, vote: 0, commit: 0 },
    snapshot: undefined,
  };
}

/** A deep copy (entries are immutable and shared). */
export function cloneModel(model: ModelLog): ModelLog {
  const out: ModelLog = new Map();
  for (const [id, g] of model) {
    out.set(id, { ...g, entries: [...g.entries], hardState: { ...g.hardState } });
  }
  return out;
}

/** The model group `id`, created on first use. */
export function modelGroup(model: ModelLog, id: number): ModelGroup {
  let g = model.get(id);
  if (g === undefined) {
    g = fresh();
    model.set(id, g);
  }
  return g;
}

/** Last index of a model group. */
export function modelLast(g: ModelGroup): number {
  return g.compacted + g.entries.length;
}

/** Term of `index` in a model group. */
export function modelTerm(g: ModelGroup, index: number): number | undefined {
  if (index === g.compacted) return g.compactedTerm;
  return g.entries[index - g.compacted - 1]?.term;
}

/** Applies a GroupWrite to the model. */
export function modelWrite(model: ModelLog, w: GroupWrite): void {
  const g = modelGroup(model, w.group);
  if (w.snapshot !== undefined) {
    g.snapshot = w.snapshot;
    g.compacted = w.snapshot.index;
    g.compactedTerm = w.snapshot.term;
    g.entries = [];
  }
  for (const e of w.entries ?? []) {
    if (e.index <= g.compacted) continue;
    g.entries.length = e.index - g.compacted - 1;
    g.entries.push(e);
  }
  if (w.hardState !== undefined) g.hardState = { ...w.hardState };
}

/** truncateSuffix on the model. */
export function modelTruncate(model: ModelLog, id: number, index: number): void {
  const g = modelGroup(model, id);
  if (index <= modelLast(g)) g.entries.length = index - g.compacted - 1;
}

/** compact on the model. */
export function modelCompact(model: ModelLog, id: number, index: number): void {
  const g = modelGroup(model, id);
  if (index <= g.compacted) return;
  g.compactedTerm = modelTerm(g, index)!;
  g.entries = g.entries.slice(index - g.compacted);
  g.compacted = index;
}

function isEmpty(g: ModelGroup): boolean {
  const hs = g.hardState;
  const blank = hs.term === 0 && hs.vote === 0 && hs.commit === 0;
  return modelLast(g) === 0 && g.snapshot === undefined && blank;
}

/** Differences between a log and the model, as text (empty when they agree). */
export function diffLog(log: LogStore, model: ModelLog): string[] {
  const problems: string[] = [];
  const ids = [...model].filter(([, g]) => !isEmpty(g)).map(([id]) => id);
  ids.sort((a, b) => a - b);
  if (JSON.stringify(log.groups()) !== JSON.stringify(ids)) {
    problems.push(`groups ${JSON.stringify(log.groups())} != ${JSON.stringify(ids)}`);
  }
  for (const [id, g] of model) {
    const last = modelLast(g);
    const facts = {
      first: [log.firstIndex(id), g.compacted + 1],
      last: [log.lastIndex(id), last],
      compactedTerm: [log.term(id, g.compacted), g.compactedTerm],
      hardState: [JSON.stringify(log.hardState(id)), JSON.stringify(g.hardState)],
      snapshot: [JSON.stringify(log.snapshot(id)), JSON.stringify(g.snapshot)],
    };
    for (const [name, [got, want]] of Object.entries(facts)) {
      if (got !== want) problems.push(`group ${id} ${name}: ${got} != ${want}`);
    }
    if (log.firstIndex(id) === g.compacted + 1 && log.lastIndex(id) === last) {
      const got = summary(log.entries(id, g.compacted + 1, last + 1, Number.MAX_VALUE));
      if (JSON.stringify(got) !== JSON.stringify(summary(g.entries))) {
        problems.push(`group ${id} entries differ`);
      }
    }
  }
  return problems;
}

/** Asserts that a log equals the model. */
export function expectLogEquals(log: LogStore, model: ModelLog): void {
  expect(diffLog(log, model)).toEqual([]);
}
