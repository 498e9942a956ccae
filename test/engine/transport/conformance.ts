/**
 * The transport conformance suite: every Transport implementation runs these same scenarios
 * (STYLE.md §4). A harness builds a cluster of transports and says how to let the network run.
 */
import { describe, expect, it } from 'vitest';
import { EntryType, type Message, MessageType, type NodeId } from '../../../engine/raft/types.js';
import { SeededRandom } from '../../../engine/random.js';
import type {
  InboundMessage,
  PeerInfo,
  QueueTuning,
  SnapshotChunk,
  Transport,
  TransportHandler,
} from '../../../engine/transport/transport.js';
import {
  decodeRecords,
  recordGroup,
  recordIndex,
  recordPayload,
  recordTerm,
  recordType,
} from '../../../wasm/index.js';

/** One thing a node's handler received, numbered in the order of all receptions. */
export type Reception =
  | { seq: number; kind: 'messages'; from: NodeId; msgs: InboundMessage[] }
  | { seq: number; kind: 'chunk'; from: NodeId; chunk: SnapshotChunk };

/** Records what every node receives; tests may hook into receptions. */
export class Recorder {
  readonly receptions = new Map<NodeId, Reception[]>();
  onChunk: ((node: NodeId, chunk: SnapshotChunk) => void) | null = null;
  private seq = 0;

  /** The handler to give node `node`'s transport. */
  handler(node: NodeId): TransportHandler {
    const list: Reception[] = [];
    this.receptions.set(node, list);
    return {
      onMessages: (from, msgs) => list.push({ seq: this.seq++, kind: 'messages', from, msgs }),
      onSnapshotChunk: (from, chunk) => {
        list.push({ seq: this.seq++, kind: 'chunk', from, chunk });
        this.onChunk?.(node, chunk);
      },
    };
  }

  /** Message batches received by `node` (from `from`, if given). */
  batches(node: NodeId, from?: NodeId): InboundMessage[][] {
    const out: InboundMessage[][] = [];
    for (const r of this.receptions.get(node) ?? []) {
      if (r.kind === 'messages' && (from === undefined || r.from === from)) out.push(r.msgs);
    }
    return out;
  }

  /** Every message received by `node`, in order. */
  messages(node: NodeId, from?: NodeId): InboundMessage[] {
    return this.batches(node, from).flat();
  }

  /** Chunks received by `node`, with their reception numbers. */
  chunks(node: NodeId): { seq: number; chunk: SnapshotChunk }[] {
    const out: { seq: number; chunk: SnapshotChunk }[] = [];
    for (const r of this.receptions.get(node) ?? []) {
      if (r.kind === 'chunk') out.push({ seq: r.seq, chunk: r.chunk });
    }
    return out;
  }
}

/** A running cluster of transports under test. */
export interface Cluster {
  transport(node: NodeId): Transport;
  /** The peer list node `node` was given. */
  peers(node: NodeId): PeerInfo[];
  readonly recorder: Recorder;
  /** Ends the current turn: whatever was sent is flushed. */
  turn(): Promise<void>;
  /** Lets the network run until `done()` holds; fails with `what` if it never does. */
  until(done: () => boolean, what: string): Promise<void>;
  /** Lets the network run a while, to show that nothing more arrives. */
  quiesce(): Promise<void>;
  close(): Promise<void>;
}

/** How a transport implementation builds a cluster for the suite. */
export interface Harness {
  create(nodes: NodeId[], tuning?: Partial<QueueTuning>): Promise<Cluster>;
}

/** A message with every field at its zero value. */
export function message(
  partial: Partial<Message> & Pick<Message, 'type' | 'from' | 'to'>,
): Message {
  return {
    group: 0,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    logTermHint: 0,
    ...partial,
  };
}

/** The Message part of a received message, for comparison with what was sent. */
export function plain(m: InboundMessage): Message {
  const { entriesBytes: _bytes, ...rest } = m;
  return rest;
}

function bytes(n: number, seed: number): Uint8Array {
  const r = new SeededRandom(seed);
  const words = new Uint32Array(Math.ceil(n / 4));
  for (let i = 0; i < words.length; i++) words[i] = r.nextU32();
  return new Uint8Array(words.buffer, 0, n);
}

