/**
 * The node-to-node frame codec. HARD FORMAT (wire, version `transportProtocolVersion`): every
 * node of a cluster must agree on these bytes; change them only together with the version.
 *
 * Frame = 16-byte header + body. All fixed-width integers little-endian except the handshake
 * magic; "varint" is a minimal unsigned LEB128 of at most 8 bytes (wire.ts).
 *
 * | offset | size | field                                                                  |
 * |-------:|-----:|------------------------------------------------------------------------|
 * |      0 |    4 | length: body bytes (frame bytes - 16), at most `frameBytesMax` - 16    |
 * |      4 |    4 | crc32c of bytes [0, 4) then [8, 16 + length - tail) (chained)           |
 * |      8 |    1 | kind (FrameKind)                                                        |
 * |      9 |    1 | flags: 0                                                                |
 * |     10 |    2 | reserved: 0                                                             |
 * |     12 |    4 | tail: bytes at the end of the body that are framed log records        |
 *
 * The frame CRC skips the tail because each record there carries its own CRC32C (wasm/format.ts):
 * entry bytes are checksummed once, and the receiver hands the verified records to its log as
 * they are (engine/log/framed-records.ts). Only Raft frames have a tail.
 *
 * Raft frame body (kind 4): `varint from, varint to, varint heartbeats, varint heartbeatResps,
 * varint messages`, then the coalesced Heartbeat tuples, then the HeartbeatResp tuples, then the
 * general messages, then the tail. A tuple is `varint group, varint term, varint commit,
 * varint ctx` with ctx 0 = no context, n + 1 = n context bytes follow. A Heartbeat or
 * HeartbeatResp whose other fields are all zero is always a tuple; any other is a general message.
 * A general message is `u8 type, varint group, varint bits`, then, in this order, the fields whose
 * bit is set: term (bit 0), index (1), commit (2), logTerm (3), entry count (4), reject (5: no
 * bytes), context (6: varint length + bytes), rejectHint (7), logTermHint (8), snapshot meta (9).
 * A numeric field's bit is set exactly when it is non-zero. The entries of all general messages
 * are the tail's records, in message order: type EntryNormal/EntryConfChange, the message's group,
 * the entry's term and index in the header, payload = the entry's data.
 *
 * Snapshot meta: `varint index, varint term`, four node lists (voters, votersOutgoing, learners,
 * learnersNext) each `varint count` + count varint node ids, then `u8 autoLeave` (0 or 1).
 *
 * Snapshot chunk body (kind 5): `varint from, varint to, varint group, varint term`, snapshot
 * meta, `varint seq, u8 last (0/1), varint data length`, data.
 *
 * Ping body (kind 6): empty. Handshake bodies (kinds 1-3): see handshake.ts.
 *
 * Decoding is strict: every length is bounded by a named limit and by the bytes present, and
 * anything not in canonical form is refused, so an accepted frame re-encodes to the same bytes.
 * Decoding never throws: it returns a PROTOCOL FlotillaError.
 */

import {
  crc32c,
  decodeRecords,
  encodedBytes,
  encodeRecords,
  type RecordInput,
  recordBytes,
  recordGroup,
  recordHeaderBytes,
  recordIndex,
  recordPayload,
  recordTerm,
  recordType,
} from '../../wasm/index.js';
import { assert } from '../assert.js';
import { ErrorCode, type FlotillaError, isFlotillaError } from '../errors.js';
import {
  confStateNodesMax,
  frameBytesMax,
  frameMessagesMax,
  messageContextBytesMax,
  wireSnapshotChunkBytesMax,
} from '../limits.js';
import { rememberFramedRecord } from '../log/framed-records.js';
import {
  type ConfState,
  type Entry,
  type EntryType,
  type Message,
  MessageType,
  type NodeId,
  type SnapshotMeta,
} from '../raft/types.js';
import { RecordType } from '../records.js';
import type { InboundMessage, SnapshotChunk } from './transport.js';
import { ByteReader, ByteWriter, getU32, protocolError, putU32, varintBytes } from './wire.js';

