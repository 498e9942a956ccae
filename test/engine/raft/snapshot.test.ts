/**
 * Snapshots (Raft §7): a follower behind the leader's compaction point gets a Snap, installs the
 * metadata through its Ready, and resumes replication after it.
 */
import { describe, expect, it } from 'vitest';
import { RaftNode } from '../../../engine/raft/raft-node.js';
import { MemoryRaftStorage } from '../../../engine/raft/storage.js';
import { MessageType } from '../../../engine/raft/types.js';
import { SeededRandom } from '../../../engine/random.js';
import { raftTestConfig } from '../../support/raft-config.js';
import { RaftNetwork } from '../../support/raft-network.js';

function behindCompaction(): RaftNetwork {
  const net = new RaftNetwork({ nodes: [1, 2, 3], compactAfter: 10 });
  net.elect(1);
  net.isolate(3);
  for (let i = 0; i < 30; i++) {
    net.proposeNext(1);
    net.stabilize();
  }
  expect(net.replica(1).storage.firstIndex()).toBeGreaterThan(2);
  return net;
}

describe('snapshots', () => {
  it('a follower behind the compaction point is sent a snapshot and catches up', () => {
    const net = behindCompaction();
    net.heal();
    net.tick(1);
    net.stabilize();
    expect(net.sent.get(MessageType.Snap)).toBe(1);
    const follower = net.replica(3);
    expect(follower.storage.firstIndex()).toBeGreaterThan(2); // its log starts after the snapshot
    expect(follower.smIndex).toBe(net.replica(1).smIndex);
    expect(follower.smHash).toBe(net.replica(1).smHash);
    expect(
      net
        .raft(1)
        .status()
        .progress.find((p) => p.id === 3)?.state,
    ).toBe('replicate');
    net.proposeNext(1);
    net.stabilize();
    expect(follower.smIndex).toBe(net.replica(1).smIndex);
  });

  it('a snapshot that fails to send is retried after the follower answers again', () => {
    const net = behindCompaction();
    net.heal();
    let failures = 1;
    net.filter = (m) => m.type !== MessageType.Snap || failures-- <= 0;
    net.tick(1);
    net.stabilize();
    expect(
      net
        .raft(1)
        .status()
        .progress.find((p) => p.id === 3)?.state,
    ).toBe('probe');
    net.tick(1);
    net.stabilize();
    expect(net.sent.get(MessageType.Snap)).toBe(2);
    expect(net.replica(3).smIndex).toBe(net.replica(1).smIndex);
  });

  it('the snapshot carries the membership, which the follower adopts', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3, 4], voters: [1, 2, 3], compactAfter: 5 });
    net.elect(1);
    net.isolate(3);
    net
      .raft(1)
      .proposeConfChange({ changes: [{ type: 'addLearner', node: 4 }], transition: 'auto' });
    for (let i = 0; i < 12; i++) {
      net.proposeNext(1);
      net.stabilize();
    }
    net.heal();
    net.tick(1);
    net.stabilize();
    expect(net.raft(3).status().conf.learners).toEqual([4]);
    expect(net.replica(3).storage.initialState().confState.learners).toEqual([4]);
  });

  it('a follower ignores a snapshot older than its commit index', () => {
    const net = new RaftNetwork({ nodes: [1, 2] });
    net.elect(1);
    for (let i = 0; i < 5; i++) net.proposeNext(1);
    net.stabilize();
    const raft = net.raft(2);
    const before = raft.status();
    raft.step({
      type: MessageType.Snap,
      group: 1,
      from: 1,
      to: 2,
      term: 1,
      logTerm: 1,
      index: 3,
      entries: [],
      commit: 0,
      reject: false,
      rejectHint: 0,
      logTermHint: 0,
      snapshot: { index: 3, term: 1, conf: before.conf },
    });
    const rd = raft.ready();
    expect(rd.snapshot).toBeUndefined();
    expect(rd.messagesAfterPersist).toMatchObject([{ type: MessageType.AppResp, index: 6 }]);
    raft.advance(rd);
    expect(raft.status().lastIndex).toBe(before.lastIndex);
  });

  it('a node whose state holds a snapshot its log never recorded restarts its log from it', () => {
    const conf = { voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [] };
    const storage = new MemoryRaftStorage({ ...conf, autoLeave: false });
    const raft = new RaftNode(
      raftTestConfig(1, 1, { random: new SeededRandom(1), applied: 0 }),
      storage,
    );
    const snap = { index: 10, term: 2, conf: { ...conf, voters: [1, 2, 4], autoLeave: false } };
    raft.restoreSnapshot(snap);
    expect(raft.campaign()).toMatchObject({ ok: false, reason: 'not-promotable' });
    const rd = raft.ready();
    expect(rd.snapshot).toEqual(snap);
    expect(rd.hardState?.commit).toBe(10);
    expect(rd.confState?.voters).toEqual([1, 2, 4]);
    expect(rd.committedEntries).toEqual([]);
    storage.applySnapshot(snap);
    raft.advance(rd);
    const status = raft.status();
    expect(status).toMatchObject({ applied: 10, commit: 10, firstIndex: 11, lastIndex: 10 });
  });
});