function app(
  from: NodeId,
  to: NodeId,
  group: number,
  index: number,
  entrySizes: number[],
): Message {
  return message({
    type: MessageType.App,
    from,
    to,
    group,
    term: 3,
    logTerm: 3,
    index,
    commit: index,
    entries: entrySizes.map((size, i) => ({
      term: 3,
      index: index + 1 + i,
      type: i % 3 === 2 ? EntryType.ConfChange : EntryType.Normal,
      data: bytes(size, group * 1000 + index + i),
    })),
  });
}

function chunk(from: NodeId, to: NodeId, seq: number, last: boolean, size: number): SnapshotChunk {
  const conf = { voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [] };
  return {
    group: 9,
    from,
    to,
    term: 4,
    snapshot: { index: 1000, term: 4, conf: { ...conf, autoLeave: false } },
    seq,
    last,
    data: bytes(size, seq),
  };
}

/** Asserts that `m.entriesBytes` holds exactly m's entries as verified log records. */
export function expectVerifiedRecords(m: InboundMessage): void {
  const result = decodeRecords(m.entriesBytes);
  expect(result.status).toBe('ok');
  expect(result.count).toBe(m.entries.length);
  expect(result.end).toBe(m.entriesBytes.length);
  const offsets = Array.from(result.offsets);
  m.entries.forEach((e, i) => {
    const at = offsets[i]!;
    expect(recordType(m.entriesBytes, at)).toBe(e.type);
    expect(recordGroup(m.entriesBytes, at)).toBe(m.group);
    expect(recordTerm(m.entriesBytes, at)).toBe(e.term);
    expect(recordIndex(m.entriesBytes, at)).toBe(e.index);
    expect(recordPayload(m.entriesBytes, at)).toEqual(e.data);
  });
}

/** Runs the conformance scenarios against one implementation. */
export function describeTransportConformance(name: string, harness: Harness): void {
  describe(`${name}: transport conformance`, () => {
    deliveryScenarios(harness);
    laneAndQueueScenarios(harness);
    membershipScenarios(harness);
  });
}