/** Frame kinds. HARD (wire): never renumber, only add. */
export const FrameKind = {
  Hello: 1,
  Welcome: 2,
  Proof: 3,
  Raft: 4,
  Snapshot: 5,
  Ping: 6,
} as const;
/** See {@link FrameKind}. */
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** Bytes of the frame header. HARD (wire). */
export const frameHeaderBytes = 16;
/** Most bytes a Raft frame needs besides its messages (header + five u32 varints). */
export const raftFrameFixedBytesMax = frameHeaderBytes + 5 * 5;

const u32Max = 0xffffffff;

// General-message field bits. HARD (wire).
const bitTerm = 1 << 0;
const bitIndex = 1 << 1;
const bitCommit = 1 << 2;
const bitLogTerm = 1 << 3;
const bitEntries = 1 << 4;
const bitReject = 1 << 5;
const bitContext = 1 << 6;
const bitRejectHint = 1 << 7;
const bitLogTermHint = 1 << 8;
const bitSnapshot = 1 << 9;
const bitsKnown = (1 << 10) - 1;

const messageTypeMax = Math.max(...Object.values(MessageType));

/** A frame as decoded. Views (data, context, entries) point into the decoded buffer. */
export type Frame =
  | { kind: 'raft'; from: NodeId; to: NodeId; messages: InboundMessage[] }
  | { kind: 'snapshot'; chunk: SnapshotChunk }
  | { kind: 'ping' }
  | { kind: 'handshake'; type: FrameKind; body: Uint8Array };

/** The outcome of decoding one frame: the frame, or a PROTOCOL error saying what was wrong. */
export type FrameDecodeResult = { ok: true; frame: Frame } | { ok: false; error: FlotillaError };

/** Whether `m` travels as a coalesced heartbeat tuple (all fields but the tuple's are zero). */
export function isCoalescedBeat(m: Message): boolean {
  return (
    (m.type === MessageType.Heartbeat || m.type === MessageType.HeartbeatResp) &&
    m.logTerm === 0 &&
    m.index === 0 &&
    m.entries.length === 0 &&
    !m.reject &&
    m.rejectHint === 0 &&
    m.logTermHint === 0 &&
    m.snapshot === undefined
  );
}

// ---- Sizes -------------------------------------------------------------------------------------

function optVarintBytes(value: number): number {
  return value === 0 ? 0 : varintBytes(value);
}

function confStateBytes(conf: ConfState): number {
  let n = 1;
  for (const list of [conf.voters, conf.votersOutgoing, conf.learners, conf.learnersNext]) {
    n += varintBytes(list.length);
    for (const id of list) n += varintBytes(id);
  }
  return n;
}

function snapshotMetaBytes(meta: SnapshotMeta): number {
  return varintBytes(meta.index) + varintBytes(meta.term) + confStateBytes(meta.conf);
}

function beatBytes(m: Message): number {
  const ctx = m.context === undefined ? 0 : m.context.length;
  const tag = m.context === undefined ? 0 : ctx + 1;
  return (
    varintBytes(m.group) + varintBytes(m.term) + varintBytes(m.commit) + varintBytes(tag) + ctx
  );
}

function fieldBits(m: Message): number {
  let bits = 0;
  if (m.term !== 0) bits |= bitTerm;
  if (m.index !== 0) bits |= bitIndex;
  if (m.commit !== 0) bits |= bitCommit;
  if (m.logTerm !== 0) bits |= bitLogTerm;
  if (m.entries.length !== 0) bits |= bitEntries;
  if (m.reject) bits |= bitReject;
  if (m.context !== undefined) bits |= bitContext;
  if (m.rejectHint !== 0) bits |= bitRejectHint;
  if (m.logTermHint !== 0) bits |= bitLogTermHint;
  if (m.snapshot !== undefined) bits |= bitSnapshot;
  return bits;
}

