import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFlotillaError } from '../../../engine/errors.js';
import { frameBytesMax, frameMessagesMax } from '../../../engine/limits.js';
import {
  type ConfState,
  EntryType,
  type Message,
  MessageType,
  type SnapshotMeta,
} from '../../../engine/raft/types.js';
import {
  decodeFrame,
  encodePingFrame,
  encodeRaftFrame,
  encodeSnapshotFrame,
  type FrameDecodeResult,
  frameHeaderBytes,
  isCoalescedBeat,
  messageWireBytes,
  raftFrameFixedBytesMax,
} from '../../../engine/transport/codec.js';
import { FrameReader } from '../../../engine/transport/frame-reader.js';
import {
  decodeHello,
  decodeProof,
  decodeWelcome,
  encodeHello,
  encodeWelcome,
  Lane,
} from '../../../engine/transport/handshake.js';
import type { SnapshotChunk } from '../../../engine/transport/transport.js';
import { crc32c, encodeRecords } from '../../../wasm/index.js';
import { expectVerifiedRecords, message, plain } from './conformance.js';

const FROM = 3;
const TO = 7;

// ---- Generators --------------------------------------------------------------------------------

const u32 = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 0xffffffff }));
const nodeId = fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 0xffffffff }));
const number = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 0, max: 1000 }),
  fc.maxSafeNat(),
  fc.constant(Number.MAX_SAFE_INTEGER),
);
const bytesArb = (maxLength: number) => fc.uint8Array({ maxLength });

const conf: fc.Arbitrary<ConfState> = fc.record({
  voters: fc.array(nodeId, { maxLength: 5 }),
  votersOutgoing: fc.array(nodeId, { maxLength: 3 }),
  learners: fc.array(nodeId, { maxLength: 3 }),
  learnersNext: fc.array(nodeId, { maxLength: 2 }),
  autoLeave: fc.boolean(),
});
const meta: fc.Arbitrary<SnapshotMeta> = fc.record({ index: number, term: number, conf });

const entry = fc.record({
  term: number,
  index: number,
  type: fc.constantFrom(EntryType.Normal, EntryType.ConfChange),
  data: bytesArb(64),
});

const anyMessage: fc.Arbitrary<Message> = fc
  .record(
    {
      type: fc.integer({ min: 1, max: 14 }),
      group: u32,
      term: number,
      logTerm: number,
      index: number,
      entries: fc.array(entry, { maxLength: 4 }),
      commit: number,
      reject: fc.boolean(),
      rejectHint: number,
      logTermHint: number,
      snapshot: meta,
      context: bytesArb(40),
    },
    {
      requiredKeys: [
        'type',
        'group',
        'term',
        'logTerm',
        'index',
        'entries',
        'commit',
        'reject',
        'rejectHint',
        'logTermHint',
      ],
    },
  )
  .map((m) => ({ ...m, type: m.type as MessageType, from: FROM, to: TO }));

const coalescedBeat: fc.Arbitrary<Message> = fc
  .record(
    {
      type: fc.constantFrom(MessageType.Heartbeat, MessageType.HeartbeatResp),
      group: u32,
      term: number,
      commit: number,
      context: bytesArb(16),
    },
    { requiredKeys: ['type', 'group', 'term', 'commit'] },
  )
  .map((b) => message({ ...b, from: FROM, to: TO }));

const batch = fc.array(fc.oneof(anyMessage, coalescedBeat), { minLength: 1, maxLength: 24 });

/** The order the decoder returns: coalesced Heartbeats, then HeartbeatResps, then the rest. */
function wireOrder(msgs: Message[]): Message[] {
  const beats = msgs.filter((m) => isCoalescedBeat(m) && m.type === MessageType.Heartbeat);
  const resps = msgs.filter((m) => isCoalescedBeat(m) && m.type === MessageType.HeartbeatResp);
  return [...beats, ...resps, ...msgs.filter((m) => !isCoalescedBeat(m))];
}

function raftMessages(result: FrameDecodeResult) {
  if (!result.ok) throw result.error;
  if (result.frame.kind !== 'raft') throw new Error(`a ${result.frame.kind} frame`);
  return result.frame.messages;
}

/** Recomputes the length field and CRC, so a mutation reaches the body parser. */
function reseal(frame: Uint8Array): Uint8Array {
  const out = frame.slice();
  if (out.length < frameHeaderBytes) return out;
  const view = new DataView(out.buffer);
  view.setUint32(0, out.length - frameHeaderBytes, true);
  const tail = Math.min(view.getUint32(12, true), out.length - frameHeaderBytes);
  const crc = crc32c(out.subarray(8, out.length - tail), crc32c(out.subarray(0, 4)));
  view.setUint32(4, crc, true);
  return out;
}

