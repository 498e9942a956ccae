/**
 * Log replication (Raft §5.3, §5.4): log matching, append-only leaders, state machine safety,
 * the paper's figures 7 and 8, pipelining bounded by the inflight window, and fast backtracking.
 */
import { describe, expect, it } from 'vitest';
import { MessageType } from '../../../engine/raft/types.js';
import { SeededRandom } from '../../../engine/random.js';
import { RaftNetwork, text } from '../../support/raft-network.js';

/** Partitions, crashes and proposals for `turns` turns. */
function chaos(net: RaftNetwork, turns: number, seed: number): void {
  const rng = new SeededRandom(seed);
  for (let t = 0; t < turns; t++) {
    net.now++;
    net.deliverDue();
    if (t % 2 === 0) net.tickAll();
    const node = net.nodes[rng.intBelow(net.nodes.length)]!;
    if (net.isUp(node)) net.proposeNext(node);
    net.processAll();
    if (rng.chance(0.01)) net.isolate(net.nodes[rng.intBelow(net.nodes.length)]!);
    if (rng.chance(0.02)) net.heal();
    if (rng.chance(0.005)) net.crash(node);
    for (const n of net.nodes) if (!net.isUp(n) && rng.chance(0.05)) net.restart(n);
  }
}

function chaosNetwork(seed: number): RaftNetwork {
  return new RaftNetwork({
    nodes: [1, 2, 3, 4, 5],
    seed,
    faults: { drop: 0.05, duplicate: 0.02, delayMax: 4 },
    holdReadyChance: 0.1,
    config: { msgBytesMax: 200, inflightMsgsMax: 4 },
  });
}

