/**
 * Snapshots over the wire, for the NodeHost.
 *
 * Sending. When a leader's Raft core needs to bring a follower past the compacted prefix of its
 * log it emits a Snap message. The host does not put that message on the Raft lane: it takes the
 * shard's snapshot metadata (the state's applied index and term and the membership as of that
 * index) and pins a consistent LMDB read of the shard in one synchronous step, so the metadata
 * describes exactly what is exported, then streams the export as chunks on the transport's
 * snapshot lane, every chunk carrying the metadata. The lane is flow-controlled: when its bounded
 * queue refuses a chunk the stream waits for the next tick and offers it again. A stream ends
 * when the follower's answer moves the leader's progress out of its snapshot state (success),
 * or fails — lost leadership, a lost connection, a stalled lane, no answer in time — and is then
 * reported with `reportSnapshot(peer, false)`, after which Raft probes and asks again.
 * At most `sendsMax` streams run per node; a Snap beyond that is reported failed at once.
 *
 * Receiving. A follower stages each chunk (`KvState.beginInstall`) as it arrives, in sequence;
 * a gap, a new stream or a long silence aborts the staged data. A lost connection does not by
 * itself: the follower may learn of it only after the leader's next stream began, and a stream
 * that really broke shows a gap (or is replaced) anyway.
 * On the last chunk it checks the snapshot is still needed (its index is beyond what this node
 * has committed and applied), swaps it in (one LMDB transaction), stores the membership with it,
 * and only then steps the Snap message into its Raft node, which moves its log to the snapshot
 * (the host persists the marker with the next Ready) and answers the leader.
 */
import { assert } from './assert.js';
import { FlotillaError } from './errors.js';
import type { RaftNode } from './raft/raft-node.js';
import { copyConfState } from './raft/storage.js';
import {
  type ConfState,
  type GroupId,
  type Message,
  MessageType,
  type NodeId,
  type SnapshotMeta,
} from './raft/types.js';
import type { Scheduler } from './scheduler.js';
import type { KvState, SnapshotInstall } from './state/kv-state.js';
import {
  ChunkKind,
  decodeChunk,
  decodeHeader,
  type SnapshotHeader,
} from './state/snapshot-format.js';
import type { Logger, SnapshotChunk } from './transport/transport.js';

/** What the snapshot machinery sees of one hosted group. */
export interface SnapshotGroup {
  readonly id: GroupId;
  readonly raft: RaftNode;
  /** The highest index applied to the state. */
  applied: number;
  /** The membership as of `applied`. */
  confState: ConfState;
}

/** What the snapshot machinery needs from its host. */
export interface SnapshotHost {
  readonly nodeId: NodeId;
  readonly state: KvState;
  readonly scheduler: Scheduler;
  readonly logger: Logger;
  /** Queues a chunk on the snapshot lane; false when it cannot (queue full, unknown peer). */
  sendChunk(to: NodeId, chunk: SnapshotChunk): boolean;
  group(id: GroupId): SnapshotGroup | undefined;
  /** The group may have a Ready (a message was stepped into it, or a report made). */
  markDirty(group: SnapshotGroup): void;
  /** A state write failed: the node must stop. */
  fail(err: unknown): void;
}

/** Tunables of snapshot streaming (defaults in engine/limits.ts). */
export interface SnapshotTuning {
  sendsMax: number;
  stallMs: number;
  ackTimeoutMs: number;
  receiveIdleMs: number;
}

/** Counters of snapshot streaming on one node. */
export interface SnapshotStats {
  /** Streams being sent / received now. */
  sending: number;
  receiving: number;
  /** Streams the follower answered. */
  sent: number;
  /** Streams abandoned (lost connection, stall, no answer, export failure) and reported. */
  sendFailed: number;
  /** Snap requests refused because `sendsMax` streams were running. */
  sendRefused: number;
  /** Snapshots swapped into the state. */
  installed: number;
  /** Partly received streams dropped (gap, corrupt chunk, silence, lost connection). */
  receiveAborted: number;
  /** Complete or starting streams not installed because this node no longer needed them. */
  receiveDeclined: number;
}

/** The snapshot of `group` the state holds now: its applied entry and the membership then. */
export function stateSnapshotMeta(state: KvState, group: SnapshotGroup): SnapshotMeta {
  const { index, term } = state.applied(group.id);
  assert(index === group.applied, 'the host tracks the applied index of the state');
  return { index, term, conf: copyConfState(group.confState) };
}

