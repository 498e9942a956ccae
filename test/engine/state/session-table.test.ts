import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFlotillaError } from '../../../engine/errors.js';
import { stateFormatVersion } from '../../../engine/limits.js';
import type { ApplyItem } from '../../../engine/state/apply.js';
import type { Command, CommandResult, Session } from '../../../engine/state/commands.js';
import type { KvStateOptions } from '../../../engine/state/kv-state.js';
import {
  closeState,
  entry,
  openError,
  openState,
  ShardFeeder,
  stateDirOfFormat,
  tempDir,
} from './helpers.js';

const limits = { sessionsPerShardMax: 3, sessionExpiryEntries: 6, sessionExpiryMs: 50 };
const shards = [0, 1, 2];

/** One step of a history: a counter increment with or without a session, or a no-op. */
type Step =
  | { shard: number; kind: 'noop' }
  | { shard: number; kind: 'incr'; session: Session | undefined };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ shard: fc.constantFrom(...shards), kind: fc.constant('noop' as const) }),
  fc.record({
    shard: fc.constantFrom(...shards),
    kind: fc.constant('incr' as const),
    session: fc.option(
      fc.record({
        id: fc.constantFrom('a', 'b', 'c', 'd', 'e'),
        seq: fc.integer({ min: 1, max: 4 }),
        // Proposers' clocks disagree: command time is not monotonic in the log.
        time: fc.integer({ min: 0, max: 200 }),
      }),
      { nil: undefined },
    ),
  }),
);

function commandOf(s: Step): Command {
  if (s.kind === 'noop') return { type: 'noop' };
  return { type: 'incr', key: 'n', by: 1, session: s.session };
}

function itemsOf(steps: Step[]): ApplyItem[] {
  const next = new Map<number, number>();
  return steps.map((s) => {
    const index = (next.get(s.shard) ?? 0) + 1;
    next.set(s.shard, index);
    return entry(s.shard, index, commandOf(s));
  });
}

interface ModelSession {
  seq: number;
  index: number;
  time: number;
  result: CommandResult;
}

/**
 * The session table as specified, written the plain way: per command, forget the least recently
 * used session while it is idle too long, judge, remember, evict beyond the bound.
 */
class Model {
  private readonly tables = new Map<number, Map<string, ModelSession>>();
  private readonly counters = new Map<number, number>();

  apply(s: Step, index: number): Partial<CommandResult> {
    if (s.kind === 'noop') return { type: 'noop' };
    const session = s.session;
    if (session === undefined) return this.incr(s.shard, index);
    const table = this.tables.get(s.shard) ?? new Map<string, ModelSession>();
    this.tables.set(s.shard, table);
    for (let oldest = lru(table); oldest !== undefined; oldest = lru(table)) {
      const [id, last] = oldest;
      const idle =
        index - last.index > limits.sessionExpiryEntries ||
        session.time - last.time > limits.sessionExpiryMs;
      if (!idle) break;
      table.delete(id);
    }
    const id = String(session.id);
    const known = table.get(id);
    if (known !== undefined && session.seq === known.seq) return known.result;
    if (known !== undefined && session.seq < known.seq) {
      return { type: 'error', code: 'SESSION_EXPIRED' };
    }
    const result = this.incr(s.shard, index);
    table.set(id, { seq: session.seq, index, time: session.time, result });
    while (table.size > limits.sessionsPerShardMax) table.delete(lru(table)![0]);
    return result;
  }

  private incr(shard: number, index: number): CommandResult {
    const value = (this.counters.get(shard) ?? 0) + 1;
    this.counters.set(shard, value);
    return { type: 'incr', value, version: index };
  }
}

function lru(table: Map<string, ModelSession>): [string, ModelSession] | undefined {
  let oldest: [string, ModelSession] | undefined;
  for (const pair of table)
    if (oldest === undefined || pair[1].index < oldest[1].index) oldest = pair;
  return oldest;
}

function expected(steps: Step[]): Partial<CommandResult>[] {
  const model = new Model();
  const next = new Map<number, number>();
  return steps.map((s) => {
    const index = (next.get(s.shard) ?? 0) + 1;
    next.set(s.shard, index);
    return model.apply(s, index);
  });
}

/** Results without error messages, to compare with the model. */
function shapeOf(result: CommandResult): Partial<CommandResult> {
  return result.type === 'error' ? { type: 'error', code: result.code } : result;
}

