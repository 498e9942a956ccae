/**
 * Membership (Raft §4, etcd's joint consensus): learners, single changes, joint configurations
 * entered and left, one change at a time, a leader removing itself, and the ConfChange encoding.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyConfChangeTo,
  ConfChangeDecodeError,
  decodeConfChange,
  encodeConfChange,
  leaveJointConfChange,
  singleConfChange,
} from '../../../engine/raft/conf-change.js';
import type { ConfChange } from '../../../engine/raft/types.js';
import { MessageType } from '../../../engine/raft/types.js';
import { RaftNetwork } from '../../support/raft-network.js';

function commitOf(net: RaftNetwork, node: number): number {
  return net.raft(node).status().commit;
}

function change(net: RaftNetwork, leader: number, cc: ConfChange): void {
  const result = net.raft(leader).proposeConfChange(cc);
  if (!result.ok) throw new Error(`conf change refused: ${result.reason} ${result.detail ?? ''}`);
  net.stabilize();
}

describe('learners', () => {
  it('a learner receives the log but is not counted for commit', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3, 4], voters: [1, 2, 3], learners: [4] });
    net.elect(1);
    net.proposeNext(1);
    net.stabilize();
    expect(net.replica(4).smIndex).toBe(2);
    net.isolate(2);
    net.isolate(3);
    net.proposeNext(1);
    net.stabilize();
    expect(net.termsOf(4)).toHaveLength(3); // the learner has it...
    expect(commitOf(net, 1)).toBe(2); // ...but leader + learner are no quorum of voters
  });

  it('a learner never campaigns and its vote does not count', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3, 4], voters: [1, 2, 3], learners: [4] });
    for (let i = 0; i < 50; i++) net.tick(4);
    net.stabilize();
    expect(net.raft(4).status().role).toBe('follower');
    expect(net.raft(4).campaign()).toMatchObject({ ok: false, reason: 'not-promotable' });
    net.isolate(2);
    net.isolate(3);
    net.elect(1); // votes only from itself and the learner: not enough
    expect(net.leaderOf()).toBe(0);
  });

  it('a learner added later catches up and can be promoted to voter', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3, 4], voters: [1, 2, 3] });
    net.elect(1);
    for (let i = 0; i < 5; i++) net.proposeNext(1);
    net.stabilize();
    change(net, 1, singleConfChange('addLearner', 4));
    expect(net.raft(1).status().conf.learners).toEqual([4]);
    expect(net.replica(4).smIndex).toBe(net.replica(1).smIndex);
    change(net, 1, singleConfChange('addVoter', 4));
    expect(net.raft(4).status().conf).toMatchObject({ voters: [1, 2, 3, 4], learners: [] });
    const base = commitOf(net, 1);
    net.isolate(2);
    net.isolate(3);
    net.proposeNext(1);
    net.stabilize();
    expect(net.termsOf(4)).toHaveLength(base + 1);
    expect(commitOf(net, 1)).toBe(base); // 2 of 4 voters is no quorum
  });
});

describe('joining replicas', () => {
  it('a replica added to a running group starts from a snapshot, never from index 1', () => {
    const net = new RaftNetwork({
      nodes: [1, 2, 3, 4],
      voters: [1, 2, 3],
      joining: [4],
      compactAfter: 3,
    });
    net.elect(1);
    for (let i = 0; i < 6; i++) net.proposeNext(1);
    net.stabilize();
    expect(net.replica(4).smIndex).toBe(0); // not a member: nobody sends it anything
    change(net, 1, singleConfChange('addLearner', 4));
    net.tick(1);
    net.stabilize();
    expect(net.sent.get(MessageType.Snap)).toBeGreaterThanOrEqual(1);
    const joiner = net.raft(4).status();
    expect(joiner.conf).toMatchObject({ voters: [1, 2, 3], learners: [4] });
    expect(joiner.firstIndex).toBeGreaterThan(1); // its log starts after the snapshot
    net.proposeNext(1);
    net.stabilize();
    expect(net.replica(4).smIndex).toBe(net.replica(1).smIndex);
    change(net, 1, singleConfChange('addVoter', 4));
    change(net, 1, singleConfChange('removeVoter', 1));
    expect(net.raft(4).status().conf.voters).toEqual([2, 3, 4]);
  });

  it('a joining replica refuses entries and never campaigns without a membership', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3, 4], voters: [1, 2, 3], joining: [4] });
    for (let i = 0; i < 50; i++) net.tick(4);
    net.stabilize();
    expect(net.raft(4).status().role).toBe('follower');
    expect(net.raft(4).campaign()).toMatchObject({ ok: false, reason: 'not-promotable' });
    net.elect(1);
    net.proposeNext(1);
    change(net, 1, singleConfChange('addLearner', 4));
    net.tick(1);
    net.stabilize();
    // The leader never compacted, so it has no snapshot to send yet: the joiner waits.
    expect(net.raft(4).status().lastIndex).toBe(0);
    expect(net.raft(4).status().conf.voters).toEqual([]);
  });
});

describe('joint consensus', () => {
  it('replacing several voters goes through a joint configuration and leaves it by itself', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3, 4, 5], voters: [1, 2, 3] });
    net.elect(1);
    const confStates: string[] = [];
    const ready = net.raft(1).ready.bind(net.raft(1));
    net.raft(1).ready = () => {
      const rd = ready();
      if (rd.confState !== undefined) confStates.push(JSON.stringify(rd.confState.voters));
      return rd;
    };
    change(net, 1, {
      changes: [
        { type: 'addVoter', node: 4 },
        { type: 'addVoter', node: 5 },
        { type: 'removeVoter', node: 2 },
        { type: 'removeVoter', node: 3 },
      ],
      transition: 'auto',
    });
    expect(confStates).toEqual(['[1,4,5]', '[1,4,5]']); // joint, then left
    for (const node of [1, 4, 5]) {
      expect(net.raft(node).status().conf).toMatchObject({ voters: [1, 4, 5], votersOutgoing: [] });
    }
  });

  it('in a joint configuration a decision needs a majority of both voter sets', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3, 4, 5], voters: [1, 2, 3] });
    net.elect(1);
    change(net, 1, {
      changes: [
        { type: 'addVoter', node: 4 },
        { type: 'addVoter', node: 5 },
        { type: 'removeVoter', node: 2 },
        { type: 'removeVoter', node: 3 },
      ],
      transition: 'joint-explicit',
    });
    expect(net.raft(1).status().conf).toMatchObject({
      voters: [1, 4, 5],
      votersOutgoing: [1, 2, 3],
    });
    const base = commitOf(net, 1);
    net.isolate(2);
    net.isolate(3); // new majority {1, 4, 5} is there, old majority {1, 2, 3} is not
    net.proposeNext(1);
    net.stabilize();
    expect(commitOf(net, 1)).toBe(base);
    net.heal();
    net.isolate(4);
    net.isolate(5); // now the old majority is there and the new one is not
    net.proposeNext(1);
    net.tick(1);
    net.stabilize();
    // The first entry now has both majorities (the new one got it before); the second has not.
    expect(commitOf(net, 1)).toBe(base + 1);
    net.heal();
    net.tick(1);
    net.stabilize();
    expect(commitOf(net, 1)).toBe(base + 2);
    change(net, 1, leaveJointConfChange());
    expect(net.raft(1).status().conf).toMatchObject({ voters: [1, 4, 5], votersOutgoing: [] });
  });

  it('only one membership change may be pending', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3, 4, 5], voters: [1, 2, 3] });
    net.elect(1);
    expect(net.raft(1).proposeConfChange(singleConfChange('addLearner', 4)).ok).toBe(true);
    expect(net.raft(1).proposeConfChange(singleConfChange('addLearner', 5))).toMatchObject({
      ok: false,
      reason: 'conf-change-pending',
    });
    net.stabilize();
    expect(net.raft(1).proposeConfChange(singleConfChange('addLearner', 5)).ok).toBe(true);
  });

  it('invalid changes are refused with the reason', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3], voters: [1, 2, 3] });
    net.elect(1);
    const leave = net.raft(1).proposeConfChange(leaveJointConfChange());
    expect(leave).toMatchObject({
      reason: 'invalid-conf-change',
      detail: 'not in a joint configuration',
    });
    const removeAll = net.raft(1).proposeConfChange({
      changes: [1, 2, 3].map((node) => ({ type: 'removeVoter' as const, node })),
      transition: 'joint-auto-leave',
    });
    expect(removeAll).toMatchObject({
      reason: 'invalid-conf-change',
      detail: 'removes every voter',
    });
    const badId = net.raft(1).proposeConfChange(singleConfChange('addVoter', 0));
    expect(badId).toMatchObject({ reason: 'invalid-conf-change' });
  });

  it('a leader removed from the configuration steps down and hands over at once', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    net.elect(1);
    net.proposeNext(1);
    net.stabilize();
    change(net, 1, singleConfChange('removeVoter', 1));
    expect(net.raft(1).isLeader()).toBe(false);
    expect(net.sent.get(MessageType.TimeoutNow)).toBe(1);
    const leader = net.leaderOf();
    expect([2, 3]).toContain(leader);
    expect(net.raft(leader).status().conf.voters).toEqual([2, 3]);
    expect(net.proposeNext(leader).ok).toBe(true);
    net.stabilize();
    expect(net.replica(2).smIndex).toBe(net.replica(3).smIndex);
  });
});

describe('applying a ConfChange', () => {
  const base = {
    voters: [1, 2, 3],
    votersOutgoing: [],
    learners: [],
    learnersNext: [],
    autoLeave: false,
  };

  it('a voter demoted to learner keeps voting in the outgoing set until the joint config ends', () => {
    const joint = applyConfChangeTo(base, {
      changes: [
        { type: 'addLearner', node: 3 },
        { type: 'addVoter', node: 4 },
      ],
      transition: 'joint-explicit',
    });
    expect(joint).toEqual({
      ok: true,
      conf: {
        voters: [1, 2, 4],
        votersOutgoing: [1, 2, 3],
        learners: [],
        learnersNext: [3],
        autoLeave: false,
      },
    });
    if (!joint.ok) return;
    expect(applyConfChangeTo(joint.conf, leaveJointConfChange())).toEqual({
      ok: true,
      conf: {
        voters: [1, 2, 4],
        votersOutgoing: [],
        learners: [3],
        learnersNext: [],
        autoLeave: false,
      },
    });
  });

  it("'auto' applies one voter change directly and several through joint consensus", () => {
    const one = applyConfChangeTo(base, singleConfChange('addVoter', 4));
    expect(one).toMatchObject({ ok: true, conf: { voters: [1, 2, 3, 4], votersOutgoing: [] } });
    const learner = applyConfChangeTo(base, {
      changes: [
        { type: 'addLearner', node: 5 },
        { type: 'addVoter', node: 4 },
      ],
      transition: 'auto',
    });
    expect(learner).toMatchObject({ ok: true, conf: { votersOutgoing: [] } }); // one voter changes
    const two = applyConfChangeTo(base, {
      changes: [
        { type: 'addVoter', node: 4 },
        { type: 'removeVoter', node: 1 },
      ],
      transition: 'auto',
    });
    expect(two).toMatchObject({
      ok: true,
      conf: { voters: [2, 3, 4], votersOutgoing: [1, 2, 3], autoLeave: true },
    });
    if (two.ok) {
      expect(applyConfChangeTo(two.conf, singleConfChange('addVoter', 5))).toEqual({
        ok: false,
        error: 'already in a joint configuration',
      });
    }
  });
});

describe('ConfChange encoding', () => {
  const changeArb = fc.record({
    type: fc.constantFrom('addVoter' as const, 'removeVoter' as const, 'addLearner' as const),
    node: fc.integer({ min: 1, max: 0xffffffff }),
  });
  const ccArb = fc.record({
    changes: fc.array(changeArb, { maxLength: 20 }),
    transition: fc.constantFrom(
      'auto' as const,
      'joint-auto-leave' as const,
      'joint-explicit' as const,
    ),
  });

  it('decodes what it encodes', () => {
    fc.assert(
      fc.property(ccArb, (cc) => {
        expect(decodeConfChange(encodeConfChange(cc))).toEqual(cc);
      }),
    );
  });

  it('is 4 bytes plus 5 per change', () => {
    fc.assert(
      fc.property(ccArb, (cc) => {
        expect(encodeConfChange(cc).byteLength).toBe(4 + 5 * cc.changes.length);
      }),
    );
  });

  it('rejects malformed bytes with a typed error', () => {
    const good = encodeConfChange(singleConfChange('addVoter', 7));
    const cases = [
      new Uint8Array(0),
      Uint8Array.of(2, 0, 0, 0), // version
      Uint8Array.of(1, 9, 0, 0), // transition
      good.slice(0, good.length - 1), // truncated
      Uint8Array.of(1, 0, 1, 0, 4, 7, 0, 0, 0), // change type
      Uint8Array.of(1, 0, 1, 0, 1, 0, 0, 0, 0), // node 0
    ];
    for (const bytes of cases) expect(() => decodeConfChange(bytes)).toThrow(ConfChangeDecodeError);
  });
});
