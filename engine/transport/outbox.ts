/**
 * What one node has for one peer: the bounded Raft queue, the bounded snapshot queue and the
 * counters. Both transports use it, so that queueing, dropping and frame assembly behave the same
 * in simulation as on real sockets.
 */
import { assert } from '../assert.js';
import { frameBytesMax, frameMessagesMax } from '../limits.js';
import type { Message, NodeId } from '../raft/types.js';
import { BoundedQueue } from './bounded-queue.js';
import {
  assertChunkSendable,
  assertSendable,
  encodeRaftFrame,
  encodeSnapshotFrame,
  messageWireBytes,
  raftFrameFixedBytesMax,
  snapshotFrameBytes,
} from './codec.js';
import type { LinkState, PeerStats, QueueTuning, SnapshotChunk } from './transport.js';

/** Message bytes one Raft frame may carry. */
export const raftFrameBudgetBytes = frameBytesMax - raftFrameFixedBytesMax;

/** The counters of PeerStats that the outbox and the transports bump. */
export type PeerCounters = Omit<
  PeerStats,
  'peer' | 'state' | 'snapshotState' | 'queuedMessages' | 'queuedBytes' | 'queuedChunks'
>;

function zeroCounters(): PeerCounters {
  return {
    sentMessages: 0,
    sentFrames: 0,
    sentBytes: 0,
    receivedMessages: 0,
    receivedFrames: 0,
    receivedBytes: 0,
    droppedMessages: 0,
    sentChunks: 0,
    receivedChunks: 0,
    droppedChunks: 0,
    connects: 0,
    disconnects: 0,
  };
}

/** Why `offerMessages` refused a batch. */
export type RefusalReason = 'queue-full' | 'oversized';

/** Queues and counters of one peer. */
export class PeerOutbox {
  readonly peer: NodeId;
  readonly counters: PeerCounters = zeroCounters();
  private readonly raft: BoundedQueue<Message>;
  private readonly chunks: BoundedQueue<SnapshotChunk>;

  constructor(peer: NodeId, tuning: QueueTuning) {
    this.peer = peer;
    this.raft = new BoundedQueue(tuning.sendQueueMessagesMax, tuning.sendQueueBytesMax);
    this.chunks = new BoundedQueue(tuning.snapshotQueueChunksMax, tuning.snapshotQueueBytesMax);
  }

  /** Queues a batch from `self`; on refusal counts the batch as dropped and says why. */
  offerMessages(self: NodeId, msgs: readonly Message[]): RefusalReason | null {
    const sizes: number[] = [];
    let oversized = false;
    for (const m of msgs) {
      assertSendable(m, self, this.peer);
      const size = messageWireBytes(m);
      if (size > raftFrameBudgetBytes) oversized = true;
      sizes.push(size);
    }
    const refusal = oversized ? 'oversized' : this.raft.offer(msgs, sizes) ? null : 'queue-full';
    if (refusal !== null) this.counters.droppedMessages += msgs.length;
    return refusal;
  }

  /** Queues a chunk from `self`; false (counted) when the snapshot queue is full. */
  offerChunk(self: NodeId, chunk: SnapshotChunk): boolean {
    assertChunkSendable(chunk, self, this.peer);
    if (this.chunks.offer([chunk], [snapshotFrameBytes(chunk)])) return true;
    this.counters.droppedChunks++;
    return false;
  }

  /** Whether Raft messages are waiting. */
  hasMessages(): boolean {
    return this.raft.length > 0;
  }

  /** Whether snapshot chunks are waiting. */
  hasChunks(): boolean {
    return this.chunks.length > 0;
  }

  /**
   * Takes the next batch of queued messages that fits one frame (normally all of them) and
   * counts it as sent; the caller encodes or delivers it.
   */
  takeRaftBatch(): Message[] {
    const batch = this.raft.take(raftFrameBudgetBytes, frameMessagesMax);
    assert(batch.length > 0, 'takeRaftBatch is called with messages queued');
    this.counters.sentMessages += batch.length;
    this.counters.sentFrames++;
    return batch;
  }

  /** Takes the next batch and encodes it as one frame from `self`. */
  takeRaftFrame(self: NodeId): Uint8Array {
    const frame = encodeRaftFrame(self, this.peer, this.takeRaftBatch());
    this.counters.sentBytes += frame.length;
    return frame;
  }

  /** Takes the next chunk and counts it as sent. */
  takeChunk(): SnapshotChunk {
    const [chunk] = this.chunks.take(0, 1);
    assert(chunk !== undefined, 'takeChunk is called with chunks queued');
    this.counters.sentChunks++;
    return chunk;
  }

  /** Takes the next chunk and encodes it. */
  takeChunkFrame(): Uint8Array {
    const frame = encodeSnapshotFrame(this.takeChunk());
    this.counters.sentBytes += frame.length;
    return frame;
  }

  /** Drops everything queued (peer removed, transport closed), counting it. */
  dropAll(): { messages: number; chunks: number } {
    const messages = this.raft.clear();
    const chunks = this.chunks.clear();
    this.counters.droppedMessages += messages;
    this.counters.droppedChunks += chunks;
    return { messages, chunks };
  }

  /** The PeerStats snapshot of this peer. */
  stats(state: LinkState, snapshotState: LinkState): PeerStats {
    return {
      peer: this.peer,
      state,
      snapshotState,
      ...this.counters,
      queuedMessages: this.raft.length,
      queuedBytes: this.raft.bytes,
      queuedChunks: this.chunks.length,
    };
  }
}