describe('session table', () => {
  it('gives the specified verdicts in any batching, across restarts and mirror evictions', async () => {
    const cuts = fc.array(fc.record({ at: fc.nat(80), restart: fc.boolean() }), { maxLength: 6 });
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 80 }), cuts, async (steps, splits) => {
        const items = itemsOf(steps);
        const whole = openState({ limits });
        const resultsWhole = whole.applyBatch(items).map(shapeOf);
        expect(resultsWhole).toEqual(expected(steps));
        // A replica that batches differently, restarts, and mirrors one shard's table at a time.
        const options: Partial<KvStateOptions> = {
          dir: tempDir(),
          limits: { ...limits, sessionTablesMirroredMax: 1 },
        };
        let split = openState(options);
        const resultsSplit: CommandResult[] = [];
        let from = 0;
        for (const { at, restart } of [...splits].sort((x, y) => x.at - y.at)) {
          const to = Math.min(Math.max(from, at), items.length);
          resultsSplit.push(...split.applyBatch(items.slice(from, to)));
          from = to;
          if (restart) {
            await closeState(split);
            split = openState(options);
          }
        }
        resultsSplit.push(...split.applyBatch(items.slice(from)));
        expect(resultsSplit.map(shapeOf)).toEqual(resultsWhole);
        for (const shard of shards) expect(split.checksum(shard)).toBe(whole.checksum(shard));
        await Promise.all([closeState(whole), closeState(split)]);
      }),
      { numRuns: 60 },
    );
  });

  it('a shard that installs a snapshot judges by the installed sessions', async () => {
    const source = new ShardFeeder(openState({ limits }), 1);
    const target = new ShardFeeder(openState({ limits }), 1);
    const incr = (id: string, seq: number): Command => ({
      type: 'incr',
      key: 'n',
      by: 1,
      session: { id, seq, time: 0 },
    });
    source.apply(incr('a', 1));
    source.apply(incr('b', 1));
    // The target's own table (mirrored by now) knows 'c' and a later 'a'.
    target.apply(incr('c', 1));
    target.apply(incr('a', 5));
    await target.state.installSnapshot(1, source.state.exportSnapshot(1));
    // 'a' retried at seq 1 is a duplicate by the source's table, not stale by the target's.
    expect(target.apply(incr('a', 1))).toEqual({ type: 'incr', value: 1, version: 1 });
    // 'c' is unknown to the installed table: applied.
    expect(target.apply(incr('c', 1))).toEqual({ type: 'incr', value: 3, version: 4 });
    source.apply(incr('a', 1));
    source.apply(incr('c', 1));
    expect(target.state.checksum(1)).toBe(source.state.checksum(1));
  });

  it('a restarted node remembers its sessions and their order of use', async () => {
    const dir = tempDir();
    const options = { dir, limits: { ...limits, sessionsPerShardMax: 2 } };
    const incr = (id: string, seq: number): Command => ({
      type: 'incr',
      key: 'n',
      by: 1,
      session: { id, seq, time: 0 },
    });
    let f = new ShardFeeder(openState(options), 1);
    f.apply(incr('a', 1));
    f.apply(incr('b', 1));
    f.apply(incr('a', 2));
    await closeState(f.state);
    f = new ShardFeeder(openState(options), 1);
    expect(f.apply(incr('a', 2))).toEqual({ type: 'incr', value: 3, version: 3 });
    expect(f.apply(incr('a', 1))).toMatchObject({ code: 'SESSION_EXPIRED' });
    // 'b' is the least recently used: a new session evicts it, and its retry applies again.
    f.apply(incr('c', 1));
    expect(f.apply(incr('b', 1))).toEqual({ type: 'incr', value: 5, version: 7 });
  });

  it('an apply batch that fails leaves the session table as it was', () => {
    const state = openState({ limits });
    const incr: Command = { type: 'incr', key: 'n', by: 1, session: { id: 'a', seq: 1, time: 0 } };
    // Entry 3 after entry 1 breaks the shard's log order: the whole transaction rolls back.
    expect(() => state.applyBatch([entry(1, 1, incr), entry(1, 3, incr)])).toThrow(/follows/);
    expect(state.appliedIndex(1)).toBe(0);
    expect(state.applyBatch([entry(1, 1, incr)])).toEqual([{ type: 'incr', value: 1, version: 1 }]);
    expect(state.applyBatch([entry(1, 2, incr)])).toEqual([{ type: 'incr', value: 1, version: 1 }]);
  });

  it('a dropped shard starts over with no sessions', () => {
    const state = openState({ limits });
    const incr: Command = { type: 'incr', key: 'n', by: 1, session: { id: 'a', seq: 1, time: 0 } };
    state.applyBatch([entry(1, 1, incr), entry(1, 2, incr)]);
    state.dropShard(1);
    expect(state.applyBatch([entry(1, 1, incr)])).toEqual([{ type: 'incr', value: 1, version: 1 }]);
    expect(state.get(1, 'n')?.value).toBe(1);
  });

  it('refuses a state directory of the format that kept an age index (VERSION_MISMATCH)', async () => {
    const error = openError(await stateDirOfFormat(1, ['ages']));
    expect(isFlotillaError(error, 'VERSION_MISMATCH')).toBe(true);
    expect((error as Error).message).toContain(`format 1; this build reads ${stateFormatVersion}`);
  });
});
