/**
 * The Ready/advance contract (engine/raft/ready.ts), driven by hand on bare RaftNodes.
 */
import { describe, expect, it } from 'vitest';
import { RaftNode } from '../../../engine/raft/raft-node.js';
import type { RaftConfig, Ready } from '../../../engine/raft/ready.js';
import { MemoryRaftStorage } from '../../../engine/raft/storage.js';
import {
  type ConfState,
  EntryType,
  type Message,
  MessageType,
} from '../../../engine/raft/types.js';
import { raftTestConfig } from '../../support/raft-config.js';
import { bytes, RaftNetwork } from '../../support/raft-network.js';

function conf(voters: number[]): ConfState {
  return { voters, votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
}

function node(id: number, voters: number[], overrides: Partial<RaftConfig> = {}) {
  const storage = new MemoryRaftStorage(conf(voters));
  return { raft: new RaftNode(raftTestConfig(id, 1, overrides), storage), storage };
}

/** Persists a Ready into `storage` the way a host does, then advances. */
function persist(raft: RaftNode, storage: MemoryRaftStorage, rd: Ready): void {
  if (rd.snapshot !== undefined) storage.applySnapshot(rd.snapshot);
  storage.append(rd.entries);
  if (rd.hardState !== undefined) storage.setHardState(rd.hardState);
  raft.advance(rd);
}

function drain(raft: RaftNode, storage: MemoryRaftStorage): Ready[] {
  const out: Ready[] = [];
  while (raft.hasReady()) {
    const rd = raft.ready();
    out.push(rd);
    persist(raft, storage, rd);
  }
  return out;
}

describe('the Ready contract', () => {
  it('requests may leave before the write, every response only after it', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3], config: { preVote: false } });
    const seen = new Map<MessageType, 'early' | 'late'>();
    for (const id of [1, 2, 3]) {
      const raft = net.raft(id);
      const ready = raft.ready.bind(raft);
      raft.ready = () => {
        const rd = ready();
        for (const m of rd.messages) seen.set(m.type, 'early');
        for (const m of rd.messagesAfterPersist) seen.set(m.type, 'late');
        return rd;
      };
    }
    net.elect(1);
    net.read(2);
    net.proposeNext(1);
    net.tick(1);
    net.stabilize();
    expect(Object.fromEntries(seen)).toEqual({
      [MessageType.Vote]: 'early',
      [MessageType.VoteResp]: 'late',
      [MessageType.App]: 'early',
      [MessageType.AppResp]: 'late',
      [MessageType.Heartbeat]: 'early',
      [MessageType.HeartbeatResp]: 'late',
      [MessageType.ReadIndex]: 'early',
      [MessageType.ReadIndexResp]: 'early',
    });
  });

  it('mustSync for entries or a new term/vote, not for a commit index alone', () => {
    const { raft, storage } = node(1, [1, 2], { preVote: false });
    raft.campaign();
    const [vote] = drain(raft, storage);
    expect(vote!.mustSync).toBe(true);
    expect(vote!.hardState).toEqual({ term: 1, vote: 1, commit: 0 });
    raft.step(msg(MessageType.VoteResp, 2, 1, { reject: false }));
    const [lead] = drain(raft, storage);
    expect(lead!.softState).toEqual({ role: 'leader', leader: 1, term: 1 });
    expect(lead!.entries).toHaveLength(1);
    expect(lead!.mustSync).toBe(true);
    raft.step(msg(MessageType.AppResp, 2, 1, { index: 1 }));
    const [commit] = drain(raft, storage);
    expect(commit!.hardState).toEqual({ term: 1, vote: 1, commit: 1 });
    expect(commit!.entries).toHaveLength(0);
    expect(commit!.mustSync).toBe(false);
    expect(commit!.committedEntries.map((e) => e.index)).toEqual([1]);
  });

  it('hands out one Ready at a time; work done meanwhile waits for the next', () => {
    const { raft, storage } = node(1, [1]);
    raft.campaign();
    drain(raft, storage);
    drain(raft, storage);
    expect(raft.isLeader()).toBe(true);
    raft.propose(bytes('a'));
    const first = raft.ready();
    expect(raft.hasReady()).toBe(false);
    expect(() => raft.ready()).toThrow(/not advanced/);
    raft.propose(bytes('b'));
    expect(first.entries.map((e) => e.index)).toEqual([2]);
    persist(raft, storage, first);
    const second = raft.ready();
    expect(second.entries.map((e) => e.index)).toEqual([3]);
    expect(second.committedEntries.map((e) => e.index)).toEqual([2]);
    expect(() => raft.advance(first)).toThrow(/not the outstanding/);
  });

  it('a single-node leader commits an entry only once its own write is durable', () => {
    const { raft, storage } = node(1, [1]);
    raft.campaign();
    drain(raft, storage);
    drain(raft, storage);
    raft.propose(bytes('x'));
    const rd = raft.ready();
    expect(rd.entries.map((e) => e.index)).toEqual([2]);
    expect(raft.status().commit).toBe(1);
    persist(raft, storage, rd);
    expect(raft.status().commit).toBe(2);
    expect(raft.ready().committedEntries.map((e) => e.index)).toEqual([2]);
  });

  it('a candidate becomes leader only once the hard state with its own vote is durable', () => {
    const { raft, storage } = node(1, [1, 2, 3], { preVote: false });
    raft.campaign();
    const rd = raft.ready();
    raft.step(msg(MessageType.VoteResp, 2, 1, {}));
    raft.step(msg(MessageType.VoteResp, 3, 1, {}));
    expect(raft.status().role).toBe('candidate'); // two votes, but its own is not durable
    persist(raft, storage, rd);
    expect(raft.isLeader()).toBe(true);
  });

  it('committed entries per Ready are bounded in bytes, at least one', () => {
    const { raft, storage } = node(1, [1], { committedBytesPerReadyMax: 100 });
    raft.campaign();
    drain(raft, storage);
    drain(raft, storage);
    for (let i = 0; i < 6; i++) raft.propose(new Uint8Array(40)); // 72 bytes each
    const sizes = drain(raft, storage).map((rd) => rd.committedEntries.length);
    expect(sizes.filter((n) => n > 0)).toEqual([1, 1, 1, 1, 1, 1]);
  });

  it('a heartbeat carries only group, term, commit and context', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    net.elect(1);
    net.tick(1);
    net.processAll();
    const hb = net.inflightOf(MessageType.Heartbeat)[0]!;
    expect(hb).toMatchObject({ group: 1, term: 1, commit: 1, index: 0, logTerm: 0, entries: [] });
    expect(hb.context).toBeUndefined(); // no read round, no lease: nothing to echo
    net.deliverDue();
    net.processAll();
    const resp = net.inflightOf(MessageType.HeartbeatResp)[0]!;
    expect(resp).toMatchObject({ group: 1, term: 1, index: 0, commit: 0, entries: [] });
  });

  it('entries replaced while their write was in flight are written again', () => {
    const { raft, storage } = node(2, [1, 2, 3]);
    const entries = [1, 2, 3].map((i) => ({
      term: 1,
      index: i,
      type: EntryType.Normal,
      data: bytes(`a${i}`),
    }));
    raft.step(msg(MessageType.App, 1, 1, { entries, index: 0, logTerm: 0, to: 2 }));
    const inFlight = raft.ready();
    const replacement = [{ term: 2, index: 2, type: EntryType.Normal, data: bytes('b2') }];
    raft.step(msg(MessageType.App, 3, 2, { entries: replacement, index: 1, logTerm: 1, to: 2 }));
    persist(raft, storage, inFlight);
    const next = raft.ready();
    expect(next.entries.map((e) => `${e.index}:${e.term}`)).toEqual(['2:2']);
    persist(raft, storage, next);
    expect(storage.entries(1, 3, 1e9).map((e) => e.term)).toEqual([1, 2]);
  });

  it('a restarted node replays the committed entries after the applied index', () => {
    const net = new RaftNetwork({ nodes: [1, 2, 3] });
    net.elect(1);
    for (let i = 0; i < 5; i++) net.proposeNext(1);
    net.stabilize();
    const r = net.replica(2);
    const { storage } = r;
    const restarted = new RaftNode(raftTestConfig(2, 1, { applied: 3 }), storage);
    const rd = restarted.ready();
    expect(rd.committedEntries.map((e) => e.index)).toEqual([4, 5, 6]);
    expect(rd.entries).toHaveLength(0);
    expect(rd.hardState).toBeUndefined();
  });

  it('outgoing messages beyond messagesQueuedMax are dropped, not queued', () => {
    const { raft } = node(1, [1, 2, 3], { messagesQueuedMax: 4, preVote: false });
    for (let i = 0; i < 10; i++) raft.step(msg(MessageType.Vote, 2, 1 + i, { to: 1 }));
    expect(raft.ready().messagesAfterPersist).toHaveLength(4);
    expect(raft.status().messagesDropped).toBe(6);
  });
});

function msg(type: MessageType, from: number, term: number, fields: Partial<Message>): Message {
  return {
    type,
    group: 1,
    from,
    to: 1,
    term,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    logTermHint: 0,
    ...fields,
  };
}
