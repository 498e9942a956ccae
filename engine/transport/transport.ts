/**
 * The node-to-node transport contract, shared by the TCP transport and its in-memory twin.
 *
 * One transport per node carries the messages of every Raft group of that node to every peer.
 * `send` only enqueues; everything queued for a peer within one event-loop turn (or one simulator
 * step) leaves as one frame. Snapshot chunks travel on a separate lane so that a large transfer
 * never delays heartbeats and appends.
 */
import {
  sendQueueBytesMax,
  sendQueueMessagesMax,
  snapshotLaneBytesPerTurn,
  snapshotQueueBytesMax,
  snapshotQueueChunksMax,
} from '../limits.js';
import type { GroupId, Message, NodeId, SnapshotMeta } from '../raft/types.js';

/**
 * A message as received: the decoded Message plus the verified record bytes of its entries.
 * `entriesBytes` holds `entries.length` framed records back to back (wasm/format.ts), already
 * CRC-checked, so the log can append them without re-encoding. Entry data are views into the
 * same received buffer.
 */
export interface InboundMessage extends Message {
  entriesBytes: Uint8Array;
}

/** One piece of a snapshot stream from a group's leader to one follower. */
export interface SnapshotChunk {
  group: GroupId;
  from: NodeId;
  to: NodeId;
  /** The sender's Raft term, so a receiver can ignore streams of a deposed leader. */
  term: number;
  /** Which snapshot this chunk belongs to (carried by every chunk; a few bytes). */
  snapshot: SnapshotMeta;
  /** Position of this chunk in its stream, from 0. */
  seq: number;
  /** Whether this is the final chunk of the stream. */
  last: boolean;
  data: Uint8Array;
}

/** What the transport calls when frames arrive. Called synchronously, never after close. */
export interface TransportHandler {
  /** A batch of messages from one peer (the content of one frame). */
  onMessages(from: NodeId, msgs: InboundMessage[]): void;
  /** One snapshot chunk from one peer. */
  onSnapshotChunk(from: NodeId, chunk: SnapshotChunk): void;
}

/** A peer of this node. `address` is `host:port` for TCP; the in-memory twin ignores it. */
export interface PeerInfo {
  id: NodeId;
  address: string;
}

/** Lifecycle of the link to a peer, as seen by stats. */
export type LinkState = 'connected' | 'connecting' | 'disconnected';

/** Counters of one peer. Bytes are frame bytes on the wire. */
export interface PeerStats {
  peer: NodeId;
  /** State of the Raft lane. */
  state: LinkState;
  /** State of the snapshot lane. */
  snapshotState: LinkState;
  sentMessages: number;
  sentFrames: number;
  sentBytes: number;
  receivedMessages: number;
  receivedFrames: number;
  receivedBytes: number;
  /** Messages refused by `send` (queue full, oversized) or discarded (peer removed, closed). */
  droppedMessages: number;
  queuedMessages: number;
  queuedBytes: number;
  sentChunks: number;
  receivedChunks: number;
  droppedChunks: number;
  queuedChunks: number;
  /** Connections established with this peer, over both lanes. */
  connects: number;
  /** Connections lost or refused (dial failures, handshake failures, protocol errors, idle). */
  disconnects: number;
}

/** Counters of a whole transport. */
export interface TransportStats {
  peers: PeerStats[];
  /** Messages and chunks sent to a node that is not a peer, or queued for a peer then removed. */
  droppedNoPeer: number;
  /** Connections closed because the peer sent bytes that do not parse. */
  protocolErrors: number;
  /** Handshakes refused (wrong cluster, node, version or secret). */
  authFailures: number;
}

/** The node-to-node transport. */
export interface Transport {
  /** The node this transport speaks for. */
  readonly nodeId: NodeId;
  /** Replaces the peer set: new peers get connected; removed ones closed, their queues dropped. */
  setPeers(peers: readonly PeerInfo[]): void;
  /**
   * Enqueues `msgs` (all from this node, to `to`) for the next flush. Returns false, dropping
   * and counting all of them, when the peer is unknown or its bounded queue is full.
   */
  send(to: NodeId, msgs: Message[]): boolean;
  /** Enqueues a chunk on the snapshot lane; false (dropped, counted) when that queue is full. */
  sendSnapshotChunk(to: NodeId, chunk: SnapshotChunk): boolean;
  /** Counters and connection state per peer. */
  stats(): TransportStats;
  /** Closes every connection and drops every queue; later sends return false. Idempotent. */
  close(): Promise<void>;
}

/** Log levels of the injected logger. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** The injected logger: one line per event, with structured fields. */
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

/** The default logger: warnings and errors to stderr, one line each. */
export const defaultLogger: Logger = (level, msg, fields) => {
  if (level === 'debug' || level === 'info') return;
  console.error(`flotilla ${level}: ${msg}${fields === undefined ? '' : ` ${safeJson(fields)}`}`);
};

function safeJson(fields: Record<string, unknown>): string {
  return JSON.stringify(fields, (_key, value: unknown) =>
    value instanceof Error ? `${value.name}: ${value.message}` : value,
  );
}

/** Queue bounds shared by both implementations (defaults from engine/limits.ts). */
export interface QueueTuning {
  sendQueueMessagesMax: number;
  sendQueueBytesMax: number;
  snapshotQueueChunksMax: number;
  snapshotQueueBytesMax: number;
  snapshotLaneBytesPerTurn: number;
}

/** The default queue bounds. */
export const defaultQueueTuning: Readonly<QueueTuning> = {
  sendQueueMessagesMax,
  sendQueueBytesMax,
  snapshotQueueChunksMax,
  snapshotQueueBytesMax,
  snapshotLaneBytesPerTurn,
};
