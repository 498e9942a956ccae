import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HistoryOp } from '../support/history.js';
import { checkHistory, formatFailure } from '../support/linearizability.js';
import { defaultOptions, type GenerateOptions, generateHistory } from './generate.js';

const shapes: fc.Arbitrary<GenerateOptions> = fc.record({
  ops: fc.integer({ min: 1, max: 60 }),
  clients: fc.integer({ min: 1, max: 6 }),
  keys: fc.integer({ min: 1, max: 4 }),
  batchGroupKeys: fc.integer({ min: 1, max: 3 }),
  versions: fc.boolean(),
  batchChance: fc.constantFrom(0, 0.1, 0.3),
  unknownChance: fc.constantFrom(0, 0.1, 0.3),
  errorChance: fc.constantFrom(0, 0.05),
  uniqueValues: fc.boolean(),
  counter: fc.constant(false),
});

/** Definite single-key reads: the operations a mutation may corrupt. */
function definiteGets(ops: HistoryOp[]): number[] {
  return ops.flatMap((op, i) =>
    op.op === 'get' && op.output.unknown !== true && op.output.error === undefined ? [i] : [],
  );
}

describe('generated histories', () => {
  it('a history produced by a sequential execution is linearizable', () => {
    fc.assert(
      fc.property(fc.integer(), shapes, (seed, shape) => {
        const ops = generateHistory(seed, shape);
        const result = checkHistory(ops);
        expect(result.failures.map(formatFailure)).toEqual([]);
        expect(result.timedOut).toEqual([]);
        expect(result.ok).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('reading a value that was never written makes it non-linearizable', () => {
    fc.assert(
      fc.property(fc.integer(), shapes, fc.nat(), (seed, shape, pick) => {
        const ops = generateHistory(seed, shape);
        const gets = definiteGets(ops);
        fc.pre(gets.length > 0);
        const victim = ops[gets[pick % gets.length]!]!;
        victim.output = { value: 'never-written' };
        const result = checkHistory(ops);
        expect(result.timedOut).toEqual([]);
        expect(result.failures).toHaveLength(1);
        expect(result.failures[0]!.kind).toBe('not-linearizable');
      }),
      { numRuns: 200 },
    );
  });

  it('a busy history with versions, batches and timeouts is linearizable', () => {
    const shape = { ...defaultOptions, ops: 400, clients: 8, keys: 4, unknownChance: 0.05 };
    for (let seed = 1; seed <= 5; seed++) {
      const result = checkHistory(generateHistory(seed, shape));
      expect(result.failures.map(formatFailure)).toEqual([]);
      expect(result.ok).toBe(true);
    }
  });

  it('a counter with many timed-out increments is linearizable', () => {
    const shape = { ...defaultOptions, ops: 300, clients: 10, keys: 1, counter: true };
    for (let seed = 1; seed <= 3; seed++) {
      expect(checkHistory(generateHistory(seed, { ...shape, unknownChance: 0.3 })).ok).toBe(true);
    }
  });

  it('a counter that lost an increment is not, despite timed-out increments', () => {
    const shape = { ...defaultOptions, ops: 300, clients: 10, keys: 1, counter: true };
    for (let seed = 1; seed <= 3; seed++) {
      const ops = generateHistory(seed, { ...shape, unknownChance: 0.1 });
      // The last increment reports the first one's value, which no order allows.
      const incrs = ops.filter((op) => op.op === 'incr' && op.output.value !== undefined);
      incrs[incrs.length - 1]!.output = { value: incrs[0]!.output.value! };
      const result = checkHistory(ops);
      expect(result.timedOut).toEqual([]);
      expect(result.failures).toHaveLength(1);
    }
  });
});
