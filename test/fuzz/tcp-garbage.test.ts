/**
 * Fuzzing a real TcpTransport over loopback sockets. Connections send random bytes, mutated
 * Hellos, forged Proofs, frames without a handshake, and (authenticated with the secret) mutated
 * frame streams. Afterwards the node still serves its legitimate peer, whose connection was never
 * disturbed; its handler saw nothing from an unauthenticated connection, and from an
 * authenticated one exactly the frames that decode, up to the first that does not.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frameBytesMax } from '../../engine/limits.js';
import { type Message, MessageType, type NodeId } from '../../engine/raft/types.js';
import { decodeFrame, FrameKind } from '../../engine/transport/codec.js';
import { FrameReader } from '../../engine/transport/frame-reader.js';
import { encodeHello, encodeProof, Lane } from '../../engine/transport/handshake.js';
import type { TcpTransport } from '../../engine/transport/tcp-transport.js';
import type { SnapshotChunk } from '../../engine/transport/transport.js';
import { message, plain, type Reception, Recorder } from '../engine/transport/conformance.js';
import {
  captureLogger,
  clusterId,
  connected,
  deadPort,
  type LogLine,
  RawPeer,
  startNode,
  waitFor,
} from '../engine/transport/tcp-support.js';
import { fuzzParams, fuzzTimeoutMs } from './fuzz-support.js';
import { type Mutation, mutate, mutationsArb } from './mutate.js';
import { type FrameSeed, frameSeedArb, type Reseal, reseal, resealArb } from './wire-seeds.js';

/** The node under attack, its legitimate peer, and the id an authenticated fuzzer claims. */
const TARGET = 9;
const LEGIT = 2;
const INSIDER = 1;

/** Something the target's handler should receive from the insider. */
type Expected = { kind: 'messages'; msgs: Message[] } | { kind: 'chunk'; chunk: SnapshotChunk };

/** One fuzzing connection. */
type Attack =
  | { kind: 'random'; bytes: Uint8Array }
  | { kind: 'hello'; seed: Uint8Array; mutations: Mutation[]; depth: Reseal; after: Uint8Array }
  | { kind: 'proof'; dialer: NodeId; lane: Lane; mac: Uint8Array; mutations: Mutation[] | null }
  | { kind: 'no handshake'; frames: FrameSeed[] }
  | { kind: 'insider'; lane: Lane; frames: [FrameSeed, Mutation[] | null, Reseal][] };

const nonce = fc.uint8Array({ minLength: 32, maxLength: 32 });
const lane = fc.constantFrom<Lane>(Lane.Raft, Lane.Snapshot);

const helloSeed = fc
  .record({
    lane,
    dialer: fc.constantFrom(INSIDER, LEGIT, 5, 0xffffffff),
    acceptor: fc.constantFrom(TARGET, TARGET, 4),
    cluster: fc.oneof(fc.constant(clusterId), fc.string({ maxLength: 8 })),
    nonce,
  })
  .map((h) => encodeHello({ version: 1, ...h, clusterId: Buffer.from(h.cluster, 'utf8') }).slice());

const attackArb: fc.Arbitrary<Attack> = fc.oneof(
  fc.record({
    kind: fc.constant('random'),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 700 }),
  }),
  fc.record({
    kind: fc.constant('hello'),
    seed: helloSeed,
    mutations: mutationsArb(3),
    depth: resealArb,
    after: fc.uint8Array({ maxLength: 64 }),
  }),
  fc.record({
    kind: fc.constant('proof'),
    dialer: fc.constantFrom(INSIDER, LEGIT),
    lane,
    mac: nonce,
    mutations: fc.option(mutationsArb(2)),
  }),
  fc.record({
    kind: fc.constant('no handshake'),
    frames: fc.array(
      fc.constantFrom(INSIDER, LEGIT).chain((from) => frameSeedArb(from, TARGET)),
      { minLength: 1, maxLength: 3 },
    ),
  }),
  fc.record({
    kind: fc.constant('insider'),
    lane,
    frames: fc.array(
      fc.tuple(frameSeedArb(INSIDER, TARGET), fc.option(mutationsArb(2), { freq: 2 }), resealArb),
      { minLength: 1, maxLength: 5 },
    ),
  }),
);

/** What a link on `lane` delivers from `stream`: every frame up to the first it refuses. */
function deliveries(stream: Uint8Array, onLane: Lane): Expected[] {
  const reader = new FrameReader(frameBytesMax);
  // Plain Uint8Array views, as the link hands them out.
  reader.push(new Uint8Array(stream.buffer, stream.byteOffset, stream.length));
  const out: Expected[] = [];
  for (;;) {
    let bytes: Uint8Array | null;
    try {
      bytes = reader.next();
    } catch {
      return out;
    }
    if (bytes === null) return out;
    const decoded = decodeFrame(bytes);
    if (!decoded.ok) return out;
    const f = decoded.frame;
    if (f.kind === 'handshake') return out;
    if (f.kind === 'raft') {
      if (onLane !== Lane.Raft || f.from !== INSIDER || f.to !== TARGET) return out;
      out.push({ kind: 'messages', msgs: f.messages.map(plain) });
    } else if (f.kind === 'snapshot') {
      const c = f.chunk;
      if (onLane !== Lane.Snapshot || c.from !== INSIDER || c.to !== TARGET) return out;
      out.push({ kind: 'chunk', chunk: c });
    }
  }
}

