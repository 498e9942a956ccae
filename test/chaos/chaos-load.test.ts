/**
 * The chaos load's bookkeeping without processes: how a failed call is recorded (unknown
 * outcome or definite failure) and what the lost-write check accepts.
 */
import { describe, expect, it } from 'vitest';
import { FlotillaError } from '../../engine/errors.js';
import { get, put, unknown } from '../linearizability/ops.js';
import { checkHistory } from '../support/linearizability.js';
import { HistoryRecorder, lostWrites } from './chaos-load.js';

function failing(err: Error): () => Promise<never> {
  return () => Promise.reject(err);
}

describe('HistoryRecorder', () => {
  it('records a write that timed out with outcome unknown as unknown', async () => {
    const recorder = new HistoryRecorder();
    const timeout = new FlotillaError('TIMEOUT', 'no answer', { outcome: 'unknown' });
    const output = await recorder.record('c0', { op: 'put', key: 'k', value: 1 }, failing(timeout));
    expect(output).toEqual({ unknown: true, error: 'TIMEOUT' });
    expect(recorder.counts.unknown).toBe(1);
    expect(recorder.counts.codes.get('TIMEOUT')).toBe(1);
  });

  it('records a write that surely did not apply, and any failed read, as a definite error', async () => {
    const recorder = new HistoryRecorder();
    const refused = new FlotillaError('TIMEOUT', 'not served', { outcome: 'not-applied' });
    await recorder.record('c0', { op: 'put', key: 'k', value: 1 }, failing(refused));
    const lost = new FlotillaError('TIMEOUT', 'no answer', { outcome: 'unknown' });
    await recorder.record('c0', { op: 'get', key: 'k' }, failing(lost));
    expect(recorder.ops.map((o) => o.output)).toEqual([{ error: 'TIMEOUT' }, { error: 'TIMEOUT' }]);
    expect(recorder.counts).toMatchObject({ ops: 2, errors: 2, unknown: 0, acked: 0 });
  });

  it('treats a failure without a stated outcome as unknown (it may have applied)', async () => {
    const recorder = new HistoryRecorder();
    const gone = new FlotillaError('UNAVAILABLE', 'connection lost');
    const output = await recorder.record('c0', { op: 'incr', key: 'n' }, failing(gone));
    expect(output.unknown).toBe(true);
  });

  it('lets a programming error through instead of recording it', async () => {
    const recorder = new HistoryRecorder();
    const bug = new TypeError('not a store error');
    await expect(recorder.record('c0', { op: 'get', key: 'k' }, failing(bug))).rejects.toBe(bug);
  });
});

describe('lostWrites', () => {
  it('reports a key that does not hold its last acknowledged put', () => {
    const ops = [put('c0', 0, 1, 'own', 1), put('c0', 2, 3, 'own', 2)];
    const result = lostWrites(ops, new Map([['own', 1]]));
    expect(result.checked).toBe(1);
    expect(result.lost).toEqual(['own: read 1, expected 2']);
  });

  it('accepts the value of any put with an unknown outcome, even one called earlier', () => {
    // The timed-out put may still be on its way and take effect after the acknowledged one.
    const ops = [put('c0', 0, 1, 'own', 1, unknown), put('c0', 2, 3, 'own', 2)];
    expect(lostWrites(ops, new Map([['own', 1]])).lost).toEqual([]);
    expect(lostWrites(ops, new Map([['own', 2]])).lost).toEqual([]);
    expect(lostWrites(ops, new Map([['own', 3]])).lost).toHaveLength(1);
    // The linearizability checker agrees that the early timeout may land last.
    expect(checkHistory([...ops, get('f', 4, 5, 'own', 1)]).ok).toBe(true);
  });

  it('skips keys without an acknowledged put', () => {
    const ops = [put('c0', 0, 1, 'own', 1, unknown)];
    expect(lostWrites(ops, new Map([['own', undefined]]))).toEqual({ checked: 0, lost: [] });
  });
});
