/**
 * Valid transport encodings for the fuzz seeds: arbitraries of Raft messages, snapshot chunks and
 * handshake bodies, the frames the real encoders make of them, the positions of their integer
 * fields, and a resealer that makes a mutated frame pass its length and CRC checks again.
 */
import fc from 'fast-check';
import {
  type ConfState,
  EntryType,
  type Message,
  MessageType,
  type NodeId,
  type SnapshotMeta,
} from '../../engine/raft/types.js';
import {
  encodePingFrame,
  encodeRaftFrame,
  encodeSnapshotFrame,
  frameHeaderBytes,
} from '../../engine/transport/codec.js';
import {
  encodeHello,
  encodeProof,
  encodeWelcome,
  type Hello,
  Lane,
  type Welcome,
} from '../../engine/transport/handshake.js';
import type { SnapshotChunk } from '../../engine/transport/transport.js';
import { varintBytes } from '../../engine/transport/wire.js';
import {
  crc32c,
  headerLengthOffset,
  headerTypeOffset,
  recordHeaderBytes,
  recordPayloadBytesMax,
} from '../../wasm/index.js';
import type { Field } from './mutate.js';

const u32 = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 0xffffffff }));
const nodeId = fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 0xffffffff }));
const count = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 0, max: 1000 }),
  fc.maxSafeNat(),
  fc.constant(Number.MAX_SAFE_INTEGER),
);

const conf: fc.Arbitrary<ConfState> = fc.record({
  voters: fc.array(nodeId, { maxLength: 5 }),
  votersOutgoing: fc.array(nodeId, { maxLength: 3 }),
  learners: fc.array(nodeId, { maxLength: 3 }),
  learnersNext: fc.array(nodeId, { maxLength: 2 }),
  autoLeave: fc.boolean(),
});
const meta: fc.Arbitrary<SnapshotMeta> = fc.record({ index: count, term: count, conf });

const entry = fc.record({
  term: count,
  index: count,
  type: fc.constantFrom(EntryType.Normal, EntryType.ConfChange),
  data: fc.uint8Array({ maxLength: 48 }),
});

