/**
 * Elections (Raft §5.2, §5.4.1, §9.6): one leader per term, only up-to-date candidates win,
 * randomized timeouts, PreVote, CheckQuorum and the leader lease.
 */
import { describe, expect, it } from 'vitest';
import { RaftNode } from '../../../engine/raft/raft-node.js';
import { MemoryRaftStorage } from '../../../engine/raft/storage.js';
import { MessageType } from '../../../engine/raft/types.js';
import { SeededRandom } from '../../../engine/random.js';
import { raftTestConfig } from '../../support/raft-config.js';
import { RaftNetwork } from '../../support/raft-network.js';

const conf3 = {
  voters: [1, 2, 3],
  votersOutgoing: [],
  learners: [],
  learnersNext: [],
  autoLeave: false,
};

/** Ticks every node once per turn, delivering messages with random delays, for `turns` turns. */
function run(net: RaftNetwork, turns: number): void {
  for (let t = 0; t < turns; t++) {
    net.now++;
    net.deliverDue();
    if (t % 2 === 0) net.tickAll();
    net.processAll();
  }
}

describe('elections', () => {
  it('a candidate that receives votes from a majority becomes leader', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    net.elect(2);
    expect(net.leaderOf()).toBe(2);
    expect(net.raft(1).leader()).toBe(2);
    expect(net.raft(3).leader()).toBe(2);
    expect(net.raft(2).hardState().term).toBe(1);
  });

  it('election safety: at most one leader per term, even with split votes and delays', () => {
    let elections = 0;
    for (let seed = 1; seed <= 30; seed++) {
      const net = new RaftNetwork({
        nodes: [1, 2, 3, 4, 5],
        seed,
        config: { preVote: false, checkQuorum: false },
        faults: { delayMax: 6, drop: 0.1 },
      });
      const leaders = new Map<number, number>();
      for (let t = 0; t < 400; t++) {
        run(net, 1);
        if (t % 50 === 0) net.isolate(1 + (t % 5));
        if (t % 50 === 25) net.heal();
        for (const node of net.nodes) {
          const raft = net.raft(node);
          if (!raft.isLeader()) continue;
          const term = raft.hardState().term;
          expect(leaders.get(term) ?? node).toBe(node);
          leaders.set(term, node);
        }
      }
      elections += leaders.size;
    }
    expect(elections).toBeGreaterThan(60);
  });

  it('the election timeout is randomized in [electionTicks, 2 * electionTicks)', () => {
    const seen = new Set<number>();
    for (let seed = 0; seed < 200; seed++) {
      const config = raftTestConfig(1, 1, { random: new SeededRandom(seed), preVote: false });
      const node = new RaftNode(config, new MemoryRaftStorage(conf3));
      let ticks = 0;
      while (node.status().role === 'follower') {
        node.tick();
        ticks++;
      }
      seen.add(ticks);
    }
    expect(Math.min(...seen)).toBe(10);
    expect(Math.max(...seen)).toBe(19);
    expect(seen.size).toBe(10);
  });

  it('a voter refuses a candidate whose log is less up to date (leader completeness)', () => {
    const net = new RaftNetwork({
      nodes: [1, 2, 3],
      initialLogs: { 1: [1], 2: [1, 1], 3: [1, 1] },
      config: { preVote: false, checkQuorum: false },
    });
    net.elect(1);
    expect(net.leaderOf()).toBe(0);
    net.elect(2);
    expect(net.leaderOf()).toBe(2);
    expect(net.termsOf(1)).toEqual([1, 1, 3]); // node 1's failed bid raised the term to 2
  });

  it('a node votes at most once per term', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3], config: { preVote: false } });
    net.filter = (m) => m.type !== MessageType.VoteResp; // keep both candidates pending
    net.raft(1).campaign();
    net.raft(2).campaign();
    net.stabilize();
    expect(net.raft(3).hardState()).toMatchObject({ term: 1, vote: 1 });
    net.filter = undefined;
    net.raft(2).campaign(); // term 2 now
    net.stabilize();
    expect(net.raft(3).hardState()).toMatchObject({ term: 2, vote: 2 });
    expect(net.leaderOf()).toBe(2);
  });

  it('PreVote keeps a partitioned node from disrupting the leader when it returns', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    net.elect(1);
    net.isolate(3);
    for (let i = 0; i < 100; i++) {
      net.tickAll();
      net.stabilize();
    }
    // Node 3 campaigned in vain but never raised its term: pre-votes do not change terms.
    expect(net.raft(3).hardState().term).toBe(1);
    net.heal();
    for (let i = 0; i < 5; i++) {
      net.tickAll();
      net.stabilize();
    }
    expect(net.leaderOf()).toBe(1);
    expect(net.raft(1).hardState().term).toBe(1);
  });

  it('without PreVote the returning node bumps the term and deposes the leader', () => {
    const net = new RaftNetwork({
      nodes: [1, 2, 3],
      config: { preVote: false, checkQuorum: false },
    });
    net.elect(1);
    net.isolate(3);
    for (let i = 0; i < 100; i++) {
      net.tickAll();
      net.stabilize();
    }
    expect(net.raft(3).hardState().term).toBeGreaterThan(1);
    net.heal();
    for (let i = 0; i < 20; i++) {
      net.tickAll();
      net.stabilize();
    }
    // Node 3's next vote request carried its higher term: the leader of term 1 is gone.
    expect(net.raft(1).hardState().term).toBeGreaterThan(2);
  });

  it('CheckQuorum: a leader that hears from no quorum for an election timeout steps down', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    net.elect(1);
    net.isolate(1);
    let ticks = 0;
    while (net.raft(1).isLeader()) {
      net.tick(1);
      net.stabilize();
      ticks++;
    }
    expect(ticks).toBeLessThanOrEqual(20);
    expect(net.raft(1).status().role).toBe('follower');
    expect(net.raft(1).leader()).toBe(0);
  });

  it('a follower within its leader lease ignores vote requests', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3], config: { preVote: false } });
    net.elect(1);
    net.cutLink(1, 3); // 3 stops hearing from 1 and campaigns; 2 still hears from 1
    for (let i = 0; i < 60; i++) {
      net.tickAll();
      net.stabilize();
    }
    expect(net.raft(3).hardState().term).toBeGreaterThan(1);
    expect(net.raft(2).hardState().term).toBe(1); // 2 ignored 3's higher-term requests
    expect(net.leaderOf()).toBe(1);
  });
});