describe('log replication', () => {
  it('log matching: two logs with an entry of the same index and term agree up to it', () => {
    for (let seed = 1; seed <= 10; seed++) {
      const net = chaosNetwork(seed);
      chaos(net, 1500, seed);
      const logs = net.nodes.map((n) => net.logOf(n));
      for (const a of logs) {
        for (const b of logs) {
          const common = Math.min(a.length, b.length);
          let last = -1;
          for (let i = 0; i < common; i++) if (a[i]!.term === b[i]!.term) last = i;
          for (let i = 0; i <= last; i++) {
            expect(a[i]!.term).toBe(b[i]!.term);
            expect(text(a[i]!.data)).toBe(text(b[i]!.data));
          }
        }
      }
    }
  });

  it('leader append-only: a leader never overwrites or deletes entries in its log', () => {
    for (let seed = 1; seed <= 10; seed++) {
      const net = chaosNetwork(seed);
      const seen = new Map<string, string[]>();
      const rng = new SeededRandom(seed);
      for (let t = 0; t < 1000; t++) {
        chaos(net, 1, rng.nextU32());
        for (const node of net.nodes) {
          const raft = net.raft(node);
          if (!net.isUp(node) || !raft.isLeader()) continue;
          const key = `${node}@${raft.hardState().term}`;
          const log = net.logOf(node).map((e) => `${e.index}:${e.term}:${text(e.data)}`);
          const before = seen.get(key) ?? [];
          expect(log.slice(0, before.length)).toEqual(before);
          seen.set(key, log);
        }
      }
      expect(seen.size).toBeGreaterThan(0);
    }
  });

  it('state machine safety: every replica applies the same sequence of entries', () => {
    for (let seed = 1; seed <= 10; seed++) {
      const net = chaosNetwork(seed);
      chaos(net, 1500, seed);
      net.heal();
      for (const n of net.nodes) net.restart(n);
      const sequences = net.nodes.map((n) =>
        net.replica(n).appliedEntries.map((e) => `${e.index}:${e.term}:${text(e.data)}`),
      );
      const longest = sequences.reduce((a, b) => (b.length > a.length ? b : a));
      expect(longest.length).toBeGreaterThan(50);
      for (const seq of sequences) {
        // A restarted replica re-applies from its durable applied index: dedupe by index.
        const byIndex = new Map(seq.map((s) => [Number(s.split(':')[0]), s]));
        for (const [index, entry] of byIndex) expect(entry).toBe(longest[index - 1]);
      }
    }
  });

  it("figure 7: followers with missing, extra and conflicting entries converge to the leader's log", () => {
    const leader = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    const net = new RaftNetwork({
      nodes: [1, 2, 3, 4, 5, 6, 7],
      initialLogs: {
        1: leader,
        2: [1, 1, 1, 4, 4, 5, 5, 6, 6], // (a) missing one entry
        3: [1, 1, 1, 4], // (b) missing many
        4: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], // (c) one extra entry
        5: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], // (d) extra entries of a later term
        6: [1, 1, 1, 4, 4, 4, 4], // (e) missing and conflicting
        7: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], // (f) many conflicting entries
      },
      initialTerms: { 1: 7, 2: 7, 3: 7, 4: 7, 5: 7, 6: 7, 7: 7 },
      config: { preVote: false, checkQuorum: false },
    });
    net.elect(1); // term 8: (a), (b), (e), (f) vote for it; (c) and (d) do not
    expect(net.leaderOf()).toBe(1);
    net.proposeNext(1);
    net.stabilize();
    const expected = [...leader, 8, 8];
    for (const node of net.nodes) {
      expect(net.termsOf(node)).toEqual(expected);
      expect(net.raft(node).status().commit).toBe(12);
    }
  });

  it('figure 8: a leader does not commit an entry of an earlier term by counting replicas', () => {
    // After (b): S1 and S2 hold (2, term 2); S5 holds (2, term 3); everyone has seen term 3.
    const net = new RaftNetwork({
      nodes: [1, 2, 3, 4, 5],
      initialLogs: { 1: [1, 2], 2: [1, 2], 3: [1], 4: [1], 5: [1, 3] },
      initialTerms: { 1: 3, 2: 3, 3: 3, 4: 3, 5: 3 },
      config: { preVote: false, checkQuorum: false, msgBytesMax: 40 }, // one entry per App
    });
    // (c): S1 leads term 4 and gets (2, term 2) onto S3, so a majority holds it; its own
    // term-4 entry reaches nobody.
    net.crash(5);
    net.filter = (m) =>
      m.type !== MessageType.App || { ...m, entries: m.entries.filter((e) => e.term !== 4) };
    net.elect(1);
    expect(net.leaderOf()).toBe(1);
    expect(net.termsOf(3)).toEqual([1, 2]);
    for (const node of [1, 2, 3]) expect(net.raft(node).status().commit).toBe(0);
    // (d): S1 crashes; S5 is elected with S2, S3, S4 and replaces (2, term 2) everywhere.
    net.crash(1);
    net.filter = undefined;
    net.restart(5);
    net.raft(5).campaign(); // term 4: everyone already voted for S1
    net.stabilize();
    net.raft(5).campaign(); // term 5
    net.stabilize();
    expect(net.leaderOf()).toBe(5);
    for (const node of [2, 3, 4, 5]) {
      expect(net.termsOf(node).slice(0, 2)).toEqual([1, 3]);
      expect(net.raft(node).status().commit).toBe(3);
    }
  });

  it('figure 8: once an entry of its own term commits, the earlier entries commit with it', () => {
    const net = new RaftNetwork({
      nodes: [1, 2, 3, 4, 5],
      initialLogs: { 1: [1, 2], 2: [1, 2], 3: [1], 4: [1], 5: [1, 3] },
      initialTerms: { 1: 3, 2: 3, 3: 3, 4: 3, 5: 3 },
      config: { preVote: false, checkQuorum: false },
    });
    net.crash(5);
    net.elect(1);
    for (const node of [1, 2, 3, 4]) {
      expect(net.termsOf(node)).toEqual([1, 2, 4]);
      expect(net.raft(node).status().commit).toBe(3);
    }
  });

  it('pipelining stops at the inflight window (messages) until the follower acknowledges', () => {
    const net = new RaftNetwork({
      nodes: [1, 2, 3],
      config: { msgBytesMax: 1, inflightMsgsMax: 3 },
    });
    net.elect(1);
    let acks = true;
    net.filter = (m) => acks || !(m.type === MessageType.AppResp && m.from === 2);
    acks = false;
    const before = net.sent.get(MessageType.App) ?? 0;
    const appsTo2 = () => net.inflightOf(MessageType.App).filter((m) => m.to === 2).length;
    for (let i = 0; i < 10; i++) net.proposeNext(1);
    net.processAll();
    expect(appsTo2()).toBe(3);
    expect(
      net
        .raft(1)
        .status()
        .progress.find((p) => p.id === 2)?.inflightMsgs,
    ).toBe(3);
    expect((net.sent.get(MessageType.App) ?? 0) - before).toBe(3 + 3); // node 3's window too
    net.stabilize(); // node 3 acknowledges and gets the rest; node 2 stays capped
    expect(net.replica(3).smIndex).toBe(11);
    expect(appsTo2()).toBe(0);
    expect(
      net
        .raft(1)
        .status()
        .progress.find((p) => p.id === 2)?.match,
    ).toBe(1);
    acks = true;
    net.tick(1); // a heartbeat answer shows node 2 alive and frees the window
    net.stabilize();
    net.stabilize();
    expect(net.replica(2).smIndex).toBe(11);
  });

  it('pipelining stops at the inflight window (bytes)', () => {
    const net = new RaftNetwork({
      nodes: [1, 2],
      config: { msgBytesMax: 1, inflightBytesMax: 100 },
    });
    net.elect(1);
    net.filter = (m) => !(m.type === MessageType.AppResp);
    for (let i = 0; i < 10; i++) net.propose(1, 'x'.repeat(18)); // 50 bytes counted each
    net.processAll();
    expect(net.inflightOf(MessageType.App).length).toBe(2);
    expect(
      net
        .raft(1)
        .status()
        .progress.find((p) => p.id === 2)?.inflightBytes,
    ).toBe(100);
  });

  it('fast backtracking: a long divergent follower log is resolved in a few round trips', () => {
    const long = (term: number, n: number) => [1, ...Array.from({ length: n }, () => term)];
    const net = new RaftNetwork({
      nodes: [1, 2, 3],
      initialLogs: { 1: long(3, 500), 2: long(3, 500), 3: long(2, 1000) },
      initialTerms: { 1: 3, 2: 3, 3: 3 },
      config: { preVote: false, checkQuorum: false },
    });
    let rejects = 0;
    net.filter = (m) => {
      if (m.type === MessageType.AppResp && m.reject && m.from === 3) rejects++;
      return true;
    };
    net.elect(1);
    expect(rejects).toBeLessThanOrEqual(2);
    expect(net.termsOf(3)).toEqual([...long(3, 500), 4]);
  });

  it('a follower that lost the last App catches up through the next heartbeat', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    net.elect(1);
    net.filter = (m) => !(m.type === MessageType.App && m.to === 3);
    net.proposeNext(1);
    net.stabilize();
    net.filter = undefined;
    expect(net.replica(3).smIndex).toBe(1);
    net.tick(1);
    net.stabilize();
    expect(net.replica(3).smIndex).toBe(2);
  });
});
