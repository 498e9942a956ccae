/**
 * The in-memory twin of the TCP transport, for the deterministic simulator.
 *
 * A `MemoryNetwork` hub connects the `MemoryTransport`s of many nodes. It owns no timer: the
 * driver calls `step()` (flush every queue, then deliver what is due) and advances time, either
 * through an injected clock or with `advance()`. Every random choice comes from the injected
 * SeededRandom, and nodes and peers are visited in id order, so a seed replays a run exactly.
 *
 * One `step` plays the role of one event-loop turn: everything queued for a peer since the last
 * step leaves as one frame (split only beyond `frameBytesMax`), and the snapshot lane moves at
 * most `snapshotLaneBytesPerTurn` per peer per step. With `codec` on (the default) every frame is
 * encoded and decoded with the wire codec, so codec bugs surface in simulation.
 *
 * Faults apply per frame: drop, duplicate, delay (a tick range), reorder (a frame is held back so
 * later frames overtake it), symmetric and one-way partitions, and nodes going down and up. The
 * snapshot lane stays what a stream connection is: in order and without duplicates (its frames
 * may still be delayed or lost).
 */

import { encodedBytes, encodeRecords } from '../../wasm/index.js';
import { AssertionError, assert } from '../assert.js';
import { frameBytesMax } from '../limits.js';
import type { Message, NodeId } from '../raft/types.js';
import type { SeededRandom } from '../random.js';
import {
  decodeFrame,
  encodeRaftFrame,
  encodeSnapshotFrame,
  messageWireBytes,
  raftFrameFixedBytesMax,
  snapshotFrameBytes,
} from './codec.js';
import { PeerOutbox } from './outbox.js';
import {
  defaultQueueTuning,
  type InboundMessage,
  type LinkState,
  type PeerInfo,
  type QueueTuning,
  type SnapshotChunk,
  type Transport,
  type TransportHandler,
  type TransportStats,
} from './transport.js';

/** Network faults, all per frame. Probabilities are in [0, 1]; ticks are simulated time. */
export interface MemoryFaults {
  dropRate: number;
  duplicateRate: number;
  delayTicksMin: number;
  delayTicksMax: number;
  /** Probability that a frame is held back 1..`reorderTicksMax` extra ticks. */
  reorderRate: number;
  reorderTicksMax: number;
}

/** A perfect network: every frame arrives once, in order, at the next delivery. */
export const noFaults: Readonly<MemoryFaults> = {
  dropRate: 0,
  duplicateRate: 0,
  delayTicksMin: 0,
  delayTicksMax: 0,
  reorderRate: 0,
  reorderTicksMax: 3,
};

/** How to build a network. */
export interface MemoryNetworkOptions {
  random: SeededRandom;
  /** Run every frame through the wire codec (default true). */
  codec?: boolean;
  /** The simulated clock in ticks; without it the network keeps its own, moved by `advance`. */
  now?: () => number;
}

/** Counters of the whole network. */
export interface MemoryNetworkStats {
  framesSent: number;
  framesDelivered: number;
  /** Lost to the drop fault, a partition, a down node, or a receiver that is gone. */
  framesDropped: number;
  framesDuplicated: number;
  framesInFlight: number;
}

type Payload =
  | { kind: 'raft'; frame: Uint8Array | null; messages: Message[] }
  | { kind: 'chunk'; frame: Uint8Array | null; chunk: SnapshotChunk };

interface InFlight {
  from: NodeId;
  to: NodeId;
  due: number;
  /** Send order, the tie-break among frames due at the same tick. */
  seq: number;
  bytes: number;
  payload: Payload;
}

function plainInbound(m: Message): InboundMessage {
  if (m.entries.length === 0) return { ...m, entriesBytes: new Uint8Array(0) };
  const records = m.entries.map((e) => ({
    type: e.type,
    group: m.group,
    term: e.term,
    index: e.index,
    payload: e.data,
  }));
  // Copied at once: the kernel's output is only valid until its next call.
  const entriesBytes = new Uint8Array(encodedBytes(records));
  entriesBytes.set(encodeRecords(records));
  return { ...m, entriesBytes };
}