function generalBytes(m: Message): number {
  let n = 1 + varintBytes(m.group) + varintBytes(fieldBits(m));
  n += optVarintBytes(m.term) + optVarintBytes(m.index) + optVarintBytes(m.commit);
  n += optVarintBytes(m.logTerm) + optVarintBytes(m.entries.length);
  if (m.context !== undefined) n += varintBytes(m.context.length) + m.context.length;
  n += optVarintBytes(m.rejectHint) + optVarintBytes(m.logTermHint);
  if (m.snapshot !== undefined) n += snapshotMetaBytes(m.snapshot);
  for (const e of m.entries) n += recordHeaderBytes + e.data.length;
  return n;
}

/** Exact bytes `m` adds to a Raft frame (records of its entries included). */
export function messageWireBytes(m: Message): number {
  return isCoalescedBeat(m) ? beatBytes(m) : generalBytes(m);
}

// ---- Checks of outgoing data (programmer errors) -----------------------------------------------

function assertU32(value: number, what: string): void {
  assert(Number.isInteger(value) && value >= 0 && value <= u32Max, `${what} is a u32`);
}

function assertCount(value: number, what: string): void {
  assert(Number.isSafeInteger(value) && value >= 0, `${what} is a safe non-negative integer`);
}

function assertConf(conf: ConfState): void {
  for (const list of [conf.voters, conf.votersOutgoing, conf.learners, conf.learnersNext]) {
    assert(list.length <= confStateNodesMax, 'a ConfState list fits confStateNodesMax');
    for (const id of list) assert(id > 0 && id <= u32Max, 'a ConfState node id is a u32 > 0');
  }
}

/** Asserts that `m` can be framed as a message from `from` to `to`. */
export function assertSendable(m: Message, from: NodeId, to: NodeId): void {
  assert(m.from === from, 'a message is sent by the transport of its `from` node');
  assert(m.to === to, 'a message is sent to its `to` node');
  assert(Number.isInteger(m.type) && m.type >= 1 && m.type <= messageTypeMax, 'known type');
  assertU32(m.group, 'group');
  // One call per field, not a loop over a table: this runs twice for every message sent.
  assertCount(m.term, 'term');
  assertCount(m.index, 'index');
  assertCount(m.commit, 'commit');
  assertCount(m.logTerm, 'logTerm');
  assertCount(m.rejectHint, 'rejectHint');
  assertCount(m.logTermHint, 'logTermHint');
  assert(
    m.context === undefined || m.context.length <= messageContextBytesMax,
    'context fits messageContextBytesMax',
  );
  if (m.snapshot !== undefined) {
    assertCount(m.snapshot.index, 'snapshot index');
    assertCount(m.snapshot.term, 'snapshot term');
    assertConf(m.snapshot.conf);
  }
}

// ---- Encoding ----------------------------------------------------------------------------------

function frameWriter(kind: FrameKind, bodyBytes: number, tailBytes: number): ByteWriter {
  const total = frameHeaderBytes + bodyBytes;
  assert(total <= frameBytesMax, 'a frame fits frameBytesMax');
  const w = new ByteWriter(total);
  w.u32(bodyBytes);
  w.u32(0);
  w.u8(kind);
  w.u8(0);
  w.u16(0);
  w.u32(tailBytes);
  return w;
}

function frameCrc(buf: Uint8Array, tailBytes: number): number {
  return crc32c(buf.subarray(8, buf.length - tailBytes), crc32c(buf.subarray(0, 4)));
}

function seal(w: ByteWriter, tailBytes: number): Uint8Array {
  const buf = w.finish();
  putU32(buf, 4, frameCrc(buf, tailBytes));
  return buf;
}

function writeConf(w: ByteWriter, conf: ConfState): void {
  for (const list of [conf.voters, conf.votersOutgoing, conf.learners, conf.learnersNext]) {
    w.varint(list.length);
    for (const id of list) w.varint(id);
  }
  w.u8(conf.autoLeave ? 1 : 0);
}

