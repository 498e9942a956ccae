import { describe, expect, it } from 'vitest';
import type { Command, Session } from '../../../engine/state/commands.js';
import { entry, openState, ShardFeeder } from './helpers.js';

const session = (id: string, seq: number, time = 0): Session => ({ id, seq, time });
const incr = (s: Session): Command => ({ type: 'incr', key: 'n', by: 1, session: s });

describe('client sessions', () => {
  it('a retried request returns the remembered result and is not applied again', () => {
    const f = new ShardFeeder(openState(), 1);
    const first = f.apply(incr(session('c1', 1)));
    const retry = f.apply(incr(session('c1', 1)));
    expect(first).toEqual({ type: 'incr', value: 1, version: 1 });
    expect(retry).toEqual(first);
    expect(f.state.get(1, 'n')).toEqual({ value: 1, version: 1 });
    expect(f.state.appliedIndex(1)).toBe(2);
    expect(f.apply(incr(session('c1', 2)))).toEqual({ type: 'incr', value: 2, version: 3 });
  });

  it('remembers error results too, and the result of a whole batch or user command', () => {
    const f = new ShardFeeder(openState(), 1);
    let runs = 0;
    f.state.defineCommand('count', () => ++runs);
    const exec: Command = { type: 'exec', name: 'count', key: 'k', session: session('c', 1) };
    expect(f.apply(exec)).toEqual({ type: 'exec', value: 1 });
    expect(f.apply(exec)).toEqual({ type: 'exec', value: 1 });
    expect(runs).toBe(1);
    f.apply({ type: 'put', key: 's', value: 'text' });
    const bad: Command = { type: 'incr', key: 's', by: 1, session: session('c', 2) };
    const failed = f.apply(bad);
    expect(failed).toMatchObject({ code: 'WRONG_TYPE' });
    expect(f.apply(bad)).toEqual(failed);
  });

  it('an older request of the session gets SESSION_EXPIRED and changes nothing', () => {
    const f = new ShardFeeder(openState(), 1);
    f.apply(incr(session('c', 1)));
    f.apply(incr(session('c', 2)));
    expect(f.apply(incr(session('c', 1)))).toMatchObject({ code: 'SESSION_EXPIRED' });
    expect(f.state.get(1, 'n')?.value).toBe(2);
  });

  it('sessions are per shard', () => {
    const state = openState();
    const results = state.applyBatch([
      entry(1, 1, incr(session('c', 1))),
      entry(2, 1, incr(session('c', 1))),
      entry(2, 2, incr(session('c', 1))),
    ]);
    expect(results.map((r) => (r as { value: number }).value)).toEqual([1, 1, 1]);
    expect(state.get(2, 'n')?.version).toBe(1);
  });

  it('keeps at most sessionsPerShardMax sessions, evicting the least recently used', () => {
    const f = new ShardFeeder(openState({ limits: { sessionsPerShardMax: 2 } }), 1);
    f.apply(incr(session('a', 1)));
    f.apply(incr(session('b', 1)));
    f.apply(incr(session('a', 2)));
    f.apply(incr(session('c', 1)));
    // 'b' was the least recently used and is gone: its retry applies again (documented).
    expect(f.apply(incr(session('b', 1)))).toMatchObject({ value: 5 });
    // 'c' survives: its retry is still deduplicated.
    expect(f.apply(incr(session('c', 1)))).toMatchObject({ value: 4 });
  });

  it('forgets a session idle for more than sessionExpiryEntries entries', () => {
    const f = new ShardFeeder(openState({ limits: { sessionExpiryEntries: 3 } }), 1);
    f.apply(incr(session('old', 1)));
    f.apply(incr(session('old', 1)));
    for (let i = 0; i < 3; i++) f.apply({ type: 'noop' });
    expect(f.apply(incr(session('new', 1)))).toMatchObject({ value: 2 });
    expect(f.apply(incr(session('old', 1)))).toMatchObject({ value: 3 });
  });

  it('forgets a session idle for longer than sessionExpiryMs of command time', () => {
    const f = new ShardFeeder(openState({ limits: { sessionExpiryMs: 1000 } }), 1);
    f.apply(incr(session('old', 1, 10_000)));
    expect(f.apply(incr(session('old', 1, 10_900)))).toMatchObject({ value: 1 });
    f.apply(incr(session('new', 1, 11_001)));
    expect(f.apply(incr(session('old', 1, 11_002)))).toMatchObject({ value: 3 });
  });

  it('is part of the replicated state: two replicas dedupe identically', () => {
    const a = openState({ limits: { sessionsPerShardMax: 2 } });
    const b = openState({ limits: { sessionsPerShardMax: 2 } });
    const ids = ['x', 'y', 'z', 'x', 'y', 'x', 'z'];
    const items = ids.map((id, i) => entry(1, i + 1, incr(session(id, 1, i))));
    expect(a.applyBatch(items)).toEqual(b.applyBatch(items));
    expect(a.checksum(1)).toBe(b.checksum(1));
  });
});
