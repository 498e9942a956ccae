/**
 * The pure cost of the Raft core: replicas of a group run in one process over MemoryRaftStorage,
 * messages are handed from `ready()` straight to the peers' `step()`, and nothing touches a disk
 * or a socket. What remains is the core's own work (proposal, Ready assembly, append, ack,
 * commit, hand-out of committed entries) plus the in-memory storage it reads back.
 *
 * Rows:
 * - `commit/<replicas>r/<groups>g`: entries committed per second (counted at the leaders), with
 *   `batch` proposals per group per turn and the pipeline kept full (a turn = propose, then one
 *   ready/persist/deliver/advance pass over every replica).
 * - `idle-group-bytes`: heap bytes per idle follower group, excluding its log: 10,000 groups are
 *   created over one shared RandomSource; heap used after a full GC (exposed through
 *   v8.setFlagsFromString when node runs without --expose-gc) minus the heap used by the same
 *   10,000 storages alone, divided by 10,000. `opsPerSec` carries the bytes (not a rate).
 * - `idle-leader-bytes`: the same for groups whose replica leads a 3-voter group (Progress for
 *   every peer).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { defaultRaftTunables } from '../../engine/host.js';
import { RaftNode } from '../../engine/raft/raft-node.js';
import type { RaftConfig, Ready } from '../../engine/raft/ready.js';
import { MemoryRaftStorage } from '../../engine/raft/storage.js';
import {
  type ConfState,
  EntryType,
  type Message,
  MessageType,
  type RandomSource,
} from '../../engine/raft/types.js';
import { SeededRandom } from '../../engine/random.js';
import type { BenchRow, BenchSuite } from '../harness.js';

const targetCommitsPerSec = 1_000_000;
const targetIdleGroupBytes = 2048;
const payload = new Uint8Array(16);
/**
 * Entries the replicas of all groups together keep behind their applied indexes before the bench
 * compacts (a host's log lives on disk; here it would otherwise fill the heap and time the GC).
 */
const retainedEntries = 1 << 16;

function config(id: number, group: number, random: RandomSource): RaftConfig {
  return { ...defaultRaftTunables(), id, group, random };
}