function received(r: Reception): Expected {
  return r.kind === 'messages'
    ? { kind: 'messages', msgs: r.msgs.map(plain) }
    : { kind: 'chunk', chunk: r.chunk };
}

describe('fuzz: a TcpTransport under garbage connections', () => {
  const recorder = new Recorder();
  const logs: LogLine[] = [];
  let target: TcpTransport;
  let legit: TcpTransport;

  beforeAll(async () => {
    target = await startNode(TARGET, {
      handler: recorder.handler(TARGET),
      logger: (level, msg, fields) => logs.push({ level, msg, fields }),
      tuning: { handshakeTimeoutMs: 2_000 },
    });
    legit = await startNode(LEGIT, {
      handler: recorder.handler(LEGIT),
      logger: captureLogger().logger,
    });
    target.setPeers([
      { id: LEGIT, address: `127.0.0.1:${legit.port}` },
      { id: INSIDER, address: `127.0.0.1:${await deadPort()}` },
    ]);
    legit.setPeers([{ id: TARGET, address: `127.0.0.1:${target.port}` }]);
    await waitFor(() => connected(target, LEGIT) && connected(legit, TARGET), 'legit link up');
  });

  afterAll(async () => {
    await legit?.close();
    await target?.close();
  });

  /** Runs one connection to its end (the target closes it, or sees it end after our bytes). */
  async function attack(a: Attack): Promise<Expected[]> {
    const raw = await RawPeer.connect(target.port);
    let expected: Expected[] = [];
    let bytes: Uint8Array;
    switch (a.kind) {
      case 'random':
        bytes = a.bytes;
        break;
      case 'hello':
        bytes = Buffer.concat([reseal(mutate(a.seed, a.mutations), a.depth), a.after]);
        break;
      case 'proof': {
        const hello = { version: 1, lane: a.lane, dialer: a.dialer, acceptor: TARGET };
        raw.send(encodeHello({ ...hello, clusterId: Buffer.from(clusterId), nonce: a.mac }));
        await raw.handshakeBody(FrameKind.Welcome);
        const proof = encodeProof(a.mac);
        bytes = a.mutations === null ? proof : reseal(mutate(proof, a.mutations), 'frame');
        break;
      }
      case 'no handshake':
        bytes = Buffer.concat(a.frames.map((f) => f.bytes));
        break;
      case 'insider': {
        await raw.dialHandshake(INSIDER, TARGET, { lane: a.lane });
        const parts = a.frames.map(([seed, m, depth]) =>
          m === null ? seed.bytes : reseal(mutate(seed.bytes, m, { fields: seed.fields }), depth),
        );
        bytes = Buffer.concat(parts);
        expected = deliveries(bytes, a.lane);
        break;
      }
    }
    raw.send(bytes);
    raw.socket.end();
    await waitFor(() => raw.isClosed, 'the target to close the connection', 5_000);
    return expected;
  }

  it(
    'keeps serving its peer and delivers nothing a garbage connection sent',
    async () => {
      const kinds = new Set<string>();
      const legitStats = () => target.stats().peers.find((p) => p.peer === LEGIT)!;
      const { connects, disconnects } = legitStats();
      await fc.assert(
        fc.asyncProperty(attackArb, async (a) => {
          const before = recorder.receptions.get(TARGET)!.length;
          const expected = await attack(a);
          const got = recorder.receptions.get(TARGET)!.slice(before);
          expect(got.every((r) => r.from === INSIDER)).toBe(true);
          expect(got.map(received)).toEqual(expected);
          kinds.add(expected.length > 0 ? `${a.kind} delivered` : a.kind);
        }),
        fuzzParams('tcp garbage connections', 48, 50),
      );
      expect(kinds).toContain('insider delivered');
      // The legitimate peer's connection was never dropped, and it still carries messages.
      expect(legitStats()).toMatchObject({ connects, disconnects, state: 'connected' });
      const beat = message({ type: MessageType.Heartbeat, from: LEGIT, to: TARGET, term: 4 });
      expect(legit.send(TARGET, [beat])).toBe(true);
      await waitFor(() => recorder.batches(TARGET, LEGIT).length === 1, 'legit message delivered');
      expect(recorder.messages(TARGET, LEGIT).map(plain)).toEqual([beat]);
      const stats = target.stats();
      expect(stats.protocolErrors).toBeGreaterThan(0);
      expect(stats.authFailures).toBeGreaterThan(0);
      expect(logs.filter((l) => l.level === 'error')).toEqual([]);
    },
    fuzzTimeoutMs,
  );
});
