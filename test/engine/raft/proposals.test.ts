/**
 * Proposals: batching, backpressure, refusals, and outcomes that are never silent — every
 * accepted proposal is delivered in committedEntries or reported in Ready.dropped.
 */
import { describe, expect, it } from 'vitest';
import { MessageType } from '../../../engine/raft/types.js';
import { RaftNetwork, text } from '../../support/raft-network.js';

/** Ticks the listed nodes `times` times, stabilizing after each. */
function tickNodes(net: RaftNetwork, nodes: number[], times: number): void {
  for (let i = 0; i < times; i++) {
    for (const n of nodes) net.tick(n);
    net.stabilize();
  }
}

describe('proposals', () => {
  it('many proposals of one turn travel in one App per follower and commit together', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    net.elect(1);
    const before = net.sent.get(MessageType.App) ?? 0;
    for (let i = 0; i < 256; i++) expect(net.proposeNext(1).ok).toBe(true);
    net.processAll();
    const apps = net.inflightOf(MessageType.App);
    expect(apps.map((m) => m.entries.length)).toEqual([256, 256]);
    net.stabilize();
    expect(net.replica(1).smIndex).toBe(257);
    // One App each with the entries, then one each carrying the new commit index.
    expect((net.sent.get(MessageType.App) ?? 0) - before).toBe(4);
  });

  it('a follower refuses a proposal and names the leader', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    expect(net.raft(2).propose(new Uint8Array(1))).toEqual({
      ok: false,
      reason: 'not-leader',
      leaderHint: 0,
    });
    net.elect(1);
    expect(net.raft(2).propose(new Uint8Array(1))).toEqual({
      ok: false,
      reason: 'not-leader',
      leaderHint: 1,
    });
  });

  it('beyond the uncommitted-bytes budget proposals are refused until entries commit', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3], config: { uncommittedBytesMax: 300 } });
    net.elect(1);
    net.filter = (m) => m.type !== MessageType.AppResp;
    const payload = 'x'.repeat(100); // counts 132 bytes with the entry overhead
    expect(net.propose(1, payload).ok).toBe(true);
    expect(net.propose(1, payload).ok).toBe(true);
    const refused = net.propose(1, payload);
    expect(refused).toMatchObject({ ok: false, reason: 'too-many-uncommitted', leaderHint: 1 });
    expect(net.raft(1).status().uncommittedBytes).toBe(264);
    net.filter = undefined;
    net.tick(1); // heartbeats: followers answer, the leader resends, entries commit
    net.stabilize();
    expect(net.raft(1).status().uncommittedBytes).toBe(0);
    expect(net.propose(1, payload).ok).toBe(true);
  });

  it('one proposal larger than the whole budget is accepted when nothing is uncommitted', () => {
    const net = new RaftNetwork({ nodes: [1], config: { uncommittedBytesMax: 100 } });
    net.elect(1);
    expect(net.propose(1, 'y'.repeat(500)).ok).toBe(true);
    expect(net.propose(1, 'z').ok).toBe(false);
  });

  it("a proposal overwritten by a new leader's log is reported dropped as superseded", () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3], config: { preVote: false } });
    net.elect(1);
    net.isolate(1);
    const lost = net.propose(1, 'lost');
    expect(lost).toMatchObject({ ok: true, index: 2, term: 1 });
    net.stabilize();
    tickNodes(net, [2, 3], 60); // 2 or 3 takes over in a later term
    const leader = net.leaderOf();
    expect([2, 3]).toContain(leader);
    net.proposeNext(leader);
    net.stabilize();
    net.heal();
    tickNodes(net, [1, 2, 3], 3);
    const dropped = net.replica(1).dropped;
    expect(dropped).toEqual([{ term: 1, fromIndex: 2, toIndex: 2, reason: 'superseded' }]);
    expect(net.replica(1).proposals.size).toBe(0);
    expect(text(net.replica(1).appliedEntries[1]!.data)).not.toBe('lost');
  });

  it("a proposal that survives its leader's fall is delivered under the next leader", () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3], config: { preVote: false } });
    net.elect(1);
    net.filter = (m) => !(m.type === MessageType.AppResp && m.to === 1); // replicated, unacked
    const kept = net.propose(1, 'kept');
    expect(kept).toMatchObject({ ok: true, index: 2, term: 1 });
    net.stabilize();
    net.filter = undefined;
    net.isolate(1);
    tickNodes(net, [2, 3], 30);
    net.heal();
    tickNodes(net, [1, 2, 3], 3);
    const applied = net.replica(1).appliedEntries.find((e) => e.index === 2)!;
    expect(applied.term).toBe(1);
    expect(text(applied.data)).toBe('kept');
    expect(net.replica(1).dropped).toEqual([]);
    expect(net.replica(1).proposals.size).toBe(0);
  });

  it('a proposal truncated from its own log may still commit, so truncation drops nothing', () => {
    // Why drops are decided by the committed log and not by truncation (cf. figure 8).
    const net = new RaftNetwork({
      nodes: [1, 2, 3, 4, 5],
      config: { preVote: false, checkQuorum: false },
    });
    net.elect(1);
    net.filter = (m) => !(m.from === 1 && m.type === MessageType.App && m.to !== 2);
    expect(net.propose(1, 'P')).toMatchObject({ ok: true, index: 2, term: 1 }); // on 1 and 2
    net.stabilize();
    net.filter = (m) => !(m.from === 5 && m.type === MessageType.App && m.to !== 1);
    net.elect(5); // term 2, with 3 and 4; its no-op reaches only node 1...
    expect(net.termsOf(1)).toEqual([1, 2]); // ...and replaces P there
    net.filter = (m) => m.from !== 5;
    net.elect(2); // term 3, with 3 and 4: node 2 still holds P and commits it
    expect(net.leaderOf()).toBe(2);
    const p = net.replica(1).appliedEntries.find((e) => e.index === 2)!;
    expect(text(p.data)).toBe('P');
    expect(net.replica(1).dropped).toEqual([]);
    expect(net.replica(1).proposals.size).toBe(0);
  });

  it('closing a group refuses everything and reports pending proposals and reads', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    net.elect(1);
    net.isolate(1);
    net.proposeNext(1);
    net.proposeNext(1);
    net.read(1);
    net.raft(1).close();
    expect(net.raft(1).propose(new Uint8Array(0))).toMatchObject({ ok: false, reason: 'closed' });
    expect(net.raft(1).readIndex(new Uint8Array(1))).toMatchObject({ ok: false, reason: 'closed' });
    net.stabilize();
    expect(net.replica(1).dropped).toEqual([
      { term: 1, fromIndex: 2, toIndex: 3, reason: 'closed' },
    ]);
    expect(net.replica(1).droppedReads).toHaveLength(1);
    expect(net.raft(1).hasReady()).toBe(false);
  });
});