/** The hub that carries frames between the MemoryTransports of a simulated cluster. */
export class MemoryNetwork {
  private readonly random: SeededRandom;
  private readonly codec: boolean;
  private readonly clock: (() => number) | undefined;
  private time = 0;
  private faults: MemoryFaults = { ...noFaults };
  private readonly transports = new Map<NodeId, MemoryTransport>();
  private readonly cuts = new Set<string>();
  private readonly downNodes = new Set<NodeId>();
  private inFlight: InFlight[] = [];
  /** Per `from>to` snapshot lane: when its last frame is due (the lane keeps its order). */
  private readonly laneDue = new Map<string, number>();
  private seq = 0;
  private readonly counters = { framesSent: 0, framesDelivered: 0, framesDropped: 0 };
  private framesDuplicated = 0;

  constructor(options: MemoryNetworkOptions) {
    this.random = options.random;
    this.codec = options.codec ?? true;
    this.clock = options.now;
  }

  /** Creates the transport of `node` (replacing a closed one, as after a restart). */
  attach(
    node: NodeId,
    handler: TransportHandler,
    tuning: Partial<QueueTuning> = {},
  ): MemoryTransport {
    assert(Number.isInteger(node) && node > 0, 'a node id is a positive integer');
    const existing = this.transports.get(node);
    assert(existing === undefined || existing.isClosed, 'one open transport per node');
    const transport = new MemoryTransport(this, node, handler, {
      ...defaultQueueTuning,
      ...tuning,
    });
    this.transports.set(node, transport);
    return transport;
  }

  /** Current simulated time in ticks. */
  now(): number {
    return this.clock === undefined ? this.time : this.clock();
  }

  /** Moves the network's own clock forward (only without an injected clock). */
  advance(ticks = 1): void {
    assert(this.clock === undefined, 'an injected clock is advanced by its owner');
    assert(ticks >= 0, 'time moves forward');
    this.time += ticks;
  }

  /** Replaces some or all fault settings. */
  setFaults(faults: Partial<MemoryFaults>): void {
    const next = { ...this.faults, ...faults };
    assert(next.delayTicksMin >= 0, 'delays are non-negative');
    assert(next.delayTicksMin <= next.delayTicksMax, 'delay range is ordered');
    assert(next.reorderTicksMax >= 1, 'a reordered frame is held back at least one tick');
    this.faults = next;
  }

  /** Cuts every link between the two sides, both ways. */
  partition(sideA: readonly NodeId[], sideB: readonly NodeId[]): void {
    for (const a of sideA) {
      for (const b of sideB) {
        this.cut(a, b);
        this.cut(b, a);
      }
    }
  }

  /** Cuts the link from `from` to `to` only (a one-way partition). */
  cut(from: NodeId, to: NodeId): void {
    this.cuts.add(`${from}>${to}`);
  }

  /** Removes every cut (nodes that are down stay down). */
  heal(): void {
    this.cuts.clear();
  }

  /** Takes a node off the network: nothing leaves or reaches it until `up`. */
  down(node: NodeId): void {
    this.downNodes.add(node);
  }

  /** Puts a node back on the network. */
  up(node: NodeId): void {
    this.downNodes.delete(node);
  }

  /** Whether `node` has an open transport on this network. */
  isOpen(node: NodeId): boolean {
    const transport = this.transports.get(node);
    return transport !== undefined && !transport.isClosed;
  }

  /** Whether a frame from `from` would reach `to` now. */
  reachable(from: NodeId, to: NodeId): boolean {
    return !this.downNodes.has(from) && !this.downNodes.has(to) && !this.cuts.has(`${from}>${to}`);
  }

  /** Network-wide counters. */
  stats(): MemoryNetworkStats {
    return {
      ...this.counters,
      framesDuplicated: this.framesDuplicated,
      framesInFlight: this.inFlight.length,
    };
  }

  /** True when nothing is queued in any transport and nothing is in flight. */
  idle(): boolean {
    if (this.inFlight.length > 0) return false;
    for (const t of this.transports.values()) if (t.hasQueued()) return false;
    return true;
  }

  /** Flushes every queue, then delivers every frame due now. Returns frames delivered. */
  step(): number {
    this.flush();
    return this.deliver();
  }

  /** Steps and advances the own clock until idle; returns steps taken. Asserts on no progress. */
  settle(stepsMax = 10_000): number {
    for (let steps = 1; steps <= stepsMax; steps++) {
      this.step();
      if (this.idle()) return steps;
      this.advance(1);
    }
    throw new AssertionError(`network not idle after ${stepsMax} steps`);
  }