function voters(n: number): ConfState {
  const ids = Array.from({ length: n }, (_, k) => k + 1);
  return { voters: ids, votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
}

/** One replica, its disk and its applied index. */
interface Replica {
  raft: RaftNode;
  storage: MemoryRaftStorage;
  applied: number;
}

/** Replicas of many groups in one process, with the host loop reduced to its essentials. */
class Cluster {
  readonly groups: Replica[][] = [];
  committed = 0;
  private inbox: Message[] = [];

  constructor(groupCount: number, replicas: number, random: RandomSource) {
    for (let g = 1; g <= groupCount; g++) {
      const group: Replica[] = [];
      for (let id = 1; id <= replicas; id++) {
        const storage = new MemoryRaftStorage(voters(replicas));
        group.push({ raft: new RaftNode(config(id, g, random), storage), storage, applied: 0 });
      }
      this.groups.push(group);
      group[0]!.raft.campaign();
    }
    while (this.pump() > 0) {
      // elect every group's replica 1
    }
    this.committed = 0;
  }

  /** One pass: every replica's Ready is persisted, sent and advanced; then messages delivered. */
  pump(): number {
    let work = 0;
    for (const group of this.groups) {
      for (const r of group) {
        if (!r.raft.hasReady()) continue;
        work++;
        this.handle(r, r.raft.ready());
      }
    }
    const inbox = this.inbox;
    this.inbox = [];
    for (const m of inbox) this.groups[m.group - 1]![m.to - 1]!.raft.step(m);
    return work + inbox.length;
  }

  private handle(r: Replica, rd: Ready): void {
    for (const m of rd.messages) this.inbox.push(m);
    if (rd.entries.length > 0) r.storage.append(rd.entries);
    if (rd.hardState !== undefined) r.storage.setHardState(rd.hardState);
    for (const m of rd.messagesAfterPersist) this.inbox.push(m);
    const applied = rd.committedEntries.length;
    if (applied > 0) r.applied = rd.committedEntries[applied - 1]!.index;
    if (r.raft.isLeader()) this.committed += applied;
    r.raft.advance(rd);
  }

  /** Proposes `batch` entries at every group's leader. */
  propose(batch: number): void {
    for (const group of this.groups) {
      const leader = group[0]!.raft;
      for (let i = 0; i < batch; i++) {
        if (!leader.propose(payload).ok) break;
      }
    }
  }

  /** Drops the log prefix a replica has applied (a host compacts behind its state machine). */
  compact(): void {
    const keep = Math.max(64, retainedEntries / this.groups.length);
    for (const group of this.groups) {
      for (const r of group) {
        if (r.applied - r.storage.firstIndex() > keep) {
          r.storage.compact(r.applied, voters(group.length));
        }
      }
    }
  }
}

function commitRow(name: string, groups: number, batch: number, millis: number): BenchRow {
  const cluster = new Cluster(groups, 3, new SeededRandom(1));
  const turnMicros: number[] = [];
  const start = performance.now();
  let turns = 0;
  while (performance.now() - start < millis) {
    const t0 = performance.now();
    cluster.propose(batch);
    cluster.pump();
    turnMicros.push((performance.now() - t0) * 1000);
    if (++turns % 8 === 0) cluster.compact();
  }
  while (cluster.pump() > 0) {
    // drain the pipeline so that every proposal counted as committed really was
  }
  const seconds = (performance.now() - start) / 1000;
  const rate = cluster.committed / seconds;
  turnMicros.sort((a, b) => a - b);
  const p50 = turnMicros[Math.floor(turnMicros.length / 2)] ?? Number.NaN;
  // A median turn commits as many entries as it proposes (the pipeline is full): its rate shows
  // the core's cost without the stalls (GC, preemption by other processes) the mean includes.
  const medianRate = (batch * groups) / (p50 / 1e6);
  return {
    name,
    opsPerSec: rate,
    bytesPerSec: rate * payload.byteLength,
    p50Us: p50,
    p99Us: turnMicros[Math.floor(turnMicros.length * 0.99)] ?? Number.NaN,
    samples: turns,
    note:
      `${batch} proposals/group/turn, ${payload.byteLength} B each; p50/p99 per turn; ` +
      `${(rate / targetCommitsPerSec).toFixed(2)}x the 1M/s target; median turn ` +
      `${(medianRate / 1e6).toFixed(2)} M/s`,
  };
}

function collectGarbage(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed !== undefined) return exposed;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

function heapAfterGc(gc: () => void): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

/** Heap bytes per group built by `make`, and per storage (its log), measured apart. */
function idleBytes(
  count: number,
  make: (storage: MemoryRaftStorage, g: number) => unknown,
): { group: number; storage: number } {
  const gc = collectGarbage();
  const base = heapAfterGc(gc);
  const storages = Array.from({ length: count }, () => new MemoryRaftStorage(voters(3)));
  const withStorages = heapAfterGc(gc);
  const nodes = storages.map((s, g) => make(s, g + 1));
  const withNodes = heapAfterGc(gc);
  if (nodes.length !== storages.length) throw new Error('groups were collected');
  return { group: (withNodes - withStorages) / count, storage: (withStorages - base) / count };
}

/** A follower that joined its leader and persisted one entry, then went quiet. */
function idleFollower(raft: RaftNode, storage: MemoryRaftStorage, group: number): void {
  raft.step({
    ...message(MessageType.App, group, 2, 1),
    entries: [{ term: 1, index: 1, type: EntryType.Normal, data: payload }],
    commit: 1,
  });
  settle(raft, storage);
}

/** A leader of three voters whose no-op both peers acknowledged. */
function idleLeader(raft: RaftNode, storage: MemoryRaftStorage, group: number): void {
  raft.campaign();
  settle(raft, storage);
  raft.step(message(MessageType.VoteResp, group, 2, 1));
  settle(raft, storage);
  for (const from of [2, 3])
    raft.step({ ...message(MessageType.AppResp, group, from, 1), index: 1 });
  settle(raft, storage);
}

function settle(raft: RaftNode, storage: MemoryRaftStorage): void {
  while (raft.hasReady()) {
    const rd = raft.ready();
    storage.append(rd.entries);
    if (rd.hardState !== undefined) storage.setHardState(rd.hardState);
    raft.advance(rd);
  }
}

function idleRow(name: string, count: number, leader: boolean): BenchRow {
  const random = new SeededRandom(7);
  const measured = idleBytes(count, (storage, g) => {
    const raft = new RaftNode({ ...config(1, g, random), preVote: false }, storage);
    if (leader) idleLeader(raft, storage, g);
    else idleFollower(raft, storage, g);
    return raft;
  });
  const bytes = measured.group;
  return {
    name,
    opsPerSec: bytes,
    bytesPerSec: 0,
    p50Us: Number.NaN,
    p99Us: Number.NaN,
    samples: count,
    note:
      `opsPerSec holds BYTES per idle group (heap after GC over ${count} groups; its ` +
      `MemoryRaftStorage, ${Math.round(measured.storage)} B empty, excluded); ` +
      `${(bytes / targetIdleGroupBytes).toFixed(2)}x the 2 KiB budget`,
  };
}

function message(type: MessageType, group: number, from: number, term: number): Message {
  return {
    type,
    group,
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
  };
}

const suite: BenchSuite = {
  name: 'raft',
  description: 'the Raft core alone: commits/s through in-process replicas, bytes per idle group',
  async run(ctx) {
    const millis = ctx.quick ? 400 : 3000;
    const rows: BenchRow[] = [];
    ctx.log('commit/3r/1g');
    rows.push(commitRow('commit/3r/1g', 1, 256, millis));
    ctx.log('commit/3r/1024g');
    rows.push(commitRow('commit/3r/1024g', 1024, 64, millis));
    ctx.log('idle groups');
    const count = ctx.quick ? 2000 : 10_000;
    rows.push(idleRow('idle-group-bytes', count, false));
    rows.push(idleRow('idle-leader-bytes', count, true));
    return rows;
  },
};

export default suite;