function writeSnapshotMeta(w: ByteWriter, meta: SnapshotMeta): void {
  w.varint(meta.index);
  w.varint(meta.term);
  writeConf(w, meta.conf);
}

function writeBeat(w: ByteWriter, m: Message): void {
  w.varint(m.group);
  w.varint(m.term);
  w.varint(m.commit);
  if (m.context === undefined) {
    w.varint(0);
  } else {
    w.varint(m.context.length + 1);
    w.bytes(m.context);
  }
}

function writeOpt(w: ByteWriter, value: number): void {
  if (value !== 0) w.varint(value);
}

function writeGeneral(w: ByteWriter, m: Message): void {
  w.u8(m.type);
  w.varint(m.group);
  w.varint(fieldBits(m));
  writeOpt(w, m.term);
  writeOpt(w, m.index);
  writeOpt(w, m.commit);
  writeOpt(w, m.logTerm);
  writeOpt(w, m.entries.length);
  if (m.context !== undefined) {
    w.varint(m.context.length);
    w.bytes(m.context);
  }
  writeOpt(w, m.rejectHint);
  writeOpt(w, m.logTermHint);
  if (m.snapshot !== undefined) writeSnapshotMeta(w, m.snapshot);
}

function entryRecords(general: readonly Message[]): RecordInput[] {
  const records: RecordInput[] = [];
  for (const m of general) {
    for (const e of m.entries) {
      records.push({ type: e.type, group: m.group, term: e.term, index: e.index, payload: e.data });
    }
  }
  return records;
}

/**
 * Encodes one Raft frame carrying `msgs` (each from `from` to `to`). Coalescable heartbeats and
 * heartbeat responses go first, as tuples; the decoder returns them first too.
 */
export function encodeRaftFrame(from: NodeId, to: NodeId, msgs: readonly Message[]): Uint8Array {
  assert(from > 0 && from <= u32Max, 'from is a node id');
  assert(to > 0 && to <= u32Max, 'to is a node id');
  assert(msgs.length > 0, 'a Raft frame carries at least one message');
  assert(msgs.length <= frameMessagesMax, 'a Raft frame fits frameMessagesMax messages');
  const beats: Message[] = [];
  const beatResps: Message[] = [];
  const general: Message[] = [];
  let body = 0;
  for (const m of msgs) {
    assertSendable(m, from, to);
    if (!isCoalescedBeat(m)) general.push(m);
    else if (m.type === MessageType.Heartbeat) beats.push(m);
    else beatResps.push(m);
    body += messageWireBytes(m);
  }
  const records = entryRecords(general);
  const tail = encodedBytes(records);
  body += varintBytes(from) + varintBytes(to);
  body += varintBytes(beats.length) + varintBytes(beatResps.length) + varintBytes(general.length);
  const w = frameWriter(FrameKind.Raft, body, tail);
  w.varint(from);
  w.varint(to);
  w.varint(beats.length);
  w.varint(beatResps.length);
  w.varint(general.length);
  for (const m of beats) writeBeat(w, m);
  for (const m of beatResps) writeBeat(w, m);
  for (const m of general) writeGeneral(w, m);
  // The kernel's output may live in WASM memory until the next kernel call: copy it at once.
  if (records.length > 0) w.bytes(encodeRecords(records));
  return seal(w, tail);
}

/** Asserts that `chunk` can be framed as a chunk from `from` to `to`. */
export function assertChunkSendable(chunk: SnapshotChunk, from: NodeId, to: NodeId): void {
  assert(chunk.from === from, 'a chunk is sent by the transport of its `from` node');
  assert(chunk.to === to, 'a chunk is sent to its `to` node');
  assertU32(chunk.group, 'chunk group');
  assertCount(chunk.term, 'chunk term');
  assertCount(chunk.seq, 'chunk seq');
  assertCount(chunk.snapshot.index, 'snapshot index');
  assertCount(chunk.snapshot.term, 'snapshot term');
  assertConf(chunk.snapshot.conf);
  assert(
    chunk.data.length <= wireSnapshotChunkBytesMax,
    'chunk data fits wireSnapshotChunkBytesMax',
  );
}