  /** Turns every transport's queues into frames in flight (one Raft frame per pair). */
  flush(): void {
    for (const id of [...this.transports.keys()].sort((a, b) => a - b)) {
      const transport = this.transports.get(id)!;
      if (transport.isClosed) continue;
      for (const outbox of transport.outboxes()) {
        while (outbox.hasMessages()) this.sendRaft(id, outbox);
        let budget = transport.tuning.snapshotLaneBytesPerTurn;
        while (budget > 0 && outbox.hasChunks()) budget -= this.sendChunk(id, outbox);
      }
    }
  }

  private sendRaft(from: NodeId, outbox: PeerOutbox): void {
    const messages = outbox.takeRaftBatch();
    let frame: Uint8Array | null = null;
    let bytes = raftFrameFixedBytesMax;
    if (this.codec) {
      frame = encodeRaftFrame(from, outbox.peer, messages);
      bytes = frame.length;
    } else {
      for (const m of messages) bytes += messageWireBytes(m);
    }
    assert(bytes <= frameBytesMax, 'a Raft batch fits one frame');
    outbox.counters.sentBytes += bytes;
    this.route(from, outbox.peer, bytes, { kind: 'raft', frame, messages });
  }

  private sendChunk(from: NodeId, outbox: PeerOutbox): number {
    const chunk = outbox.takeChunk();
    const frame = this.codec ? encodeSnapshotFrame(chunk) : null;
    const bytes = frame === null ? snapshotFrameBytes(chunk) : frame.length;
    outbox.counters.sentBytes += bytes;
    this.route(from, outbox.peer, bytes, { kind: 'chunk', frame, chunk });
    return bytes;
  }

  private route(from: NodeId, to: NodeId, bytes: number, payload: Payload): void {
    this.counters.framesSent++;
    const f = this.faults;
    const dropped = f.dropRate > 0 && this.random.chance(f.dropRate);
    if (!this.reachable(from, to) || dropped) {
      this.counters.framesDropped++;
      return;
    }
    // The snapshot lane is one stream connection (as over TCP): its frames are never duplicated
    // and never overtake each other; they may be delayed, or lost with the connection.
    const lane = payload.kind === 'chunk';
    const copies = !lane && f.duplicateRate > 0 && this.random.chance(f.duplicateRate) ? 2 : 1;
    if (copies === 2) this.framesDuplicated++;
    for (let c = 0; c < copies; c++) {
      let delay = f.delayTicksMin;
      if (f.delayTicksMax > f.delayTicksMin) {
        delay += this.random.intBelow(f.delayTicksMax - f.delayTicksMin + 1);
      }
      if (f.reorderRate > 0 && this.random.chance(f.reorderRate)) {
        delay += 1 + this.random.intBelow(f.reorderTicksMax);
      }
      let due = this.now() + delay;
      if (lane) {
        const key = `${from}>${to}`;
        due = Math.max(due, this.laneDue.get(key) ?? 0);
        this.laneDue.set(key, due);
      }
      this.inFlight.push({ from, to, due, seq: this.seq++, bytes, payload });
    }
  }

  /** Delivers every frame due now, in (due, send order). Returns frames delivered. */
  deliver(): number {
    const now = this.now();
    const due = this.inFlight.filter((f) => f.due <= now);
    if (due.length === 0) return 0;
    this.inFlight = this.inFlight.filter((f) => f.due > now);
    due.sort((a, b) => a.due - b.due || a.seq - b.seq);
    let delivered = 0;
    for (const f of due) {
      const receiver = this.transports.get(f.to);
      const open = receiver !== undefined && !receiver.isClosed && receiver.hasPeer(f.from);
      if (!open || !this.reachable(f.from, f.to)) {
        this.counters.framesDropped++;
        continue;
      }
      this.counters.framesDelivered++;
      delivered++;
      this.hand(receiver, f);
    }
    return delivered;
  }

  private hand(receiver: MemoryTransport, f: InFlight): void {
    const p = f.payload;
    if (p.frame === null) {
      if (p.kind === 'raft')
        receiver.receiveMessages(f.from, p.messages.map(plainInbound), f.bytes);
      else receiver.receiveChunk(f.from, p.chunk, f.bytes);
      return;
    }
    const decoded = decodeFrame(p.frame);
    assert(decoded.ok, `the codec decodes its own frame: ${decoded.ok || decoded.error.message}`);
    const frame = decoded.frame;
    if (frame.kind === 'raft') {
      assert(frame.from === f.from && frame.to === f.to, 'a Raft frame keeps its addresses');
      receiver.receiveMessages(f.from, frame.messages, f.bytes);
    } else {
      assert(frame.kind === 'snapshot', 'the memory network carries Raft and chunk frames');
      receiver.receiveChunk(f.from, frame.chunk, f.bytes);
    }
  }
}