function deliveryScenarios(harness: Harness): void {
  it('delivers batches in order per pair, one frame per turn', async () => {
    const cluster = await harness.create([1, 2]);
    const r = new SeededRandom(11);
    const sent = new Map<NodeId, number>([
      [1, 0],
      [2, 0],
    ]);
    const turns = 20;
    for (let t = 0; t < turns; t++) {
      for (const [from, to] of [
        [1, 2],
        [2, 1],
      ] as const) {
        const batch: Message[] = [];
        const n = 1 + r.intBelow(20);
        for (let i = 0; i < n; i++) {
          const index = sent.get(from)! + 1;
          sent.set(from, index);
          batch.push(app(from, to, index % 7, index, []));
        }
        expect(cluster.transport(from).send(to, batch)).toBe(true);
      }
      await cluster.turn();
    }
    const rec = cluster.recorder;
    await cluster.until(
      () => rec.messages(2).length === sent.get(1) && rec.messages(1).length === sent.get(2),
      'all messages delivered',
    );
    for (const node of [1, 2]) {
      const indexes = rec.messages(node).map((m) => m.index);
      expect(indexes).toEqual(indexes.map((_, i) => i + 1));
      expect(rec.batches(node).length).toBe(turns);
    }
    await cluster.close();
  });

  it('carries the messages of many groups in one frame', async () => {
    const cluster = await harness.create([1, 2]);
    const before = cluster.transport(1).stats().peers[0]!.sentFrames;
    const msgs: Message[] = [];
    for (let g = 0; g < 64; g++) {
      msgs.push(app(1, 2, g, 10, [100]));
      msgs.push(message({ type: MessageType.AppResp, from: 1, to: 2, group: g, index: 9 }));
    }
    for (let i = 0; i < msgs.length; i += 16) {
      expect(cluster.transport(1).send(2, msgs.slice(i, i + 16))).toBe(true);
    }
    const rec = cluster.recorder;
    await cluster.until(() => rec.messages(2).length === msgs.length, 'the frame arrives');
    expect(rec.batches(2).length).toBe(1);
    expect(rec.messages(2).map(plain)).toEqual(msgs);
    expect(cluster.transport(1).stats().peers[0]!.sentFrames).toBe(before + 1);
    await cluster.close();
  });

  it('round-trips coalesced heartbeats and responses exactly', async () => {
    const cluster = await harness.create([1, 2]);
    const beats: Message[] = [];
    const resps: Message[] = [];
    for (let g = 0; g < 50; g++) {
      const context = g % 3 === 0 ? undefined : bytes(g % 5, g);
      const beat = {
        type: MessageType.Heartbeat,
        from: 1,
        to: 2,
        group: g * 977,
        term: 2 ** 40 + g,
      };
      beats.push(message({ ...beat, commit: g, ...(context ? { context } : {}) }));
      const resp = { type: MessageType.HeartbeatResp, from: 2, to: 1, group: g, term: g + 1 };
      resps.push(message({ ...resp, ...(context ? { context } : {}) }));
    }
    expect(cluster.transport(1).send(2, beats)).toBe(true);
    expect(cluster.transport(2).send(1, resps)).toBe(true);
    const rec = cluster.recorder;
    await cluster.until(
      () => rec.messages(2).length === 50 && rec.messages(1).length === 50,
      'the heartbeats arrive',
    );
    expect(rec.messages(2).map(plain)).toEqual(beats);
    expect(rec.messages(1).map(plain)).toEqual(resps);
    await cluster.close();
  });

  it('delivers entries with their verified raw record bytes', async () => {
    const cluster = await harness.create([1, 2]);
    const msgs = [
      app(1, 2, 1, 100, [0, 1, 200, 5000]),
      app(1, 2, 2, 7, [10_000]),
      message({ type: MessageType.Vote, from: 1, to: 2, group: 3, term: 5, logTerm: 4 }),
      app(1, 2, 0xffffffff, 2 ** 50, [3, 3, 3]),
    ];
    expect(cluster.transport(1).send(2, msgs)).toBe(true);
    const rec = cluster.recorder;
    await cluster.until(() => rec.messages(2).length === msgs.length, 'the entries arrive');
    const got = rec.messages(2);
    expect(got.map(plain)).toEqual(msgs);
    for (const m of got) expectVerifiedRecords(m);
    expect(got[2]!.entriesBytes.length).toBe(0);
    await cluster.close();
  });
}

function laneAndQueueScenarios(harness: Harness): void {
  it('delivers snapshot chunks on their lane while Raft traffic still flows', async () => {
    const cluster = await harness.create([1, 2], {
      snapshotLaneBytesPerTurn: 256 * 1024,
      snapshotQueueBytesMax: 8 * 1024 * 1024,
    });
    const chunks = 32;
    for (let seq = 0; seq < chunks; seq++) {
      const c = chunk(1, 2, seq, seq === chunks - 1, 128 * 1024);
      expect(cluster.transport(1).sendSnapshotChunk(2, c)).toBe(true);
    }
    const probe = message({ type: MessageType.Heartbeat, from: 1, to: 2, group: 77, term: 1 });
    const rec = cluster.recorder;
    rec.onChunk = (node, c) => {
      if (node === 2 && c.seq === 0) cluster.transport(1).send(2, [probe]);
    };
    await cluster.until(() => rec.chunks(2).length === chunks, 'every chunk arrives');
    const received = rec.chunks(2);
    expect(received.map((c) => c.chunk.seq)).toEqual([...Array(chunks).keys()]);
    expect(received.at(-1)!.chunk.last).toBe(true);
    expect(received[5]!.chunk).toEqual(chunk(1, 2, 5, false, 128 * 1024));
    const probeSeq = (rec.receptions.get(2) ?? []).find((r) => r.kind === 'messages')?.seq;
    expect(probeSeq).toBeDefined();
    expect(probeSeq!).toBeLessThan(received.at(-1)!.seq);
    expect(cluster.transport(2).stats().peers[0]!.receivedChunks).toBe(chunks);
    await cluster.close();
  });

  it('refuses, drops and counts beyond the bounded queue', async () => {
    const cluster = await harness.create([1, 2], {
      sendQueueMessagesMax: 100,
      sendQueueBytesMax: 64 * 1024,
      snapshotQueueChunksMax: 2,
    });
    const t1 = cluster.transport(1);
    const accepted: boolean[] = [];
    for (let i = 1; i <= 150; i++) accepted.push(t1.send(2, [app(1, 2, 1, i, [])]));
    expect(accepted.filter(Boolean).length).toBe(100);
    expect(accepted.slice(0, 100).every(Boolean)).toBe(true);
    const big = Array.from({ length: 100 }, (_, i) => app(1, 2, 2, i, [1000]));
    expect(t1.send(2, big)).toBe(false);
    expect(t1.sendSnapshotChunk(2, chunk(1, 2, 0, false, 10))).toBe(true);
    expect(t1.sendSnapshotChunk(2, chunk(1, 2, 1, false, 10))).toBe(true);
    expect(t1.sendSnapshotChunk(2, chunk(1, 2, 2, false, 10))).toBe(false);
    const stats = t1.stats().peers[0]!;
    expect(stats.droppedMessages).toBe(50 + 100);
    expect(stats.droppedChunks).toBe(1);
    expect(stats.queuedMessages).toBe(100);
    const rec = cluster.recorder;
    await cluster.until(() => rec.messages(2).length === 100, 'the queued messages arrive');
    await cluster.quiesce();
    expect(rec.messages(2).map((m) => m.index)).toEqual([...Array(100).keys()].map((i) => i + 1));
    expect(rec.chunks(2).length).toBe(2);
    await cluster.close();
  });
}

