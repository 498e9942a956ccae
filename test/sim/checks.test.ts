/**
 * The simulator's safety checks on hand-built states: each flags the violation it is for, and
 * stays quiet on the correct neighbour of that state.
 */
import { describe, expect, it } from 'vitest';
import { MemoryLogStore } from '../../engine/log/memory-log.js';
import { type Entry, EntryType } from '../../engine/raft/types.js';
import type { Change } from '../../engine/state/change-feed.js';
import { encodeCommand } from '../../engine/state/commands.js';
import { type CheckedNode, SafetyChecker } from '../support/sim/checks.js';
import { Trace } from '../support/sim/trace.js';

const shard = 1;

function put(key: string, value: string, client: string, seq: number): Uint8Array {
  return encodeCommand({ type: 'put', key, value, session: { id: client, seq, time: 0 } });
}

function entry(index: number, term: number, data: Uint8Array = new Uint8Array(0)): Entry {
  return { index, term, type: EntryType.Normal, data };
}

/** A node whose log of shard 1 holds `entries` with durable commit index `commit`. */
async function node(id: number, entries: Entry[], commit: number): Promise<CheckedNode> {
  const log = new MemoryLogStore();
  const term = entries[entries.length - 1]?.term ?? 0;
  await log.append([{ group: shard, entries, hardState: { term, vote: 0, commit } }]);
  return {
    id,
    groups: [{ group: shard, voters: [1, 2, 3] }],
    log,
    host: undefined,
    state: undefined,
  };
}

function change(index: number, key: string, value: string): Change {
  return { shard, index, key: Buffer.from(key), type: 'put', value, version: index };
}

function checker(): SafetyChecker {
  return new SafetyChecker(new Trace(() => 0));
}

describe('safety checks', () => {
  it('flags a committed entry that a replica lacking it could be elected without (Figure 8)', async () => {
    // n1 committed (2, t2) by counting n1 and n2; n3 holds (2, t3) and n2 would vote for it.
    const n1 = await node(1, [entry(1, 1), entry(2, 2)], 2);
    const n2 = await node(2, [entry(1, 1), entry(2, 2)], 1);
    const n3 = await node(3, [entry(1, 1), entry(2, 3)], 1);
    const c = checker();
    c.checkCommitSafety([n1, n2, n3], () => [1, 2, 3]);
    expect(c.failure?.kind).toBe('committed-unsafe');
    // Once n1 and n2 hold an entry of n1's own term 4, nobody elects n3 (the correct rule
    // commits (2, t2) only then).
    const later = [entry(1, 1), entry(2, 2), entry(3, 4)];
    const ok = checker();
    ok.checkCommitSafety([await node(1, later, 3), await node(2, later, 3), n3], () => [1, 2, 3]);
    expect(ok.failure).toBeUndefined();
  });

  it('flags replicas that disagree on a committed entry, and logs that fork', async () => {
    const n1 = await node(1, [entry(1, 1, Uint8Array.of(1)), entry(2, 1)], 2);
    const n2 = await node(2, [entry(1, 1, Uint8Array.of(2)), entry(2, 1)], 0);
    const forked = checker();
    forked.checkLogs([n1, n2]);
    expect(forked.failure?.kind).toBe('log-matching');
    const n3 = await node(3, [entry(1, 1, Uint8Array.of(1)), entry(2, 2)], 2);
    const changed = checker();
    changed.checkLogs([n1, n3]);
    expect(changed.failure?.kind).toBe('committed-changed');
    const fine = checker();
    fine.checkLogs([n1, await node(2, [entry(1, 1, Uint8Array.of(1))], 1)]);
    expect(fine.failure).toBeUndefined();
  });

  it('flags replicas that apply different writes at the same position', () => {
    const c = checker();
    c.onChanges(1, [change(3, 'k', 'a'), change(4, 'k', 'b')]);
    c.onChanges(2, [change(3, 'k', 'a')]);
    expect(c.failure).toBeUndefined();
    c.onChanges(2, [change(4, 'k', 'c')]);
    expect(c.failure?.kind).toBe('apply-order');
  });

  it('flags a request that took effect twice, and an acknowledged write not committed', async () => {
    const log = [
      entry(1, 1, put('k', 'a', 'c1', 1)),
      entry(2, 1, put('k', 'b', 'c2', 1)),
      entry(3, 1, put('k', 'a', 'c1', 1)),
    ];
    const n1 = await node(1, log, 3);
    const twice = checker();
    twice.onChanges(1, [change(1, 'k', 'a'), change(2, 'k', 'b'), change(3, 'k', 'a')]);
    twice.checkWrites(n1, shard);
    expect(twice.failure?.kind).toBe('exactly-once');

    const once = checker();
    once.onChanges(1, [change(1, 'k', 'a'), change(2, 'k', 'b')]);
    once.acknowledged({ shard, session: 'c1#1', version: 1, what: 'put k=a' });
    once.checkWrites(n1, shard);
    expect(once.failure).toBeUndefined();
    once.acknowledged({ shard, session: 'c2#1', version: 3, what: 'put k=b' });
    once.checkWrites(n1, shard);
    expect(once.failure?.kind).toBe('lost-write');
  });
});
