/**
 * Leadership transfer (Raft thesis §3.10): TimeoutNow once the target is caught up, proposals
 * refused meanwhile, abandoned after an election timeout.
 */
import { describe, expect, it } from 'vitest';
import { MessageType } from '../../../engine/raft/types.js';
import { RaftNetwork } from '../../support/raft-network.js';

describe('leadership transfer', () => {
  it('to an up-to-date follower: TimeoutNow at once, the target wins the next term', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    net.elect(1);
    net.proposeNext(1);
    net.stabilize();
    const preVotes = net.sent.get(MessageType.PreVote);
    expect(net.raft(1).transferLeader(2).ok).toBe(true);
    net.stabilize(); // no ticks needed: the target campaigns at once, past the lease
    expect(net.leaderOf()).toBe(2);
    expect(net.raft(2).hardState().term).toBe(2);
    expect(net.sent.get(MessageType.TimeoutNow)).toBe(1);
    expect(net.sent.get(MessageType.PreVote)).toBe(preVotes); // a transfer skips PreVote
  });

  it('to a lagging follower: the leader first catches it up, then sends TimeoutNow', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    net.elect(1);
    net.filter = (m) => !(m.type === MessageType.App && m.to === 3);
    for (let i = 0; i < 20; i++) net.proposeNext(1);
    net.stabilize();
    net.filter = undefined;
    expect(net.termsOf(3)).toHaveLength(1);
    const order: string[] = [];
    net.filter = (m) => {
      if (m.to === 3 && m.type === MessageType.App && m.entries.length > 0) order.push('app');
      if (m.type === MessageType.TimeoutNow) order.push('timeout-now');
      return true;
    };
    expect(net.raft(1).transferLeader(3).ok).toBe(true);
    expect(net.raft(1).status().transferee).toBe(3);
    net.tick(1); // the heartbeat answer reveals how far behind 3 is
    net.stabilize();
    expect(order[order.length - 1]).toBe('timeout-now');
    expect(order.slice(0, -1).every((o) => o === 'app')).toBe(true);
    expect(net.leaderOf()).toBe(3);
    expect(net.termsOf(3)).toHaveLength(22);
  });

  it('proposals are refused while transferring, and the transfer is abandoned on timeout', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    net.elect(1);
    net.isolate(3);
    expect(net.raft(1).transferLeader(3).ok).toBe(true);
    expect(net.raft(1).propose(new Uint8Array(1))).toMatchObject({
      ok: false,
      reason: 'transferring',
      leaderHint: 3,
    });
    for (let i = 0; i < 9; i++) {
      net.tick(1);
      net.stabilize();
    }
    expect(net.raft(1).status().transferee).toBe(3);
    net.tick(1);
    net.stabilize();
    expect(net.raft(1).status().transferee).toBe(0);
    expect(net.raft(1).isLeader()).toBe(true);
    expect(net.raft(1).propose(new Uint8Array(1)).ok).toBe(true);
  });

  it('only a voter can be the target', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3, 4], voters: [1, 2, 3], learners: [4] });
    net.elect(1);
    expect(net.raft(1).transferLeader(4)).toMatchObject({ ok: false, reason: 'not-a-voter' });
    expect(net.raft(1).transferLeader(9)).toMatchObject({ ok: false, reason: 'not-a-voter' });
  });

  it('a follower may ask the leader to hand leadership to itself', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    net.elect(1);
    expect(net.raft(2).transferLeader(3)).toMatchObject({ ok: false, reason: 'not-leader' });
    expect(net.raft(2).transferLeader(2).ok).toBe(true);
    net.stabilize();
    expect(net.leaderOf()).toBe(2);
  });
});