/** Any message from `from` to `to`: every field set or not, entries, context and snapshot. */
export function messageArb(from: NodeId, to: NodeId): fc.Arbitrary<Message> {
  return fc
    .record(
      {
        type: fc.integer({ min: 1, max: 14 }),
        group: u32,
        term: count,
        logTerm: count,
        index: count,
        entries: fc.array(entry, { maxLength: 3 }),
        commit: count,
        reject: fc.boolean(),
        rejectHint: count,
        logTermHint: count,
        snapshot: meta,
        context: fc.uint8Array({ maxLength: 24 }),
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
    .map((m) => ({ ...m, type: m.type as MessageType, from, to }));
}

/** A heartbeat or heartbeat response that travels as a coalesced tuple. */
export function beatArb(from: NodeId, to: NodeId): fc.Arbitrary<Message> {
  return fc
    .record(
      {
        type: fc.constantFrom(MessageType.Heartbeat, MessageType.HeartbeatResp),
        group: u32,
        term: count,
        commit: count,
        context: fc.uint8Array({ maxLength: 12 }),
      },
      { requiredKeys: ['type', 'group', 'term', 'commit'] },
    )
    .map((b) => ({
      logTerm: 0,
      index: 0,
      entries: [],
      reject: false,
      rejectHint: 0,
      logTermHint: 0,
      ...b,
      from,
      to,
    }));
}

/** A batch of messages for one Raft frame. */
export function batchArb(from: NodeId, to: NodeId): fc.Arbitrary<Message[]> {
  return fc.array(fc.oneof(messageArb(from, to), beatArb(from, to)), {
    minLength: 1,
    maxLength: 12,
  });
}

/** A snapshot chunk from `from` to `to`. */
export function chunkArb(from: NodeId, to: NodeId): fc.Arbitrary<SnapshotChunk> {
  return fc.record({
    group: u32,
    from: fc.constant(from),
    to: fc.constant(to),
    term: count,
    snapshot: meta,
    seq: count,
    last: fc.boolean(),
    data: fc.uint8Array({ maxLength: 200 }),
  });
}

const nonce = fc.uint8Array({ minLength: 32, maxLength: 32 });

/** A Hello of the current protocol version. */
export const helloArb: fc.Arbitrary<Hello> = fc.record({
  version: fc.constant(1),
  lane: fc.constantFrom(Lane.Raft, Lane.Snapshot),
  dialer: nodeId,
  acceptor: nodeId,
  clusterId: fc.uint8Array({ maxLength: 64 }),
  nonce,
});

/** A Welcome of the current protocol version. */
export const welcomeArb: fc.Arbitrary<Welcome> = fc.record({
  version: fc.constant(1),
  acceptor: nodeId,
  dialer: nodeId,
  nonce,
  mac: nonce,
});

/** A valid frame and the integer fields a mutation should aim at. */
export interface FrameSeed {
  what: 'raft' | 'snapshot' | 'ping' | 'hello' | 'welcome' | 'proof';
  bytes: Uint8Array;
  fields: Field[];
}

/** Fields of the frame header, plus the header fields of the records in a Raft frame's tail. */
export function frameFields(frame: Uint8Array): Field[] {
  const le = (at: number, width: 1 | 2 | 4 | 8): Field => ({ at, width, littleEndian: true });
  const fields = [le(0, 4), le(4, 4), le(8, 1), le(9, 1), le(10, 2), le(12, 4)];
  const view = new DataView(frame.buffer, frame.byteOffset, frame.length);
  const tail = frame.length >= frameHeaderBytes ? view.getUint32(12, true) : 0;
  let at = frame.length - tail;
  while (tail > 0 && at + recordHeaderBytes <= frame.length) {
    fields.push(le(at + headerLengthOffset, 4), le(at + headerTypeOffset, 1));
    at += recordHeaderBytes + view.getUint32(at + headerLengthOffset, true);
  }
  return fields;
}

/** Fields of a Hello body: magic, version, lane and the cluster id length. */
function helloFields(h: Hello): Field[] {
  const idLengthAt = 7 + varintBytes(h.dialer) + varintBytes(h.acceptor);
  return [
    { at: 16, width: 4, littleEndian: false },
    { at: 20, width: 2, littleEndian: true },
    { at: 22, width: 1, littleEndian: true },
    { at: 16 + idLengthAt, width: 1, littleEndian: true },
  ];
}

/** Any valid frame a peer may send, from `from` to `to`. */
export function frameSeedArb(from: NodeId, to: NodeId): fc.Arbitrary<FrameSeed> {
  const seed = (what: FrameSeed['what'], bytes: Uint8Array, extra: Field[] = []): FrameSeed => ({
    what,
    bytes,
    fields: [...frameFields(bytes), ...extra],
  });
  return fc.oneof(
    {
      weight: 4,
      arbitrary: batchArb(from, to).map((b) => seed('raft', encodeRaftFrame(from, to, b))),
    },
    {
      weight: 2,
      arbitrary: chunkArb(from, to).map((c) => seed('snapshot', encodeSnapshotFrame(c))),
    },
    { weight: 1, arbitrary: fc.constant(null).map(() => seed('ping', encodePingFrame())) },
    { weight: 2, arbitrary: helloArb.map((h) => seed('hello', encodeHello(h), helloFields(h))) },
    { weight: 1, arbitrary: welcomeArb.map((w) => seed('welcome', encodeWelcome(w))) },
    { weight: 1, arbitrary: nonce.map((mac) => seed('proof', encodeProof(mac))) },
  );
}

/** How far to repair a mutated frame: not at all, its header (length, CRC), or its records too. */
export type Reseal = 'none' | 'frame' | 'deep';

/** An arbitrary reseal depth. */
export const resealArb: fc.Arbitrary<Reseal> = fc.constantFrom('none', 'frame', 'deep');

function resealRecords(frame: Uint8Array, tailStart: number): void {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.length);
  let at = tailStart;
  while (at + recordHeaderBytes <= frame.length) {
    const length = view.getUint32(at + headerLengthOffset, true);
    const end = at + recordHeaderBytes + length;
    if (length > recordPayloadBytesMax || end > frame.length) return;
    view.setUint32(at, crc32c(frame.subarray(at + 4, end)), true);
    at = end;
  }
}

/** Repairs the checksums (and, for 'frame' and 'deep', the length) of a mutated frame. */
export function reseal(frame: Uint8Array, depth: Reseal): Uint8Array {
  const out = frame.slice();
  if (depth === 'none' || out.length < frameHeaderBytes) return out;
  const view = new DataView(out.buffer);
  view.setUint32(0, out.length - frameHeaderBytes, true);
  const tail = Math.min(view.getUint32(12, true), out.length - frameHeaderBytes);
  if (depth === 'deep') resealRecords(out, out.length - tail);
  const crc = crc32c(out.subarray(8, out.length - tail), crc32c(out.subarray(0, 4)));
  view.setUint32(4, crc, true);
  return out;
}
