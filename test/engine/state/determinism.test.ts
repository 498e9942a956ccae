import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ApplyItem } from '../../../engine/state/apply.js';
import type { BatchOp, Command } from '../../../engine/state/commands.js';
import type { KvState, KvStateOptions } from '../../../engine/state/kv-state.js';
import { entry, openState } from './helpers.js';

const shards = [0, 1, 2];
const key = fc.constantFrom('a', 'b', 'c', 'n');
const value = fc.oneof(
  fc.integer({ min: -5, max: 5 }),
  fc.constantFrom('s', null, true),
  fc.uint8Array({ maxLength: 3 }),
  fc.record({ x: fc.integer({ min: 0, max: 3 }) }),
);
const op: fc.Arbitrary<BatchOp> = fc.oneof(
  fc.record({ type: fc.constant('put' as const), key, value }),
  fc.record({ type: fc.constant('delete' as const), key }),
  fc.record({ type: fc.constant('incr' as const), key, by: fc.integer({ min: -3, max: 3 }) }),
  fc.record({
    type: fc.constant('cas' as const),
    key,
    expected: fc.oneof(
      fc.record({ version: fc.integer({ min: 0, max: 6 }) }),
      fc.record({ value }),
    ),
    value,
  }),
);
const session = fc.option(
  fc.record({
    id: fc.constantFrom('p', 'q', 'r'),
    seq: fc.integer({ min: 1, max: 4 }),
    time: fc.integer({ min: 0, max: 3000 }),
  }),
  { nil: undefined },
);
const command: fc.Arbitrary<Command | 'garbage'> = fc.oneof(
  fc.tuple(op, session).map(([o, s]) => ({ ...o, session: s })),
  fc
    .tuple(fc.array(op, { maxLength: 4 }), session)
    .map(([ops, s]) => ({ type: 'batch' as const, ops, session: s })),
  fc.tuple(key, fc.integer(), session).map(([k, n, s]) => ({
    type: 'exec' as const,
    name: 'swap',
    key: k,
    args: n,
    session: s,
  })),
  fc.constant({ type: 'noop' as const }),
  fc.constant('garbage' as const),
);

/** The entries of a random history: commands spread over the shards in log order. */
const history = fc
  .array(fc.tuple(fc.constantFrom(...shards), command), { maxLength: 60 })
  .map((steps) => {
    const next = new Map<number, number>();
    return steps.map(([shard, cmd]): ApplyItem => {
      const index = (next.get(shard) ?? 0) + 1;
      next.set(shard, index);
      if (cmd === 'garbage') return { shard, index, term: 1, data: new Uint8Array([0x92, 9]) };
      return entry(shard, index, cmd);
    });
  });

const options: Partial<KvStateOptions> = {
  limits: { sessionsPerShardMax: 2, sessionExpiryMs: 2000, changesMax: 4 },
};

function replica(): KvState {
  const state = openState(options);
  state.defineCommand('swap', (tx, k, args) => {
    const old = tx.get(k) ?? null;
    if (typeof args === 'number' && args % 7 === 0) throw new Error('refused');
    tx.put(k, args ?? null);
    tx.put('b', old);
    return old;
  });
  return state;
}

function applyInSlices(state: KvState, items: ApplyItem[], cuts: number[]) {
  const results = [];
  let from = 0;
  for (const cut of [...cuts, items.length].sort((x, y) => x - y)) {
    results.push(...state.applyBatch(items.slice(from, Math.max(from, cut))));
    from = Math.max(from, cut);
  }
  return results;
}

describe('determinism', () => {
  it('replicas fed the same entries in any batching give equal results and checksums', async () => {
    await fc.assert(
      fc.asyncProperty(history, fc.array(fc.nat(60), { maxLength: 5 }), async (items, cuts) => {
        const a = replica();
        const b = replica();
        const resultsA = a.applyBatch(items);
        const resultsB = applyInSlices(b, items, cuts);
        expect(resultsB).toEqual(resultsA);
        for (const shard of shards) {
          expect(b.checksum(shard)).toBe(a.checksum(shard));
          expect([...b.scan(shard)]).toEqual([...a.scan(shard)]);
        }
        // A replay of everything is skipped and changes nothing.
        expect(b.applyBatch(items).every((r) => r.type === 'skipped')).toBe(true);
        // A third replica catches up from a snapshot of shard 1 and agrees too.
        const c = replica();
        await c.installSnapshot(1, a.exportSnapshot(1));
        expect(c.checksum(1)).toBe(a.checksum(1));
        await Promise.all([a.close(), b.close(), c.close()]);
      }),
      { numRuns: 40 },
    );
  });
});