/** One node's transport on a MemoryNetwork. */
export class MemoryTransport implements Transport {
  readonly nodeId: NodeId;
  /** Queue bounds of this node. */
  readonly tuning: QueueTuning;
  private readonly network: MemoryNetwork;
  private readonly handler: TransportHandler;
  private readonly peers = new Map<NodeId, PeerOutbox>();
  private closed = false;
  private droppedNoPeer = 0;

  /** Use `MemoryNetwork.attach`. */
  constructor(
    network: MemoryNetwork,
    nodeId: NodeId,
    handler: TransportHandler,
    tuning: QueueTuning,
  ) {
    this.network = network;
    this.nodeId = nodeId;
    this.handler = handler;
    this.tuning = tuning;
  }

  /** Whether `close` was called. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Replaces the peer set; queues of removed peers are dropped and counted. */
  setPeers(peers: readonly PeerInfo[]): void {
    if (this.closed) return;
    const wanted = new Set<NodeId>();
    for (const p of peers) {
      assert(p.id !== this.nodeId, 'a node is not its own peer');
      assert(!wanted.has(p.id), 'each peer listed once');
      wanted.add(p.id);
    }
    for (const [id, outbox] of this.peers) {
      if (wanted.has(id)) continue;
      const dropped = outbox.dropAll();
      this.droppedNoPeer += dropped.messages + dropped.chunks;
      this.peers.delete(id);
    }
    for (const id of [...wanted].sort((a, b) => a - b)) {
      if (!this.peers.has(id)) this.peers.set(id, new PeerOutbox(id, this.tuning));
    }
  }

  /** Queues `msgs` for the next step; false (dropped, counted) when it cannot. */
  send(to: NodeId, msgs: Message[]): boolean {
    if (this.closed) return false;
    const outbox = this.peers.get(to);
    if (outbox === undefined) {
      this.droppedNoPeer += msgs.length;
      return false;
    }
    return msgs.length === 0 || outbox.offerMessages(this.nodeId, msgs) === null;
  }

  /** Queues a chunk on the snapshot lane; false (dropped, counted) when it cannot. */
  sendSnapshotChunk(to: NodeId, chunk: SnapshotChunk): boolean {
    if (this.closed) return false;
    const outbox = this.peers.get(to);
    if (outbox === undefined) {
      this.droppedNoPeer++;
      return false;
    }
    return outbox.offerChunk(this.nodeId, chunk);
  }

  /** Counters; a peer is 'connected' while the network would carry a frame to it. */
  stats(): TransportStats {
    const peers = [...this.peers.values()].map((outbox) => {
      const state: LinkState =
        !this.closed &&
        this.network.isOpen(outbox.peer) &&
        this.network.reachable(this.nodeId, outbox.peer)
          ? 'connected'
          : 'disconnected';
      return outbox.stats(state, state);
    });
    return { peers, droppedNoPeer: this.droppedNoPeer, protocolErrors: 0, authFailures: 0 };
  }

  /** Stops sending and receiving; drops and counts what was queued. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      for (const outbox of this.peers.values()) outbox.dropAll();
    }
    return Promise.resolve();
  }

  /** The outboxes in peer id order (for the network's flush). */
  outboxes(): PeerOutbox[] {
    return [...this.peers.values()].sort((a, b) => a.peer - b.peer);
  }

  /** Whether anything waits in a queue. */
  hasQueued(): boolean {
    for (const outbox of this.peers.values()) {
      if (outbox.hasMessages() || outbox.hasChunks()) return true;
    }
    return false;
  }

  /** Whether `node` is a peer (frames from strangers are not delivered). */
  hasPeer(node: NodeId): boolean {
    return this.peers.has(node);
  }

  /** Called by the network with one frame's messages. */
  receiveMessages(from: NodeId, msgs: InboundMessage[], bytes: number): void {
    const c = this.peers.get(from)!.counters;
    c.receivedFrames++;
    c.receivedBytes += bytes;
    c.receivedMessages += msgs.length;
    this.handler.onMessages(from, msgs);
  }

  /** Called by the network with one chunk. */
  receiveChunk(from: NodeId, chunk: SnapshotChunk, bytes: number): void {
    const c = this.peers.get(from)!.counters;
    c.receivedChunks++;
    c.receivedBytes += bytes;
    this.handler.onSnapshotChunk(from, chunk);
  }
}