/** Encodes a snapshot chunk frame. */
export function encodeSnapshotFrame(chunk: SnapshotChunk): Uint8Array {
  assert(chunk.from > 0 && chunk.from <= u32Max, 'chunk from is a node id');
  assert(chunk.to > 0 && chunk.to <= u32Max, 'chunk to is a node id');
  assertChunkSendable(chunk, chunk.from, chunk.to);
  const body =
    varintBytes(chunk.from) +
    varintBytes(chunk.to) +
    varintBytes(chunk.group) +
    varintBytes(chunk.term) +
    snapshotMetaBytes(chunk.snapshot) +
    varintBytes(chunk.seq) +
    1 +
    varintBytes(chunk.data.length) +
    chunk.data.length;
  const w = frameWriter(FrameKind.Snapshot, body, 0);
  w.varint(chunk.from);
  w.varint(chunk.to);
  w.varint(chunk.group);
  w.varint(chunk.term);
  writeSnapshotMeta(w, chunk.snapshot);
  w.varint(chunk.seq);
  w.u8(chunk.last ? 1 : 0);
  w.varint(chunk.data.length);
  w.bytes(chunk.data);
  return seal(w, 0);
}

/** Bytes of the frame that carries `chunk`, bounded above (six varints take at most 40 B). */
export function snapshotFrameBytes(chunk: SnapshotChunk): number {
  return frameHeaderBytes + 40 + snapshotMetaBytes(chunk.snapshot) + chunk.data.length;
}

/** Encodes a keepalive frame (empty body). */
export function encodePingFrame(): Uint8Array {
  return seal(frameWriter(FrameKind.Ping, 0, 0), 0);
}

/** Wraps a handshake body (handshake.ts) in a frame of the given kind. */
export function encodeHandshakeFrame(kind: FrameKind, body: Uint8Array): Uint8Array {
  assert(
    kind === FrameKind.Hello || kind === FrameKind.Welcome || kind === FrameKind.Proof,
    'a handshake kind',
  );
  const w = frameWriter(kind, body.length, 0);
  w.bytes(body);
  return seal(w, 0);
}

// ---- Decoding ----------------------------------------------------------------------------------

/**
 * Decodes one whole frame (as split by FrameReader). Never throws for malformed input: returns a
 * PROTOCOL error instead. Any other exception is a bug in this codec and propagates.
 */
export function decodeFrame(buf: Uint8Array): FrameDecodeResult {
  try {
    return { ok: true, frame: parseFrame(buf) };
  } catch (err) {
    if (isFlotillaError(err, ErrorCode.PROTOCOL)) return { ok: false, error: err };
    throw err;
  }
}

function parseFrame(buf: Uint8Array): Frame {
  if (buf.length < frameHeaderBytes) throw protocolError('shorter than a frame header');
  if (buf.length > frameBytesMax) throw protocolError(`${buf.length} B exceeds frameBytesMax`);
  if (getU32(buf, 0) !== buf.length - frameHeaderBytes) throw protocolError('length mismatch');
  const kind = buf[8]!;
  if (buf[9] !== 0 || buf[10] !== 0 || buf[11] !== 0) throw protocolError('non-zero flags');
  const tail = getU32(buf, 12);
  if (tail > buf.length - frameHeaderBytes) throw protocolError('tail longer than the body');
  if (tail !== 0 && kind !== FrameKind.Raft) throw protocolError(`tail in a kind ${kind} frame`);
  if (frameCrc(buf, tail) !== getU32(buf, 4)) throw protocolError('checksum mismatch');
  const bodyEnd = buf.length - tail;
  const r = new ByteReader(buf, frameHeaderBytes, bodyEnd);
  switch (kind) {
    case FrameKind.Raft:
      return parseRaft(r, buf.subarray(bodyEnd));
    case FrameKind.Snapshot:
      return { kind: 'snapshot', chunk: parseChunk(r) };
    case FrameKind.Ping:
      r.expectEnd('ping');
      return { kind: 'ping' };
    case FrameKind.Hello:
    case FrameKind.Welcome:
    case FrameKind.Proof:
      return { kind: 'handshake', type: kind, body: buf.subarray(frameHeaderBytes) };
    default:
      throw protocolError(`unknown frame kind ${kind}`);
  }
}

