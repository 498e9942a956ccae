import { describe, expect, it } from 'vitest';
import { checkHistory } from '../support/linearizability.js';
import { defaultOptions, generateHistory } from './generate.js';

describe('checker scale', () => {
  const history = generateHistory(2024, {
    ...defaultOptions,
    ops: 2000,
    clients: 10,
    keys: 50,
    batchGroupKeys: 2,
  });

  it('checks a 2,000-op history over 50 keys and 10 clients to a verdict', () => {
    const result = checkHistory(history);
    expect(result.timedOut).toEqual([]);
    expect(result.failures).toEqual([]);
    expect(result.ok).toBe(true);
    expect(result.partitions).toBe(25);
  });

  it('reports partitions that exceed a tiny step budget as timed out, not as verdicts', () => {
    const result = checkHistory(history, { stepsMax: 3 });
    expect(result.ok).toBe(false);
    expect(result.failures).toEqual([]);
    expect(result.timedOut.length).toBeGreaterThan(0);
    for (const t of result.timedOut) expect(t.steps).toBe(3);
  });
});