function membershipScenarios(harness: Harness): void {
  it('stops talking to a removed peer, and resumes when it is added back', async () => {
    const cluster = await harness.create([1, 2, 3]);
    const t1 = cluster.transport(1);
    expect(t1.stats().peers.map((p) => p.peer)).toEqual([2, 3]);
    const peers = (node: NodeId) => cluster.peers(node);
    expect(t1.send(3, [app(1, 3, 1, 1, [])])).toBe(true);
    t1.setPeers(peers(1).filter((p) => p.id !== 3));
    expect(t1.stats().droppedNoPeer).toBe(1);
    expect(t1.send(3, [app(1, 3, 1, 2, [])])).toBe(false);
    expect(t1.stats().droppedNoPeer).toBe(2);
    expect(t1.stats().peers.map((p) => p.peer)).toEqual([2]);
    cluster.transport(3).send(1, [app(3, 1, 1, 1, [])]);
    expect(t1.send(2, [app(1, 2, 1, 1, [])])).toBe(true);
    const rec = cluster.recorder;
    await cluster.until(() => rec.messages(2).length === 1, 'node 2 still reachable');
    await cluster.quiesce();
    expect(rec.messages(3, 1).length).toBe(0);
    expect(rec.messages(1, 3).length).toBe(0);
    t1.setPeers(peers(1));
    await cluster.until(
      () => t1.stats().peers.find((p) => p.peer === 3)?.state === 'connected',
      'node 3 reconnected',
    );
    expect(t1.send(3, [app(1, 3, 1, 5, [])])).toBe(true);
    await cluster.until(() => rec.messages(3, 1).length === 1, 'node 3 reachable again');
    expect(rec.messages(3, 1)[0]!.index).toBe(5);
    await cluster.close();
  });

  it('stops sending and receiving once closed', async () => {
    const cluster = await harness.create([1, 2]);
    const t2 = cluster.transport(2);
    await t2.close();
    await t2.close();
    expect(t2.send(1, [app(2, 1, 1, 1, [])])).toBe(false);
    expect(t2.sendSnapshotChunk(1, chunk(2, 1, 0, true, 1))).toBe(false);
    cluster.transport(1).send(2, [app(1, 2, 1, 1, [])]);
    await cluster.until(
      () => cluster.transport(1).stats().peers[0]!.state !== 'connected',
      'node 1 sees node 2 gone',
    );
    await cluster.quiesce();
    expect(cluster.recorder.messages(2).length).toBe(0);
    expect(cluster.recorder.messages(1).length).toBe(0);
    await cluster.close();
  });
}
