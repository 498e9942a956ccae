/**
 * Linearizable reads (Raft §6.4): ReadIndex rounds shared by many reads, the new-leader rule,
 * follower forwarding, and the leader lease with its limits.
 */
import { describe, expect, it } from 'vitest';
import { MessageType } from '../../../engine/raft/types.js';
import { bytes, RaftNetwork, text } from '../../support/raft-network.js';

function heartbeatsWithContext(net: RaftNetwork): number {
  return net.inflightOf(MessageType.Heartbeat).filter((m) => m.context !== undefined).length;
}

describe('ReadIndex', () => {
  it('many reads share one heartbeat round and get the same index', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    net.elect(1);
    for (let i = 0; i < 100; i++) expect(net.read(1)).toBeDefined();
    net.processAll();
    expect(heartbeatsWithContext(net)).toBe(2); // one round: a heartbeat per follower
    net.stabilize();
    const states = net.replica(1).readStates;
    expect(states).toHaveLength(100);
    expect(new Set(states.map((s) => s.index))).toEqual(new Set([1]));
  });

  it('reads arriving while a round is in flight join the next round', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    net.elect(1);
    net.read(1);
    net.processAll(); // round 1 in flight
    net.read(1);
    net.read(1);
    net.processAll();
    expect(heartbeatsWithContext(net)).toBe(2); // no new round yet
    net.deliverDue(); // followers answer round 1
    net.processAll();
    net.deliverDue(); // the leader completes round 1 and starts round 2
    net.processAll();
    expect(net.replica(1).readStates).toHaveLength(1);
    expect(heartbeatsWithContext(net)).toBe(2);
    net.stabilize();
    expect(net.replica(1).readStates).toHaveLength(3);
  });

  it('a new leader answers reads only after committing an entry of its term', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    net.filter = (m) => m.type !== MessageType.AppResp; // the no-op cannot commit
    net.elect(1);
    net.read(1);
    net.stabilize();
    net.tick(1); // heartbeats are answered, but the read waits for the commit
    net.stabilize();
    expect(net.replica(1).readStates).toHaveLength(0);
    net.filter = undefined;
    net.tick(1);
    net.stabilize();
    expect(net.replica(1).readStates.map((s) => s.index)).toEqual([1]);
  });

  it('a follower forwards a read to the leader and gets the read state', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    net.elect(1);
    net.proposeNext(1);
    net.stabilize();
    expect(net.read(3)).toBeDefined();
    net.stabilize();
    expect(net.replica(3).readStates.map((s) => s.index)).toEqual([2]);
    expect(net.sent.get(MessageType.ReadIndex)).toBe(1);
    expect(net.sent.get(MessageType.ReadIndexResp)).toBe(1);
  });

  it('a follower without a leader refuses reads', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    expect(net.raft(2).readIndex(bytes('x'))).toMatchObject({ ok: false, reason: 'not-leader' });
  });

  it('reads pending at a leader that steps down are dropped, forwarded ones too', () => {
    const net = new RaftNetwork({
      nodes: [1, 2, 3],
      config: { preVote: false, checkQuorum: false },
    });
    net.elect(1);
    net.filter = (m) => m.type !== MessageType.HeartbeatResp; // rounds never complete
    net.read(1);
    net.read(2); // forwarded to 1, where it waits in the round
    net.stabilize();
    expect(net.replica(1).readStates).toHaveLength(0);
    net.raft(3).campaign(); // term 2 deposes node 1
    net.stabilize();
    expect(net.raft(1).isLeader()).toBe(false);
    expect(net.replica(1).droppedReads).toHaveLength(1);
    expect(net.replica(2).droppedReads).toHaveLength(1);
    expect(net.replica(2).readStates).toHaveLength(0);
  });

  it('a forwarded read that gets no answer is dropped after an election timeout', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    net.elect(1);
    net.filter = (m) => m.type !== MessageType.ReadIndex;
    const key = net.read(2)!;
    for (let i = 0; i < 9; i++) net.tick(2);
    net.stabilize();
    expect(net.replica(2).droppedReads).toEqual([]);
    net.tick(2);
    net.stabilize();
    expect(net.replica(2).droppedReads).toEqual([key]);
  });

  it('reads beyond readsPendingMax are refused', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3], config: { readsPendingMax: 2 } });
    net.elect(1);
    net.isolate(1);
    expect(net.read(1)).toBeDefined();
    expect(net.read(1)).toBeDefined();
    expect(net.raft(1).readIndex(bytes('third'))).toMatchObject({ reason: 'too-many-reads' });
  });
});

describe('leader lease reads', () => {
  function leased(): RaftNetwork {
    const net = new RaftNetwork({ nodes: [1, 2, 3], config: { readOnlyOption: 'lease' } });
    net.elect(1);
    net.tick(1); // a heartbeat round acknowledged by a quorum starts the lease
    net.stabilize();
    return net;
  }

  it('are answered at once, without a heartbeat round, while the lease holds', () => {
    const net = leased();
    net.read(1);
    expect(net.replica(1).readStates).toHaveLength(0);
    net.processAll();
    expect(net.replica(1).readStates.map((s) => s.index)).toEqual([1]);
    expect(heartbeatsWithContext(net)).toBe(0);
  });

  it('a leader transferring leadership stops answering from its lease', () => {
    const net = leased();
    net.filter = (m) => m.type !== MessageType.TimeoutNow; // the transfer stays pending
    expect(net.raft(1).transferLeader(2).ok).toBe(true);
    net.read(1);
    net.processAll();
    expect(net.replica(1).readStates).toHaveLength(0); // waits for a quorum round instead
    expect(heartbeatsWithContext(net)).toBe(2);
    net.stabilize();
    expect(net.replica(1).readStates).toHaveLength(1);
  });

  it('a deposed leader stops answering before any new leader can commit', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const net = new RaftNetwork({ nodes: [1, 2, 3], seed, config: { readOnlyOption: 'lease' } });
      net.elect(1);
      for (let i = 0; i < 3; i++) {
        net.tickAll();
        net.stabilize();
      }
      net.isolate(1);
      for (let t = 0; t < 40; t++) {
        net.tickAll();
        net.stabilize();
        // The network checks that every read state covers every entry applied anywhere.
        if (net.raft(1).isLeader()) net.read(1);
        net.stabilize();
      }
      expect(net.leaderOf()).not.toBe(1);
      expect(net.maxApplied()).toBeGreaterThan(1);
    }
  });

  it('a restarted follower honours a lease it may have granted before crashing', () => {
    const net = leased();
    net.proposeNext(1);
    net.stabilize();
    net.cutLink(1, 3); // 3 stops hearing from 1 and will campaign
    for (let i = 0; i < 12; i++) {
      net.tick(3);
      net.stabilize();
    }
    net.isolate(1); // the lease, last renewed by 2, still runs at 1
    net.crash(2);
    net.restart(2); // 2 forgot it heard from 1
    net.raft(3).campaign();
    net.stabilize();
    expect(net.leaderOf()).toBe(1); // 2 refused: it may have acknowledged 1's lease
    for (let i = 0; i < 10; i++) {
      net.tick(2);
      net.tick(3);
      net.stabilize();
    }
    expect(net.raft(3).isLeader() || net.raft(2).isLeader()).toBe(true);
  });

  it('read contexts come back unchanged', () => {
    const net = leased();
    net.raft(1).readIndex(bytes('ctx-42'));
    net.stabilize();
    expect(net.replica(1).readStates.map((s) => text(s.context))).toEqual(['ctx-42']);
  });
});