/** Decodes, requiring that only a PROTOCOL error ever comes out. */
function decodeStrict(bytes: Uint8Array): FrameDecodeResult {
  const result = decodeFrame(bytes);
  if (!result.ok) expect(isFlotillaError(result.error, 'PROTOCOL')).toBe(true);
  return result;
}

/** An accepted frame must be canonical: re-encoding it gives the same bytes. */
function expectCanonical(bytes: Uint8Array, result: FrameDecodeResult): void {
  if (!result.ok) return;
  const f = result.frame;
  if (f.kind === 'raft') expect(encodeRaftFrame(f.from, f.to, f.messages)).toEqual(bytes);
  if (f.kind === 'snapshot') expect(encodeSnapshotFrame(f.chunk)).toEqual(bytes);
  if (f.kind === 'ping') expect(encodePingFrame()).toEqual(bytes);
}

type MutationT =
  | { kind: 'flip'; at: number; xor: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'append'; bytes: Uint8Array }
  | { kind: 'overwrite'; at: number; bytes: Uint8Array };

const mutation: fc.Arbitrary<MutationT> = fc.oneof(
  fc.record({ kind: fc.constant('flip'), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate'), at: fc.nat() }),
  fc.record({ kind: fc.constant('append'), bytes: bytesArb(32) }),
  fc.record({ kind: fc.constant('overwrite'), at: fc.nat(), bytes: bytesArb(8) }),
);

function mutate(frame: Uint8Array, m: MutationT): Uint8Array {
  const out = frame.slice();
  switch (m.kind) {
    case 'flip':
      out[m.at % out.length] = out[m.at % out.length]! ^ m.xor;
      return out;
    case 'truncate':
      return out.subarray(0, m.at % out.length);
    case 'append': {
      const longer = new Uint8Array(out.length + m.bytes.length);
      longer.set(out);
      longer.set(m.bytes, out.length);
      return longer;
    }
    case 'overwrite':
      out.set(
        m.bytes.subarray(0, Math.max(0, out.length - (m.at % out.length))),
        m.at % out.length,
      );
      return out;
  }
}
const chunkArb: fc.Arbitrary<SnapshotChunk> = fc.record({
  group: u32,
  from: fc.constant(FROM),
  to: fc.constant(TO),
  term: number,
  snapshot: meta,
  seq: number,
  last: fc.boolean(),
  data: bytesArb(300),
});

// ---- Tests -------------------------------------------------------------------------------------

describe('codec: the documented wire layout', () => {
  it('encodes a tiny Raft frame to exactly the documented bytes', () => {
    const beat = message({
      type: MessageType.Heartbeat,
      from: 1,
      to: 2,
      group: 5,
      term: 3,
      commit: 200,
    });
    const resp = message({
      type: MessageType.AppResp,
      from: 1,
      to: 2,
      group: 300,
      term: 3,
      index: 9,
      reject: true,
      rejectHint: 4,
    });
    const frame = encodeRaftFrame(1, 2, [resp, beat]);
    const body = [
      ...[1, 2, 1, 0, 1], // from, to, 1 heartbeat, 0 responses, 1 general message
      ...[5, 3, 0xc8, 0x01, 0], // tuple: group 5, term 3, commit 200 (varint), no context
      ...[2, 0xac, 0x02], // AppResp, group 300 (varint)
      ...[0xa3, 0x01], // bits: term | index | reject | rejectHint = 0xa3 (varint)
      ...[3, 9, 4], // term, index, rejectHint
    ];
    const header = [body.length, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0];
    const expected = Uint8Array.from([...header, ...body]);
    const crc = crc32c(expected.subarray(8), crc32c(expected.subarray(0, 4)));
    new DataView(expected.buffer).setUint32(4, crc, true);
    expect(frame).toEqual(expected);
  });

  it('leaves entry records out of the frame CRC: they carry their own', () => {
    const entries = [{ term: 2, index: 5, type: EntryType.Normal, data: Uint8Array.of(1, 2, 3) }];
    const app = message({ type: MessageType.App, from: 1, to: 2, group: 4, term: 2, entries });
    const frame = encodeRaftFrame(1, 2, [app]);
    const records = encodeRecords([
      { type: 1, group: 4, term: 2, index: 5, payload: entries[0]!.data },
    ]);
    const tail = new DataView(frame.buffer).getUint32(12, true);
    expect(tail).toBe(records.length);
    expect(frame.subarray(frame.length - tail)).toEqual(records);
    const crc = crc32c(frame.subarray(8, frame.length - tail), crc32c(frame.subarray(0, 4)));
    expect(new DataView(frame.buffer).getUint32(4, true)).toBe(crc);
  });

  it('coalesces heartbeats into compact tuples', () => {
    const beats = Array.from({ length: 1000 }, (_, g) =>
      message({ type: MessageType.Heartbeat, from: 1, to: 2, group: g, term: 9, commit: 100 }),
    );
    const frame = encodeRaftFrame(1, 2, beats);
    // group (1-2 B) + term (1 B) + commit (1 B) + context tag (1 B) per heartbeat.
    const tuples = beats.reduce((n, b) => n + (b.group < 128 ? 4 : 5), 0);
    expect(frame.length).toBe(frameHeaderBytes + 1 + 1 + 2 + 1 + 1 + tuples);
    expect(raftMessages(decodeFrame(frame)).map(plain)).toEqual(beats);
  });

  it('sizes each message exactly as it is encoded', () => {
    fc.assert(
      fc.property(batch, (msgs) => {
        const frame = encodeRaftFrame(FROM, TO, msgs);
        const sum = msgs.reduce((n, m) => n + messageWireBytes(m), 0);
        expect(frame.length).toBeLessThanOrEqual(raftFrameFixedBytesMax + sum);
        expect(frame.length).toBeGreaterThan(frameHeaderBytes + sum);
      }),
      { numRuns: 200 },
    );
  });
});

describe('codec: round trips', () => {
  it('round-trips random Message batches byte-exactly', () => {
    fc.assert(
      fc.property(batch, (msgs) => {
        const frame = encodeRaftFrame(FROM, TO, msgs);
        const got = raftMessages(decodeStrict(frame));
        expect(got.map(plain)).toEqual(wireOrder(msgs));
        for (const m of got) expectVerifiedRecords(m);
        expect(encodeRaftFrame(FROM, TO, got)).toEqual(frame);
      }),
      { numRuns: 400 },
    );
  });

  it('round-trips random snapshot chunks byte-exactly', () => {
    fc.assert(
      fc.property(chunkArb, (chunk) => {
        const frame = encodeSnapshotFrame(chunk);
        const result = decodeStrict(frame);
        expect(result.ok && result.frame.kind === 'snapshot' && result.frame.chunk).toEqual(chunk);
        expectCanonical(frame, result);
      }),
      { numRuns: 200 },
    );
  });

  it('splits concatenated frames from arbitrary stream chunking', () => {
    fc.assert(
      fc.property(
        fc.array(batch, { minLength: 1, maxLength: 4 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1 }),
        (batches, cuts) => {
          const frames = batches.map((b) => encodeRaftFrame(FROM, TO, b));
          const stream = Uint8Array.from(frames.flatMap((f) => [...f]));
          const reader = new FrameReader(frameBytesMax);
          const out: Uint8Array[] = [];
          for (let at = 0, i = 0; at < stream.length; i++) {
            const n = cuts[i % cuts.length]!;
            reader.push(stream.subarray(at, at + n));
            at += n;
            for (let f = reader.next(); f !== null; f = reader.next()) out.push(f);
          }
          expect(out).toEqual(frames);
          expect(reader.bufferedBytes()).toBe(0);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('codec: defensive decoding', () => {
  it('never throws on mutated frames, and accepts only canonical ones', () => {
    fc.assert(
      fc.property(batch, mutation, fc.boolean(), (msgs, m, resealed) => {
        const frame = encodeRaftFrame(FROM, TO, msgs);
        const bad = resealed ? reseal(mutate(frame, m)) : mutate(frame, m);
        const result = decodeStrict(bad);
        expectCanonical(bad, result);
      }),
      { numRuns: 3000 },
    );
  });

  it('never throws on mutated snapshot chunks and handshake bodies', () => {
    fc.assert(
      fc.property(chunkArb, mutation, (chunk, m) => {
        const bad = reseal(mutate(encodeSnapshotFrame(chunk), m));
        expectCanonical(bad, decodeStrict(bad));
      }),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(bytesArb(120), (body) => {
        for (const result of [decodeHello(body), decodeWelcome(body), decodeProof(body)]) {
          if (!result.ok) expect(isFlotillaError(result.error, 'PROTOCOL')).toBe(true);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('never throws on random bytes fed to the stream splitter and decoder', () => {
    fc.assert(
      fc.property(fc.array(bytesArb(64), { maxLength: 8 }), (chunks) => {
        const reader = new FrameReader(frameBytesMax);
        let pushed = 0;
        try {
          for (const c of chunks) {
            reader.push(c);
            pushed += c.length;
            for (let f = reader.next(); f !== null; f = reader.next()) decodeStrict(f);
            expect(reader.bufferedBytes()).toBeLessThanOrEqual(pushed);
          }
        } catch (err) {
          expect(isFlotillaError(err, 'PROTOCOL')).toBe(true);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses a forged length at once and buffers no more than what arrived', () => {
    const reader = new FrameReader(512);
    reader.push(Uint8Array.of(0xf0, 0xff, 0xff, 0xff));
    expect(() => reader.next()).toThrow(/exceeds 512 B/);
    const big = new FrameReader(frameBytesMax);
    const header = new Uint8Array(frameHeaderBytes);
    new DataView(header.buffer).setUint32(0, frameBytesMax - frameHeaderBytes, true);
    big.push(header);
    expect(big.next()).toBeNull();
    expect(big.bufferedBytes()).toBe(frameHeaderBytes);
  });

  it('refuses nonsense counts without allocating for them', () => {
    const frame = (body: number[]) => {
      const header = [body.length, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0];
      return reseal(Uint8Array.from([...header, ...body]));
    };
    const tooMany = frameMessagesMax + 1;
    const varint = (v: number) => [(v & 0x7f) | 0x80, ((v >>> 7) & 0x7f) | 0x80, v >>> 14];
    const cases: [number[], RegExp][] = [
      [[1, 2, ...varint(tooMany), 0, 0], /exceeds 65536/],
      [[1, 2, ...varint(frameMessagesMax), 0, 0], /truncated/],
      [[1, 2, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], /varint/],
      [[1, 2, 0, 0, 1, 1, 0, 0x10, 0xff, 0xff, 0x03], /more entries than tail/],
      [[1, 2, 0, 0, 1, 1, 0, 0x40, 0xff, 0xff, 0x03], /context length/],
      [[1, 2, 0, 0, 1, 99, 0, 0], /unknown message type 99/],
      [[1, 2, 0, 0, 0], /empty Raft frame/],
      [[0, 2, 1, 0, 0, 1, 1, 1, 0], /from is 0/],
      [[1, 2, 1, 0, 0, 1, 1, 1, 0, 7], /trailing/],
      [[1, 2, 0, 0, 1, 1, 0, 0x01, 0], /present but zero/],
      [[1, 2, 0, 0, 1, 7, 0, 0], /heartbeat outside its block/],
      [[1, 2, 0, 0, 1, 1, 0, 0x80, 0x00], /non-minimal/],
    ];
    for (const [body, error] of cases) {
      const result = decodeStrict(frame(body));
      expect(result.ok).toBe(false);
      expect(!result.ok && result.error.message).toMatch(error);
    }
  });

  it('refuses a header that is not canonical or a kind it does not know', () => {
    const ping = encodePingFrame();
    const withKind = (kind: number) => {
      const f = ping.slice();
      f[8] = kind;
      return reseal(f);
    };
    expect(decodeStrict(withKind(42)).ok).toBe(false);
    const flagged = ping.slice();
    flagged[9] = 1;
    expect(decodeStrict(reseal(flagged)).ok).toBe(false);
    const tailed = ping.slice();
    tailed[12] = 1;
    expect(decodeStrict(reseal(tailed)).ok).toBe(false);
    expect(decodeStrict(ping).ok).toBe(true);
  });

  it('round-trips the handshake bodies and refuses another version', () => {
    const hello = {
      version: 1,
      lane: Lane.Snapshot,
      dialer: 4,
      acceptor: 9,
      clusterId: Uint8Array.of(65, 66),
      nonce: new Uint8Array(32).fill(7),
    };
    const helloFrame = decodeFrame(encodeHello(hello));
    expect(helloFrame.ok && helloFrame.frame.kind === 'handshake').toBe(true);
    if (!helloFrame.ok || helloFrame.frame.kind !== 'handshake') return;
    const decoded = decodeHello(helloFrame.frame.body);
    expect(decoded.ok && decoded.value).toEqual(hello);
    const v2 = helloFrame.frame.body.slice();
    v2[4] = 2;
    const refused = decodeHello(v2);
    expect(!refused.ok && refused.error.message).toMatch(/protocol version 2/);
    const welcome = { version: 1, acceptor: 9, dialer: 4, nonce: hello.nonce, mac: hello.nonce };
    const w = decodeFrame(encodeWelcome(welcome));
    if (!w.ok || w.frame.kind !== 'handshake') throw new Error('welcome frame');
    expect(decodeWelcome(w.frame.body)).toEqual({ ok: true, value: welcome });
  });
});