function nodeId(r: ByteReader, what: string): NodeId {
  const id = r.varintMax(u32Max, what);
  if (id === 0) throw protocolError(`${what} is 0`);
  return id;
}

function parseConf(r: ByteReader): ConfState {
  const lists: NodeId[][] = [];
  for (let l = 0; l < 4; l++) {
    const count = r.varintMax(confStateNodesMax, 'conf list length');
    const list: NodeId[] = [];
    for (let i = 0; i < count; i++) list.push(nodeId(r, 'conf node'));
    lists.push(list);
  }
  const autoLeave = r.u8();
  if (autoLeave > 1) throw protocolError('autoLeave is not 0/1');
  return {
    voters: lists[0]!,
    votersOutgoing: lists[1]!,
    learners: lists[2]!,
    learnersNext: lists[3]!,
    autoLeave: autoLeave === 1,
  };
}

function parseSnapshotMeta(r: ByteReader): SnapshotMeta {
  const index = r.varint();
  const term = r.varint();
  return { index, term, conf: parseConf(r) };
}

function parseChunk(r: ByteReader): SnapshotChunk {
  const from = nodeId(r, 'from');
  const to = nodeId(r, 'to');
  const group = r.varintMax(u32Max, 'group');
  const term = r.varint();
  const snapshot = parseSnapshotMeta(r);
  const seq = r.varint();
  const last = r.u8();
  if (last > 1) throw protocolError('chunk last flag is not 0/1');
  const data = r.bytes(r.varintMax(wireSnapshotChunkBytesMax, 'chunk length'));
  r.expectEnd('snapshot chunk');
  return { group, from, to, term, snapshot, seq, last: last === 1, data };
}

function inbound(
  type: MessageType,
  group: number,
  from: NodeId,
  to: NodeId,
  empty: Uint8Array,
): InboundMessage {
  return {
    type,
    group,
    from,
    to,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    logTermHint: 0,
    entriesBytes: empty,
  };
}

function parseBeat(
  r: ByteReader,
  type: MessageType,
  from: NodeId,
  to: NodeId,
  empty: Uint8Array,
): InboundMessage {
  const m = inbound(type, r.varintMax(u32Max, 'group'), from, to, empty);
  m.term = r.varint();
  m.commit = r.varint();
  const tag = r.varintMax(messageContextBytesMax + 1, 'context length');
  if (tag > 0) m.context = r.bytes(tag - 1);
  return m;
}

/** A decoded general message whose entries are still in the tail. */
interface PendingMessage {
  msg: InboundMessage;
  entryCount: number;
}

function parseGeneral(r: ByteReader, from: NodeId, to: NodeId, tail: Uint8Array): PendingMessage {
  const type = r.u8();
  if (type < 1 || type > messageTypeMax) throw protocolError(`unknown message type ${type}`);
  const m = inbound(
    type as MessageType,
    r.varintMax(u32Max, 'group'),
    from,
    to,
    tail.subarray(0, 0),
  );
  const bits = r.varintMax(bitsKnown, 'field bits');
  const field = (bit: number, what: string): number => {
    if ((bits & bit) === 0) return 0;
    const v = r.varint();
    if (v === 0) throw protocolError(`${what} present but zero`);
    return v;
  };
  m.term = field(bitTerm, 'term');
  m.index = field(bitIndex, 'index');
  m.commit = field(bitCommit, 'commit');
  m.logTerm = field(bitLogTerm, 'logTerm');
  const entryCount = field(bitEntries, 'entry count');
  if (entryCount > tail.length / recordHeaderBytes) throw protocolError('more entries than tail');
  m.reject = (bits & bitReject) !== 0;
  if ((bits & bitContext) !== 0) {
    m.context = r.bytes(r.varintMax(messageContextBytesMax, 'context length'));
  }
  m.rejectHint = field(bitRejectHint, 'rejectHint');
  m.logTermHint = field(bitLogTermHint, 'logTermHint');
  if ((bits & bitSnapshot) !== 0) m.snapshot = parseSnapshotMeta(r);
  // A coalescable beat outside its block would re-encode differently: not canonical.
  if (entryCount === 0 && isCoalescedBeat(m)) throw protocolError('heartbeat outside its block');
  return { msg: m, entryCount };
}