/** Why a begin chunk does not open a stream of `meta` for `group`, or undefined if it does. */
function beginMismatch(data: Uint8Array, meta: SnapshotMeta, group: GroupId): string | undefined {
  let header: { appliedIndex: number; appliedTerm: number };
  try {
    const chunk = decodeChunk(data);
    if (chunk.kind !== ChunkKind.Begin) return `the first chunk has kind ${chunk.kind}`;
    if (chunk.shard !== group) return `the stream exports shard ${chunk.shard}`;
    header = decodeHeader(chunk.payload);
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  if (header.appliedIndex !== meta.index || header.appliedTerm !== meta.term) {
    return (
      `the stream holds index ${header.appliedIndex} term ${header.appliedTerm}, ` +
      `its metadata says index ${meta.index} term ${meta.term}`
    );
  }
  return undefined;
}

function streamKey(group: GroupId, peer: NodeId): string {
  return `${group}/${peer}`;
}

/** One snapshot being sent to one follower. */
interface OutgoingStream {
  readonly key: string;
  readonly group: SnapshotGroup;
  readonly peer: NodeId;
  /** The leader's term when the stream began; the stream dies with it. */
  readonly term: number;
  readonly meta: SnapshotMeta;
  readonly chunks: AsyncGenerator<Uint8Array>;
  /** 'streaming' until the last chunk is queued, then 'acking' until the follower answers. */
  phase: 'streaming' | 'acking';
  /** When the stream last moved (a chunk queued). */
  progressMs: number;
  ended: boolean;
}

type SendOutcome = 'sent' | 'failed' | 'deposed' | 'superseded' | 'closed';

/** The sending side; see the module comment. */
export class SnapshotSender {
  // Invariant: streams.size <= tuning.sendsMax; one stream per (group, peer).
  private readonly streams = new Map<string, OutgoingStream>();
  /** Streams waiting for the next tick to offer a refused chunk again (at most one each). */
  private tickWaiters: (() => void)[] = [];
  private sent = 0;
  private failed = 0;
  private refused = 0;

  constructor(
    private readonly host: SnapshotHost,
    private readonly tuning: SnapshotTuning,
  ) {}

  /** Raft asked, with the Snap message `m`, for `group`'s snapshot to go to `m.to`. */
  start(group: SnapshotGroup, m: Message): void {
    assert(m.type === MessageType.Snap, 'only Snap messages start a snapshot stream');
    const key = streamKey(group.id, m.to);
    if (this.streams.has(key)) return; // the running stream answers this request
    if (this.streams.size >= this.tuning.sendsMax) {
      this.refused++;
      group.raft.reportSnapshot(m.to, false);
      this.host.markDirty(group);
      return;
    }
    // Metadata and the export's read transaction are taken in one synchronous step (the
    // generator's body runs up to its first chunk inside next()), so they describe the same
    // state; run() checks the exported header against the metadata.
    const meta = stateSnapshotMeta(this.host.state, group);
    const chunks = this.host.state.exportSnapshot(group.id);
    const first = chunks.next();
    const stream: OutgoingStream = {
      key,
      group,
      peer: m.to,
      term: m.term,
      meta,
      chunks,
      phase: 'streaming',
      progressMs: this.host.scheduler.now(),
      ended: false,
    };
    this.streams.set(key, stream);
    void this.run(stream, first);
  }

  /** Checks every stream's leadership, answer and deadline; wakes streams waiting for room. */
  tick(): void {
    const now = this.host.scheduler.now();
    for (const s of [...this.streams.values()]) this.check(s, now);
    for (const wake of this.tickWaiters.splice(0)) wake();
  }

  /** The connection to `peer` was lost: its streams are broken; Raft will ask again. */
  abortPeer(peer: NodeId): void {
    for (const s of [...this.streams.values()]) {
      if (s.peer === peer) this.end(s, 'failed', 'the connection to the follower was lost');
    }
  }

  /** Ends every stream without reporting (the host is closing). */
  close(): void {
    for (const s of [...this.streams.values()]) this.end(s, 'closed');
    for (const wake of this.tickWaiters.splice(0)) wake();
  }

  /** Counters for SnapshotStats. */
  stats(): Pick<SnapshotStats, 'sending' | 'sent' | 'sendFailed' | 'sendRefused'> {
    return {
      sending: this.streams.size,
      sent: this.sent,
      sendFailed: this.failed,
      sendRefused: this.refused,
    };
  }

  private async run(s: OutgoingStream, first: Promise<IteratorResult<Uint8Array>>): Promise<void> {
    try {
      const begin = await first;
      assert(begin.done !== true, 'a snapshot stream starts with a begin chunk');
      const mismatch = beginMismatch(begin.value, s.meta, s.group.id);
      assert(mismatch === undefined, `the export matches its metadata: ${mismatch}`);
      let data: Uint8Array = begin.value;
      for (let seq = 0; ; seq++) {
        const next = await s.chunks.next();
        if (s.ended) return;
        const last = next.done === true;
        const chunk: SnapshotChunk = {
          group: s.group.id,
          from: this.host.nodeId,
          to: s.peer,
          term: s.term,
          snapshot: s.meta,
          seq,
          last,
          data,
        };
        if (!(await this.offer(s, chunk))) return;
        if (next.done === true) break;
        data = next.value;
      }
      s.phase = 'acking';
      s.progressMs = this.host.scheduler.now();
    } catch (err) {
      if (s.ended) return;
      this.host.logger('warn', 'snapshot export failed', {
        group: s.group.id,
        peer: s.peer,
        error: err,
      });
      this.end(s, 'failed');
    }
  }

  /** Queues `chunk`, waiting for ticks while the lane refuses; false once the stream ended. */
  private async offer(s: OutgoingStream, chunk: SnapshotChunk): Promise<boolean> {
    while (!this.host.sendChunk(s.peer, chunk)) {
      if (this.host.scheduler.now() - s.progressMs >= this.tuning.stallMs) {
        this.end(s, 'failed', `the snapshot lane refused chunks for ${this.tuning.stallMs} ms`);
        return false;
      }
      await new Promise<void>((resolve) => this.tickWaiters.push(resolve));
      if (s.ended) return false;
    }
    s.progressMs = this.host.scheduler.now();
    return true;
  }

  private check(s: OutgoingStream, now: number): void {
    const raft = s.group.raft;
    if (!raft.isLeader() || raft.hardState().term !== s.term) {
      this.end(s, 'deposed');
      return;
    }
    const progress = raft.status().progress.find((p) => p.id === s.peer);
    if (progress === undefined) {
      this.end(s, 'deposed');
      return;
    }
    if (progress.state !== 'snapshot') {
      // The follower answered: after this stream (sent), or before it (it no longer needs it).
      this.end(s, s.phase === 'acking' ? 'sent' : 'superseded');
      return;
    }
    if (s.phase === 'acking' && now - s.progressMs >= this.tuning.ackTimeoutMs) {
      this.end(s, 'failed', `no answer ${this.tuning.ackTimeoutMs} ms after the last chunk`);
    }
  }

  private end(s: OutgoingStream, outcome: SendOutcome, why?: string): void {
    if (s.ended) return;
    s.ended = true;
    this.streams.delete(s.key);
    if (outcome === 'sent') this.sent++;
    if (outcome === 'failed') {
      this.failed++;
      this.host.logger('info', `snapshot stream abandoned: ${why ?? 'export failed'}`, {
        group: s.group.id,
        peer: s.peer,
        index: s.meta.index,
      });
      const raft = s.group.raft;
      if (raft.isLeader() && raft.hardState().term === s.term) {
        raft.reportSnapshot(s.peer, false);
        this.host.markDirty(s.group);
      }
    }
    // Releases the export's read transaction (the generator's finally block).
    s.chunks.return(undefined).catch((err: unknown) => {
      this.host.logger('warn', 'releasing a snapshot export failed', { error: err });
    });
  }
}

/** One snapshot being received from a leader. */
interface IncomingStream {
  readonly from: NodeId;
  readonly term: number;
  readonly meta: SnapshotMeta;
  readonly install: SnapshotInstall;
  nextSeq: number;
  lastChunkMs: number;
}

/** The receiving side; see the module comment. */
export class SnapshotReceiver {
  /** At most one stream per group; their number is bounded by KvState's staging limit. */
  private readonly streams = new Map<GroupId, IncomingStream>();
  private installed = 0;
  private aborted = 0;
  private declined = 0;

  constructor(
    private readonly host: SnapshotHost,
    private readonly tuning: SnapshotTuning,
  ) {}

  /** Handles one chunk from `from`. */
  receive(from: NodeId, chunk: SnapshotChunk): void {
    const group = this.host.group(chunk.group);
    if (group === undefined || chunk.to !== this.host.nodeId || chunk.from !== from) return;
    let stream = this.streams.get(group.id);
    if (chunk.seq === 0) {
      if (stream !== undefined) this.abort(group.id, stream, 'a new stream replaced it');
      stream = this.begin(group, from, chunk);
      if (stream === undefined) return;
    } else if (stream === undefined) {
      return; // the rest of a stream refused or broken earlier; the leader starts over
    } else if (!continues(stream, from, chunk)) {
      this.abort(group.id, stream, `chunk ${chunk.seq} arrived, ${stream.nextSeq} was due`);
      return;
    }
    try {
      stream.install.write(chunk.data);
    } catch (err) {
      // The install discarded its staged data itself.
      this.streams.delete(group.id);
      this.aborted++;
      this.host.logger('warn', 'snapshot chunk rejected', { group: group.id, from, error: err });
      return;
    }
    stream.nextSeq++;
    stream.lastChunkMs = this.host.scheduler.now();
    if (chunk.last) this.finish(group, stream);
  }

  /** Drops streams that went silent. */
  tick(): void {
    const now = this.host.scheduler.now();
    for (const [group, s] of [...this.streams]) {
      if (now - s.lastChunkMs >= this.tuning.receiveIdleMs) {
        this.abort(group, s, `no chunk for ${this.tuning.receiveIdleMs} ms`);
      }
    }
  }

  /** Drops every partly received stream (the host is closing). */
  close(): void {
    for (const s of this.streams.values()) s.install.abort();
    this.streams.clear();
  }

  /** Counters for SnapshotStats. */
  stats(): Pick<SnapshotStats, 'receiving' | 'installed' | 'receiveAborted' | 'receiveDeclined'> {
    return {
      receiving: this.streams.size,
      installed: this.installed,
      receiveAborted: this.aborted,
      receiveDeclined: this.declined,
    };
  }

  /** Whether a snapshot at `meta` would move `group` forward. */
  private needs(group: SnapshotGroup, meta: SnapshotMeta): boolean {
    return meta.index > Math.max(group.applied, group.raft.hardState().commit);
  }

  private begin(
    group: SnapshotGroup,
    from: NodeId,
    chunk: SnapshotChunk,
  ): IncomingStream | undefined {
    const meta = chunk.snapshot;
    if (chunk.term < group.raft.hardState().term) return undefined; // a deposed leader's stream
    if (!this.needs(group, meta)) {
      // Let Raft answer with what this node has, so the leader stops sending.
      this.declined++;
      this.stepSnap(group, from, chunk.term, meta);
      return undefined;
    }
    const mismatch = beginMismatch(chunk.data, meta, group.id);
    if (mismatch !== undefined) {
      this.aborted++;
      this.host.logger('warn', `snapshot stream refused: ${mismatch}`, { group: group.id, from });
      return undefined;
    }
    let install: SnapshotInstall;
    try {
      install = this.host.state.beginInstall(group.id);
    } catch (err) {
      if (!(err instanceof FlotillaError && err.code === 'BUSY')) throw err;
      this.aborted++;
      this.host.logger('info', 'snapshot stream refused: too many installs', { group: group.id });
      return undefined;
    }
    const stream: IncomingStream = {
      from,
      term: chunk.term,
      meta,
      install,
      nextSeq: 0,
      lastChunkMs: this.host.scheduler.now(),
    };
    this.streams.set(group.id, stream);
    return stream;
  }

  private finish(group: SnapshotGroup, s: IncomingStream): void {
    this.streams.delete(group.id);
    if (s.term < group.raft.hardState().term || !this.needs(group, s.meta)) {
      // This node moved on (a newer leader, or the log caught up) while the stream ran.
      s.install.abort();
      this.declined++;
      this.stepSnap(group, s.from, s.term, s.meta);
      return;
    }
    let header: SnapshotHeader;
    try {
      // The membership as of the snapshot's index goes with it, before Raft learns of it.
      header = s.install.commit(s.meta.conf);
    } catch (err) {
      if (!(err instanceof FlotillaError && err.code === 'CORRUPT_STATE')) {
        this.host.fail(err);
        return;
      }
      // The sender marked a chunk last that does not end the stream; nothing was installed.
      this.aborted++;
      this.host.logger('warn', 'snapshot stream rejected', { group: group.id, error: err });
      return;
    }
    assert(header.appliedIndex === s.meta.index, 'the installed state is the announced one');
    group.applied = s.meta.index;
    group.confState = copyConfState(s.meta.conf);
    this.installed++;
    this.stepSnap(group, s.from, s.term, s.meta);
  }

  private abort(group: GroupId, s: IncomingStream, why: string): void {
    this.streams.delete(group);
    s.install.abort();
    this.aborted++;
    this.host.logger('info', `partly received snapshot dropped: ${why}`, { group, from: s.from });
  }

  /** Steps the Snap message the stream stands for into the group's Raft node. */
  private stepSnap(group: SnapshotGroup, from: NodeId, term: number, meta: SnapshotMeta): void {
    const m: Message = {
      type: MessageType.Snap,
      group: group.id,
      from,
      to: this.host.nodeId,
      term,
      logTerm: meta.term,
      index: meta.index,
      entries: [],
      commit: 0,
      reject: false,
      rejectHint: 0,
      logTermHint: 0,
      snapshot: meta,
    };
    group.raft.step(m);
    this.host.markDirty(group);
  }
}

/** Whether `chunk` is the next chunk of `s`. */
function continues(s: IncomingStream, from: NodeId, chunk: SnapshotChunk): boolean {
  return (
    s.from === from &&
    s.term === chunk.term &&
    s.meta.index === chunk.snapshot.index &&
    s.meta.term === chunk.snapshot.term &&
    s.nextSeq === chunk.seq
  );
}