function parseRaft(r: ByteReader, tail: Uint8Array): Frame {
  const from = nodeId(r, 'from');
  const to = nodeId(r, 'to');
  const beatCount = r.varintMax(frameMessagesMax, 'heartbeat count');
  const beatRespCount = r.varintMax(frameMessagesMax, 'heartbeat response count');
  const generalCount = r.varintMax(frameMessagesMax, 'message count');
  const total = beatCount + beatRespCount + generalCount;
  if (total > frameMessagesMax) throw protocolError(`${total} messages exceed frameMessagesMax`);
  if (total === 0) throw protocolError('empty Raft frame');
  const empty = tail.subarray(0, 0);
  const messages: InboundMessage[] = [];
  for (let i = 0; i < beatCount; i++) {
    messages.push(parseBeat(r, MessageType.Heartbeat, from, to, empty));
  }
  for (let i = 0; i < beatRespCount; i++) {
    messages.push(parseBeat(r, MessageType.HeartbeatResp, from, to, empty));
  }
  const pending: PendingMessage[] = [];
  for (let i = 0; i < generalCount; i++) pending.push(parseGeneral(r, from, to, tail));
  r.expectEnd('Raft frame');
  attachEntries(pending, tail);
  for (const p of pending) messages.push(p.msg);
  return { kind: 'raft', from, to, messages };
}

function entryFromRecord(tail: Uint8Array, offset: number, group: number): Entry {
  const type = recordType(tail, offset);
  if (type !== RecordType.EntryNormal && type !== RecordType.EntryConfChange) {
    throw protocolError(`record type ${type} is not an entry`);
  }
  if (recordGroup(tail, offset) !== group) throw protocolError('entry of another group');
  const term = recordTerm(tail, offset);
  const index = recordIndex(tail, offset);
  if (!Number.isSafeInteger(term) || !Number.isSafeInteger(index)) {
    throw protocolError('entry term or index beyond 2^53');
  }
  return { term, index, type: type as EntryType, data: recordPayload(tail, offset) };
}

function attachEntries(pending: PendingMessage[], tail: Uint8Array): void {
  let total = 0;
  for (const p of pending) total += p.entryCount;
  if (total === 0) {
    if (tail.length !== 0) throw protocolError('records without entries');
    return;
  }
  const result = decodeRecords(tail, total);
  if (result.status !== 'ok' || result.count !== total || result.end !== tail.length) {
    throw protocolError(`entry records: ${result.status} ${result.reason ?? ''} at ${result.end}`);
  }
  const offsets = Array.from(result.offsets);
  let k = 0;
  for (const p of pending) {
    if (p.entryCount === 0) continue;
    const start = offsets[k]!;
    let end = start;
    for (let i = 0; i < p.entryCount; i++) {
      const offset = offsets[k++]!;
      const entry = entryFromRecord(tail, offset, p.msg.group);
      end = offset + recordBytes(tail, offset);
      // Verified above: the follower's log appends these bytes as they are.
      rememberFramedRecord(entry, p.msg.group, tail.subarray(offset, end));
      p.msg.entries.push(entry);
    }
    p.msg.entriesBytes = tail.subarray(start, end);
  }
}
