/**
 * The client protocol of `Flotilla.connect`: frames, the handshake and the request/response
 * bodies. HARD FORMAT (wire, version `clientProtocolVersion`): a client and a node must agree on
 * these bytes; change them only together with the version.
 *
 * Frame = 16-byte header + body, integers little-endian:
 *
 * | offset | size | field                                                              |
 * |-------:|-----:|--------------------------------------------------------------------|
 * |      0 |    4 | length: body bytes, at most `clientFrameBytesMax` - 16              |
 * |      4 |    4 | crc32c of bytes [0, 4) then [8, 16 + length) (chained)             |
 * |      8 |    1 | kind (ClientFrameKind)                                              |
 * |      9 |    1 | flags: 0                                                            |
 * |     10 |    2 | reserved: 0                                                         |
 * |     12 |    4 | request id: pairs a Response or Error with its Request; 0 otherwise |
 *
 * Handshake (both sides prove the cluster secret with HMAC-SHA256 over fresh nonces):
 *   client → Hello   body: u32 magic (big-endian "FLTC"), u16 version, u8 cluster id length,
 *                          cluster id (empty = accept the node's), 32-byte client nonce
 *   node   → Welcome body: u32 magic, u16 version, varint node id, u8 cluster id length,
 *                          cluster id, 32-byte node nonce, 32-byte MAC("flotilla/client/node")
 *   client → Proof   body: 32-byte MAC("flotilla/client/client")
 *   node   → Ready   body: empty
 * MAC(label) = HMAC(secret, label ‖ transcript), transcript = u16 version ‖ u32 node id ‖
 * u8 cluster id length ‖ cluster id ‖ client nonce ‖ node nonce. The node proves first, binding
 * the client's nonce; the client then proves, binding the node's fresh nonce. The labels differ
 * from each other and from the node-to-node transport's, so no proof can be reflected or
 * replayed from another context. A node that refuses sends an Error frame (AUTH_FAILED) and
 * closes. No other frame may arrive before the handshake ends.
 *
 * Batch (kind 10, after the handshake only): the requests (client → node) or the answers
 * (node → client) of one event-loop turn in one frame, checked by the frame's one CRC. The
 * header's request id field holds the item count, 2..`clientBatchItemsMax`; the body is the
 * items back to back, each: u32 request id, u8 kind (Request, Response or Error), u32 body
 * length, body. An item means exactly what a frame of its kind, id and body means.
 *
 * After the handshake, bodies are MessagePack (`wirePackr`):
 *   Request  (client → node): `[op, ...args]` (RequestOp below)
 *   Response (node → client): the op's result
 *   Error    (node → client): `{ code, message, details }` (details: leaderHint, outcome,
 *                              reason, group; any may be absent)
 *   Push     (node → client, request id 0): `[1, [shard, ...]]`: those shards have new changes
 *   Ping     (either way, request id 0): empty; a node answers a client's Ping with a Ping
 *
 * Requests and their results:
 *   1 shardMap      `[1]` → `[epoch, [[id, hashLow, hashHigh, [replica...], leader]...],
 *                            [[nodeId, "host:port"]...]]`
 *   2 propose       `[2, shard, commandBytes]` → the CommandResult (commandBytes is exactly what
 *                   encodeCommand wrote; the node proposes it unchanged)
 *   3 read          `[3, shard, key, consistency]` → `null` | `[value, version]`
 *   4 scanPage      `[4, shard, start | null, end | null, limit, reverse, consistency]`
 *                   → `[[[key, value, version]...], more]`
 *   5 changes       `[5, shard, afterIndex, limit]`
 *                   → `[[[index, key, kind, value | null, version]...], more]` (kind 0 put,
 *                   1 delete)
 *   6 appliedIndex  `[6, shard]` → index
 *   7 watch         `[7]` → true; the node then pushes changed shards
 *   8 unwatch       `[8]` → true
 *   9 status        `[9]` → an object of facts about the node
 * consistency: 0 linearizable, 1 lease, 2 stale. `more` = true when the node cut the response
 * at `clientResponseBytesTarget` before `limit` (always at a log entry boundary for changes):
 * the client asks again from where it stopped.
 *
 * Decoding is defensive: every length is bounded before anything is allocated, every field is
 * type-checked, and anything malformed is a PROTOCOL FlotillaError that closes the connection.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { assert } from '../../engine/assert.js';
import {
  ErrorCode,
  type ErrorDetails,
  FlotillaError,
  isFlotillaError,
} from '../../engine/errors.js';
import {
  clientBatchItemsMax,
  clientMagic,
  clientProtocolVersion,
  clusterIdBytesMax,
  keyBytesMax,
} from '../../engine/limits.js';
import { binBytes, DirectReader, putBin, putUint, uintBytes } from '../../engine/msgpack-bin.js';
import type { Change } from '../../engine/state/change-feed.js';
import {
  type CommandResult,
  commandFormatVersion,
  decodePutResult,
  Opcode,
} from '../../engine/state/commands.js';
import type { ScanEntry, StoredValue } from '../../engine/state/kv-state.js';
import { packr, type Value } from '../../engine/state/value-codec.js';
import { frameHeaderBytes } from '../../engine/transport/codec.js';
import { macMatches } from '../../engine/transport/handshake.js';
import {
  ByteReader,
  ByteWriter,
  getU32,
  protocolError,
  putU32,
  varintBytes,
} from '../../engine/transport/wire.js';
import { crc32c } from '../../wasm/index.js';
import type { NodeAddress, ShardInfo, ShardMap } from '../node-service.js';
import type { Consistency } from '../types.js';

export { frameHeaderBytes, macMatches };

/** Frame kinds. HARD (wire): never renumber, only add. */
export const ClientFrameKind = {
  Hello: 1,
  Welcome: 2,
  Proof: 3,
  Ready: 4,
  Request: 5,
  Response: 6,
  Error: 7,
  Push: 8,
  Ping: 9,
  Batch: 10,
} as const;
/** See {@link ClientFrameKind}. */
export type ClientFrameKind = (typeof ClientFrameKind)[keyof typeof ClientFrameKind];

const frameKindMax = ClientFrameKind.Batch;

/** Bytes of a Batch item's header: u32 request id, u8 kind, u32 body length. HARD (wire). */
export const batchItemHeaderBytes = 9;

/** Request operations. HARD (wire): never renumber, only add. */
export const RequestOp = {
  ShardMap: 1,
  Propose: 2,
  Read: 3,
  ScanPage: 4,
  Changes: 5,
  AppliedIndex: 6,
  Watch: 7,
  Unwatch: 8,
  Status: 9,
} as const;
/** See {@link RequestOp}. */
export type RequestOp = (typeof RequestOp)[keyof typeof RequestOp];

/** Push types. HARD (wire). */
export const PushType = { ShardsChanged: 1 } as const;

/** Consistency levels on the wire, by code. HARD (wire). */
export const consistencyCodes: readonly Consistency[] = ['linearizable', 'lease', 'stale'];

/** Bytes of a handshake nonce. HARD (wire). */
export const clientNonceBytes = 32;
/** Bytes of a handshake MAC (HMAC-SHA256). HARD (wire). */
export const clientMacBytes = 32;

const u32Max = 0xffffffff;

/**
 * The MessagePack codec of request and response bodies: the state machine's value codec itself,
 * so every storable value (bigints, Dates, bytes) crosses the wire and reads back as the embedded
 * store returns it; its `copyBuffers` keeps decoded bytes from pinning the socket's buffers.
 */
export const wirePackr = packr;

// ---- Frames ------------------------------------------------------------------------------------

/** A decoded frame; `body` is a view into the received bytes. */
export interface ClientFrame {
  kind: ClientFrameKind;
  requestId: number;
  body: Uint8Array;
}

function frameCrc(frame: Uint8Array): number {
  return crc32c(frame.subarray(8), crc32c(frame.subarray(0, 4)));
}

/** Encodes one frame around `body`. */
export function encodeClientFrame(
  kind: ClientFrameKind,
  requestId: number,
  body: Uint8Array,
): Uint8Array {
  assert(Number.isInteger(requestId) && requestId >= 0 && requestId <= u32Max, 'u32 request id');
  const frame = new Uint8Array(frameHeaderBytes + body.length);
  putU32(frame, 0, body.length);
  frame[8] = kind;
  putU32(frame, 12, requestId);
  frame.set(body, frameHeaderBytes);
  putU32(frame, 4, frameCrc(frame));
  return frame;
}

/** Decodes a whole frame (as FrameReader splits them); throws PROTOCOL when malformed. */
export function decodeClientFrame(frame: Uint8Array): ClientFrame {
  if (frame.length < frameHeaderBytes) throw protocolError('frame shorter than its header');
  if (getU32(frame, 0) !== frame.length - frameHeaderBytes) {
    throw protocolError('frame length disagrees with its bytes');
  }
  if (getU32(frame, 4) !== frameCrc(frame)) throw protocolError('frame checksum mismatch');
  const kind = frame[8]!;
  if (kind < 1 || kind > frameKindMax) throw protocolError(`unknown frame kind ${kind}`);
  if (frame[9] !== 0 || frame[10] !== 0 || frame[11] !== 0) {
    throw protocolError('frame flags or reserved bytes are not zero');
  }
  return {
    kind: kind as ClientFrameKind,
    requestId: getU32(frame, 12),
    body: frame.subarray(frameHeaderBytes),
  };
}

/** Whether a frame of `kind` may travel as an item of a Batch frame. */
export function isBatchable(kind: ClientFrameKind): boolean {
  return (
    kind === ClientFrameKind.Request ||
    kind === ClientFrameKind.Response ||
    kind === ClientFrameKind.Error
  );
}

/**
 * Encodes items `from` .. `to` - 1 of the parallel lists as one Batch frame: one allocation
 * and one CRC for all of them.
 */
export function encodeBatchFrame(
  kinds: readonly ClientFrameKind[],
  ids: readonly number[],
  bodies: readonly Uint8Array[],
  from: number,
  to: number,
): Uint8Array {
  const count = to - from;
  assert(count >= 2 && count <= clientBatchItemsMax, 'a batch holds 2..clientBatchItemsMax');
  let length = 0;
  for (let i = from; i < to; i++) length += batchItemHeaderBytes + bodies[i]!.length;
  const frame = Buffer.allocUnsafe(frameHeaderBytes + length);
  putU32(frame, 0, length);
  putU32(frame, 8, ClientFrameKind.Batch);
  putU32(frame, 12, count);
  let at = frameHeaderBytes;
  for (let i = from; i < to; i++) {
    const kind = kinds[i]!;
    const body = bodies[i]!;
    assert(isBatchable(kind), 'only requests and answers travel in a batch');
    putU32(frame, at, ids[i]!);
    frame[at + 4] = kind;
    putU32(frame, at + 5, body.length);
    frame.set(body, at + batchItemHeaderBytes);
    at += batchItemHeaderBytes + body.length;
  }
  putU32(frame, 4, frameCrc(frame));
  return frame;
}

/**
 * The items of a decoded Batch frame, each as the frame it stands for (bodies are views into
 * the frame); throws PROTOCOL when the count, a kind or a length is out of bounds.
 */
export function decodeBatchItems(batch: ClientFrame): ClientFrame[] {
  const count = batch.requestId;
  if (count < 2 || count > clientBatchItemsMax) {
    throw protocolError(`a batch of ${count} items (2..${clientBatchItemsMax})`);
  }
  const body = batch.body;
  const items: ClientFrame[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (body.length - at < batchItemHeaderBytes) throw protocolError('batch item header cut');
    const kind = body[at + 4]! as ClientFrameKind;
    if (!isBatchable(kind)) throw protocolError(`frame kind ${kind} in a batch`);
    const length = getU32(body, at + 5);
    const start = at + batchItemHeaderBytes;
    if (length > body.length - start) throw protocolError('batch item longer than its frame');
    items.push({ kind, requestId: getU32(body, at), body: body.subarray(start, start + length) });
    at = start + length;
  }
  if (at !== body.length) throw protocolError('bytes after the last batch item');
  return items;
}

/** Encodes a frame whose body is `value` in MessagePack. */
export function encodePackedFrame(
  kind: ClientFrameKind,
  requestId: number,
  value: unknown,
): Uint8Array {
  return encodeClientFrame(kind, requestId, wirePackr.pack(value));
}

/** Decodes a MessagePack body; anything that does not parse is a PROTOCOL error. */
export function unpackBody(body: Uint8Array): unknown {
  try {
    return wirePackr.unpack(body);
  } catch (err) {
    // msgpackr throws plain errors (and RangeError on absurd nesting): all mean a bad peer.
    throw new FlotillaError(ErrorCode.PROTOCOL, 'malformed frame: body is not MessagePack', {
      cause: err,
    });
  }
}

/** MessagePack bytes of an array whose elements are already encoded (`items`). */
export function packEncodedArray(items: readonly Uint8Array[]): Uint8Array {
  const n = items.length;
  const header = n < 16 ? 1 : n <= 0xffff ? 3 : 5;
  let total = header;
  for (const item of items) total += item.length;
  const out = new Uint8Array(total);
  if (n < 16) out[0] = 0x90 | n;
  else if (n <= 0xffff) {
    out[0] = 0xdc;
    out[1] = n >>> 8;
    out[2] = n & 0xff;
  } else {
    out[0] = 0xdd;
    new DataView(out.buffer).setUint32(1, n);
  }
  let at = header;
  for (const item of items) {
    out.set(item, at);
    at += item.length;
  }
  return out;
}

/** MessagePack bytes of `[items, more]` where `items` is an array of encoded elements. */
export function packPage(items: readonly Uint8Array[], more: boolean): Uint8Array {
  const array = packEncodedArray(items);
  const out = new Uint8Array(2 + array.length);
  out[0] = 0x92;
  out.set(array, 1);
  out[out.length - 1] = more ? 0xc3 : 0xc2;
  return out;
}

// ---- Handshake ---------------------------------------------------------------------------------

/** The client's opening. */
export interface ClientHello {
  version: number;
  /** Empty when the client accepts whatever cluster the secret admits it to. */
  clusterId: Uint8Array;
  nonce: Uint8Array;
}

/** The node's answer, proving the secret. */
export interface ClientWelcome {
  version: number;
  nodeId: number;
  clusterId: Uint8Array;
  nonce: Uint8Array;
  mac: Uint8Array;
}

/** A fresh random handshake nonce (from the OS). */
export function newClientNonce(): Uint8Array {
  return new Uint8Array(randomBytes(clientNonceBytes));
}

/** Encodes the Hello frame. */
export function encodeClientHello(h: ClientHello): Uint8Array {
  assert(h.clusterId.length <= clusterIdBytesMax, 'cluster id fits clusterIdBytesMax');
  assert(h.nonce.length === clientNonceBytes, 'nonce size');
  const w = new ByteWriter(4 + 2 + 1 + h.clusterId.length + clientNonceBytes);
  w.u32be(clientMagic);
  w.u16(h.version);
  w.u8(h.clusterId.length);
  w.bytes(h.clusterId);
  w.bytes(h.nonce);
  return encodeClientFrame(ClientFrameKind.Hello, 0, w.finish());
}

/** Encodes the Welcome frame. */
export function encodeClientWelcome(m: ClientWelcome): Uint8Array {
  assert(m.clusterId.length <= clusterIdBytesMax, 'cluster id fits clusterIdBytesMax');
  assert(m.nonce.length === clientNonceBytes, 'nonce size');
  assert(m.mac.length === clientMacBytes, 'mac size');
  const w = new ByteWriter(
    4 + 2 + varintBytes(m.nodeId) + 1 + m.clusterId.length + clientNonceBytes + clientMacBytes,
  );
  w.u32be(clientMagic);
  w.u16(m.version);
  w.varint(m.nodeId);
  w.u8(m.clusterId.length);
  w.bytes(m.clusterId);
  w.bytes(m.nonce);
  w.bytes(m.mac);
  return encodeClientFrame(ClientFrameKind.Welcome, 0, w.finish());
}

function magicAndVersion(r: ByteReader): number {
  if (r.u32be() !== clientMagic) throw protocolError('bad magic: not a Flotilla client peer');
  const version = r.u16();
  if (version !== clientProtocolVersion) {
    throw protocolError(
      `client protocol version ${version}, this side speaks ${clientProtocolVersion}`,
    );
  }
  return version;
}

function clusterIdField(r: ByteReader): Uint8Array {
  const length = r.u8();
  if (length > clusterIdBytesMax) throw protocolError('cluster id too long');
  return r.bytes(length);
}

/** Decodes a Hello body; throws PROTOCOL. */
export function decodeClientHello(body: Uint8Array): ClientHello {
  const r = new ByteReader(body, 0, body.length);
  const version = magicAndVersion(r);
  const clusterId = clusterIdField(r);
  const nonce = r.bytes(clientNonceBytes);
  r.expectEnd('hello');
  return { version, clusterId, nonce };
}

/** Decodes a Welcome body; throws PROTOCOL. */
export function decodeClientWelcome(body: Uint8Array): ClientWelcome {
  const r = new ByteReader(body, 0, body.length);
  const version = magicAndVersion(r);
  const nodeId = r.varintMax(u32Max, 'node id');
  if (nodeId === 0) throw protocolError('node id is 0');
  const clusterId = clusterIdField(r);
  const nonce = r.bytes(clientNonceBytes);
  const mac = r.bytes(clientMacBytes);
  r.expectEnd('welcome');
  return { version, nodeId, clusterId, nonce, mac };
}

/** Decodes a Proof body; throws PROTOCOL. */
export function decodeClientProof(body: Uint8Array): Uint8Array {
  if (body.length !== clientMacBytes) throw protocolError('proof of the wrong size');
  return body;
}

/** What both MACs of one client handshake bind. */
export interface ClientTranscript {
  nodeId: number;
  clusterId: Uint8Array;
  clientNonce: Uint8Array;
  nodeNonce: Uint8Array;
}

/** The MAC that `role` sends. */
export function clientHandshakeMac(
  secret: Uint8Array,
  role: 'node' | 'client',
  t: ClientTranscript,
): Uint8Array {
  const fixed = Buffer.alloc(2 + 4 + 1);
  fixed.writeUInt16LE(clientProtocolVersion, 0);
  fixed.writeUInt32LE(t.nodeId, 2);
  fixed.writeUInt8(t.clusterId.length, 6);
  const hmac = createHmac('sha256', secret);
  hmac.update(`flotilla/client/${role}`);
  hmac.update(fixed);
  hmac.update(t.clusterId);
  hmac.update(t.clientNonce);
  hmac.update(t.nodeNonce);
  return new Uint8Array(hmac.digest());
}

// ---- Errors ------------------------------------------------------------------------------------

const knownCodes = new Set<string>(Object.values(ErrorCode));

/** The Error frame answering `requestId` with `err`. */
export function encodeErrorFrame(requestId: number, err: FlotillaError): Uint8Array {
  return encodeClientFrame(ClientFrameKind.Error, requestId, encodeErrorBody(err));
}

/** The body of an Error frame (or Batch item) carrying `err`. */
export function encodeErrorBody(err: FlotillaError): Uint8Array {
  const details: Record<string, unknown> = {};
  const d = err.details;
  if (typeof d.leaderHint === 'number') details.leaderHint = d.leaderHint;
  if (d.outcome !== undefined) details.outcome = d.outcome;
  if (typeof d.reason === 'string') details.reason = d.reason;
  if (typeof d.group === 'number') details.group = d.group;
  return wirePackr.pack({ code: err.code, message: err.message, details });
}

/** The FlotillaError an Error frame carries; throws PROTOCOL when it is malformed. */
export function decodeErrorBody(body: Uint8Array): FlotillaError {
  const value = unpackBody(body) as Record<string, unknown> | null;
  if (value === null || typeof value !== 'object') throw protocolError('error body not a map');
  const { code, message } = value;
  const raw = value.details;
  if (typeof code !== 'string' || !knownCodes.has(code)) {
    throw protocolError(`unknown error code ${JSON.stringify(String(code)).slice(0, 40)}`);
  }
  if (typeof message !== 'string') throw protocolError('error message not a string');
  const details: ErrorDetails = {};
  if (raw !== null && typeof raw === 'object') {
    const r = raw as Record<string, unknown>;
    if (isU32(r.leaderHint)) details.leaderHint = r.leaderHint;
    if (r.outcome === 'unknown' || r.outcome === 'not-applied') details.outcome = r.outcome;
    if (typeof r.reason === 'string') details.reason = r.reason;
    if (isU32(r.group)) details.group = r.group;
  }
  return new FlotillaError(code as ErrorCode, message, details);
}

/** Turns anything thrown while serving a request into the FlotillaError sent back. */
export function asWireError(err: unknown): FlotillaError {
  if (isFlotillaError(err)) return err;
  return new FlotillaError('UNAVAILABLE', `the node failed to serve the request: ${String(err)}`);
}

// ---- Field checks (shared by both ends) --------------------------------------------------------

/** Whether `v` is an integer in [0, 2^32). */
export function isU32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= u32Max;
}

/** Whether `v` is a safe integer >= 0. */
export function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** A shard id field: a u32 > 0. */
export function shardField(v: unknown): number {
  if (!isU32(v) || v === 0) throw protocolError('shard id is not a u32 > 0');
  return v;
}

/** A key field: 1..keyBytesMax bytes. */
export function keyField(v: unknown, what = 'key'): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length === 0 || v.length > keyBytesMax) {
    throw protocolError(`${what} is not 1..${keyBytesMax} bytes`);
  }
  return v;
}

/** A consistency code field. */
export function consistencyField(v: unknown): Consistency {
  const c = typeof v === 'number' ? consistencyCodes[v] : undefined;
  if (c === undefined) throw protocolError('unknown consistency code');
  return c;
}

/** The wire code of a consistency level. */
export function consistencyCode(c: Consistency): number {
  const code = consistencyCodes.indexOf(c);
  assert(code >= 0, 'a known consistency level');
  return code;
}

// ---- Shard map ---------------------------------------------------------------------------------

/** The wire form of a shard map. */
export function shardMapToWire(map: ShardMap): unknown[] {
  return [
    map.epoch,
    map.shards.map((s) => [s.id, s.hashLow, s.hashHigh, s.replicas, s.leader]),
    map.nodes.map((n) => [n.id, n.client]),
  ];
}

/**
 * A shard map from its wire form; throws PROTOCOL unless it is well formed: ranges ascending
 * and tiling [0, 2^32), ids distinct, replicas and leaders known nodes (a leader may be 0).
 */
export function shardMapFromWire(value: unknown): ShardMap {
  if (!Array.isArray(value) || value.length !== 3) throw protocolError('shard map shape');
  const [epoch, rawShards, rawNodes] = value as [unknown, unknown, unknown];
  if (!isIndex(epoch)) throw protocolError('shard map epoch');
  if (!Array.isArray(rawNodes) || !Array.isArray(rawShards) || rawShards.length === 0) {
    throw protocolError('shard map lists');
  }
  const nodes: NodeAddress[] = rawNodes.map((n: unknown) => {
    if (!Array.isArray(n) || !isU32(n[0]) || n[0] === 0 || typeof n[1] !== 'string') {
      throw protocolError('shard map node');
    }
    return { id: n[0], client: n[1] };
  });
  const ids = new Set<number>();
  let next = 0;
  const shards: ShardInfo[] = rawShards.map((s: unknown) => {
    if (!Array.isArray(s) || s.length !== 5) throw protocolError('shard map entry');
    const [id, hashLow, hashHigh, replicas, leader] = s as unknown[];
    const info = {
      id: shardField(id),
      hashLow: hashLow as number,
      hashHigh: hashHigh as number,
      replicas: replicas as number[],
      leader: leader as number,
    };
    if (ids.has(info.id)) throw protocolError(`shard ${info.id} appears twice`);
    ids.add(info.id);
    if (info.hashLow !== next || !isIndex(hashHigh) || info.hashHigh <= info.hashLow) {
      throw protocolError('shard map ranges do not tile the hash space');
    }
    next = info.hashHigh;
    if (!Array.isArray(replicas) || replicas.length === 0 || !replicas.every(isU32)) {
      throw protocolError('shard map replicas');
    }
    if (!isU32(leader)) throw protocolError('shard map leader');
    return info;
  });
  if (next !== 2 ** 32) throw protocolError('shard map ranges do not cover the hash space');
  return { epoch, shards, nodes };
}

// ---- Requests ----------------------------------------------------------------------------------

/** A scan page's bounds: [start, end), either side open. */
export interface ScanBounds {
  start?: Uint8Array;
  end?: Uint8Array;
}

/** A decoded request. */
export type ClientRequest =
  | { op: typeof RequestOp.ShardMap }
  | { op: typeof RequestOp.Propose; shard: number; command: Uint8Array }
  | { op: typeof RequestOp.Read; shard: number; key: Uint8Array; consistency: Consistency }
  | {
      op: typeof RequestOp.ScanPage;
      shard: number;
      bounds: ScanBounds;
      limit: number;
      reverse: boolean;
      consistency: Consistency;
    }
  | { op: typeof RequestOp.Changes; shard: number; afterIndex: number; limit: number }
  | { op: typeof RequestOp.AppliedIndex; shard: number }
  | { op: typeof RequestOp.Watch }
  | { op: typeof RequestOp.Unwatch }
  | { op: typeof RequestOp.Status };

/** The wire array of a request (see the module comment). */
export function requestArray(req: ClientRequest): unknown[] {
  switch (req.op) {
    case RequestOp.Propose:
      return [req.op, req.shard, req.command];
    case RequestOp.Read:
      return [req.op, req.shard, req.key, consistencyCode(req.consistency)];
    case RequestOp.ScanPage: {
      const { start, end } = req.bounds;
      const c = consistencyCode(req.consistency);
      return [req.op, req.shard, start ?? null, end ?? null, req.limit, req.reverse, c];
    }
    case RequestOp.Changes:
      return [req.op, req.shard, req.afterIndex, req.limit];
    case RequestOp.AppliedIndex:
      return [req.op, req.shard];
    default:
      return [req.op];
  }
}

/** The body of a Request frame (or Batch item) carrying `req`. */
export function encodeRequestBody(req: ClientRequest): Uint8Array {
  if (req.op === RequestOp.Read) {
    return encodeReadRequestBody(req.shard, req.key, consistencyCode(req.consistency));
  }
  if (req.op === RequestOp.Propose) return encodeProposeRequestBody(req.shard, req.command);
  return wirePackr.pack(requestArray(req));
}

/** The Request frame of `req`. */
export function encodeRequestFrame(requestId: number, req: ClientRequest): Uint8Array {
  return encodeClientFrame(ClientFrameKind.Request, requestId, encodeRequestBody(req));
}

function boundField(v: unknown): Uint8Array | undefined {
  if (v === null) return undefined;
  // A page continues after its last key with that key ‖ 0x00: one byte beyond a key.
  if (!(v instanceof Uint8Array) || v.length > keyBytesMax + 1) {
    throw protocolError(`scan bound is not 0..${keyBytesMax + 1} bytes`);
  }
  return v;
}

function limitField(v: unknown, max: number): number {
  if (!isIndex(v) || v < 1 || v > max) throw protocolError(`limit is not 1..${max}`);
  return v;
}

/** Decodes a Request body; throws PROTOCOL. `limits` bounds page sizes. */
export function decodeRequest(
  body: Uint8Array,
  limits: { scanEntriesMax: number; changesMax: number },
): ClientRequest {
  const fast = fastReadRequest(body) ?? fastProposeRequest(body);
  if (fast !== null) return fast;
  const a = unpackBody(body);
  if (!Array.isArray(a) || a.length === 0) throw protocolError('request is not an array');
  const arity = (n: number) => {
    if (a.length !== n) throw protocolError(`request ${String(a[0])} needs ${n - 1} fields`);
  };
  switch (a[0]) {
    case RequestOp.ShardMap:
    case RequestOp.Watch:
    case RequestOp.Unwatch:
    case RequestOp.Status:
      arity(1);
      return { op: a[0] };
    case RequestOp.Propose:
      arity(3);
      return { op: a[0], shard: shardField(a[1]), command: checkClientCommand(a[2]) };
    case RequestOp.Read:
      arity(4);
      return {
        op: a[0],
        shard: shardField(a[1]),
        key: keyField(a[2]),
        consistency: consistencyField(a[3]),
      };
    case RequestOp.ScanPage: {
      arity(7);
      if (typeof a[5] !== 'boolean') throw protocolError('scan reverse is not a boolean');
      const bounds: ScanBounds = {};
      const start = boundField(a[2]);
      const end = boundField(a[3]);
      if (start !== undefined) bounds.start = start;
      if (end !== undefined) bounds.end = end;
      return {
        op: a[0],
        shard: shardField(a[1]),
        bounds,
        limit: limitField(a[4], limits.scanEntriesMax),
        reverse: a[5],
        consistency: consistencyField(a[6]),
      };
    }
    case RequestOp.Changes:
      arity(4);
      if (!isIndex(a[2])) throw protocolError('changes afterIndex is not an index');
      return {
        op: a[0],
        shard: shardField(a[1]),
        afterIndex: a[2],
        limit: limitField(a[3], limits.changesMax),
      };
    case RequestOp.AppliedIndex:
      arity(2);
      return { op: a[0], shard: shardField(a[1]) };
    default:
      throw protocolError(`unknown request op ${JSON.stringify(String(a[0])).slice(0, 20)}`);
  }
}

/** Command opcodes a client may propose: put, delete, cas, incr, batch, exec (commands.ts). */
const clientOpcodeMin = Opcode.Put;
const clientOpcodeMax = Opcode.Exec;

/**
 * Checks that `v` is a command a client may propose, by its first bytes: a MessagePack fixarray
 * of at least three elements, `commandFormatVersion`, then a client opcode. The state machine
 * validates the rest while applying; this keeps clients from proposing a shard's range change.
 */
export function checkClientCommand(v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length < 4) throw protocolError('command is not bytes');
  const header = v[0]!;
  if (header < 0x93 || header > 0x9f) throw protocolError('command is not a command array');
  if (v[1] !== commandFormatVersion) throw protocolError('command format version');
  const opcode = v[2]!;
  if (opcode < clientOpcodeMin || opcode > clientOpcodeMax) {
    throw new FlotillaError('INVALID_ARGUMENT', `clients may not propose command opcode ${opcode}`);
  }
  return v;
}

// ---- Responses ---------------------------------------------------------------------------------

// ---- Reads, the hot path: the same MessagePack bytes, without the generic codec ---------------
//
// A read request and its answer are the bulk of a read-heavy load. These functions write and
// parse exactly the bytes `wirePackr` writes for them (a property test holds them to it), for
// the common shapes: a shard id and a version below 2^32, keys and byte values below 64 KiB.
// Anything else goes through the generic codec.

const u16Max = 0xffff;

/** The body of a Read request: `wirePackr.pack([3, shard, key, code])`, built directly. */
export function encodeReadRequestBody(shard: number, key: Uint8Array, code: number): Uint8Array {
  if (shard > u32Max || key.length > u16Max) {
    return wirePackr.pack([RequestOp.Read, shard, key, code]);
  }
  const out = Buffer.allocUnsafe(3 + uintBytes(shard) + binBytes(key.length));
  out[0] = 0x94;
  out[1] = RequestOp.Read;
  const at = putBin(out, putUint(out, 2, shard), key);
  out[at] = code;
  return out;
}

/**
 * A Read request parsed without the generic codec, or null when the body is not in the common
 * shape (decodeRequest then parses it the general way). The key is a view into `body`: the
 * received chunk it points into is not reused by the socket.
 */
function fastReadRequest(body: Uint8Array): ClientRequest | null {
  if (body[0] !== 0x94 || body[1] !== RequestOp.Read) return null;
  const r = new DirectReader(body, 2);
  const shard = r.uint();
  const key = shard < 0 ? undefined : r.bin();
  if (key === undefined || r.at !== body.length - 1) return null;
  const consistency = consistencyCodes[body[r.at]!];
  if (consistency === undefined) return null;
  return { op: RequestOp.Read, shard: shardField(shard), key: keyField(key), consistency };
}

/** The body of a Propose request: `wirePackr.pack([2, shard, command])`, built directly. */
export function encodeProposeRequestBody(shard: number, command: Uint8Array): Uint8Array {
  if (shard > u32Max) return wirePackr.pack([RequestOp.Propose, shard, command]);
  const out = Buffer.allocUnsafe(2 + uintBytes(shard) + binBytes(command.length));
  out[0] = 0x93;
  out[1] = RequestOp.Propose;
  putBin(out, putUint(out, 2, shard), command);
  return out;
}

/**
 * A Propose request parsed without the generic codec, or null when the body is not in the
 * common shape. The command is copied out of the body: it lives on in the Raft log's memory,
 * where a view would pin the socket's whole received chunk.
 */
function fastProposeRequest(body: Uint8Array): ClientRequest | null {
  if (body[0] !== 0x93 || body[1] !== RequestOp.Propose) return null;
  const r = new DirectReader(body, 2);
  const shard = r.uint();
  const command = shard < 0 ? undefined : r.bin();
  if (command === undefined || !r.done) return null;
  return {
    op: RequestOp.Propose,
    shard: shardField(shard),
    command: checkClientCommand(Buffer.from(command)),
  };
}

/** The body answering a read: `wirePackr.pack(readResultToWire(stored))`, built directly. */
export function readResultBody(stored: StoredValue | undefined): Uint8Array {
  if (stored === undefined) return Uint8Array.of(0xc0);
  const { value, version } = stored;
  if (!(value instanceof Uint8Array) || value.length > u16Max || version > u32Max) {
    return wirePackr.pack(readResultToWire(stored));
  }
  const out = Buffer.allocUnsafe(1 + binBytes(value.length) + uintBytes(version));
  out[0] = 0x92;
  putUint(out, putBin(out, 1, value), version);
  return out;
}

/**
 * A read's result from its answer's body; throws PROTOCOL. Byte values are copied out of the
 * body, so that they do not pin the socket's buffers.
 */
export function readResultFromBody(body: Uint8Array): StoredValue | undefined {
  if (body.length === 1 && body[0] === 0xc0) return undefined;
  if (body[0] === 0x92) {
    const r = new DirectReader(body, 1);
    const value = r.bin();
    const version = value === undefined ? -1 : r.uint();
    if (value !== undefined && version >= 0 && r.done) {
      return { value: Buffer.from(value), version };
    }
  }
  return readResultFromWire(unpackBody(body));
}

/** The wire form of a read's result. */
export function readResultToWire(stored: StoredValue | undefined): unknown {
  return stored === undefined ? null : [stored.value, stored.version];
}

/** A read's result from its wire form; throws PROTOCOL. */
export function readResultFromWire(value: unknown): StoredValue | undefined {
  if (value === null) return undefined;
  if (!Array.isArray(value) || value.length !== 2 || !isIndex(value[1])) {
    throw protocolError('read result shape');
  }
  return { value: value[0] as Value, version: value[1] };
}

/**
 * The body of a page response: each item packed on its own, kept while the total stays within
 * `targetBytes` (the first item always), cut only where `canCut(i)` allows before item i.
 */
function pageBody<T>(
  items: readonly T[],
  toWire: (item: T) => unknown[],
  targetBytes: number,
  canCut: (i: number) => boolean,
): Uint8Array {
  const packed: Uint8Array[] = [];
  let bytes = 0;
  let cut = items.length;
  for (let i = 0; i < items.length; i++) {
    const one = wirePackr.pack(toWire(items[i]!));
    if (i > 0 && bytes + one.length > targetBytes && canCut(i)) {
      cut = i;
      break;
    }
    packed.push(one);
    bytes += one.length;
  }
  return packPage(packed.slice(0, cut), cut < items.length);
}

/** The body answering a scan page, cut at `targetBytes`. */
export function scanPageBody(entries: readonly ScanEntry[], targetBytes: number): Uint8Array {
  return pageBody(
    entries,
    (e) => [e.key, e.value, e.version],
    targetBytes,
    () => true,
  );
}

/** The body answering a changes request, cut at `targetBytes` between log entries only. */
export function changesBody(changes: readonly Change[], targetBytes: number): Uint8Array {
  return pageBody(
    changes,
    (c) => [c.index, c.key, c.type === 'put' ? 0 : 1, c.type === 'put' ? c.value : null, c.version],
    targetBytes,
    (i) => changes[i]!.index !== changes[i - 1]!.index,
  );
}

function pageFromWire(value: unknown): { items: unknown[]; more: boolean } {
  if (!Array.isArray(value) || value.length !== 2 || !Array.isArray(value[0])) {
    throw protocolError('page shape');
  }
  if (typeof value[1] !== 'boolean') throw protocolError('page more flag');
  return { items: value[0], more: value[1] };
}

/** A scan page from its wire form; throws PROTOCOL. */
export function scanPageFromWire(value: unknown): { entries: ScanEntry[]; more: boolean } {
  const { items, more } = pageFromWire(value);
  const entries = items.map((item): ScanEntry => {
    if (!Array.isArray(item) || item.length !== 3 || !isIndex(item[2])) {
      throw protocolError('scan entry shape');
    }
    return { key: Buffer.from(keyField(item[0])), value: item[1] as Value, version: item[2] };
  });
  if (more && entries.length === 0) throw protocolError('an empty page that has more');
  return { entries, more };
}

/** A page of changes of `shard` from its wire form; throws PROTOCOL. */
export function changesFromWire(
  value: unknown,
  shard: number,
): { changes: Change[]; more: boolean } {
  const { items, more } = pageFromWire(value);
  const changes = items.map((item): Change => {
    if (!Array.isArray(item) || item.length !== 5 || !isIndex(item[0]) || !isIndex(item[4])) {
      throw protocolError('change shape');
    }
    const key = Buffer.from(keyField(item[1]));
    if (item[2] === 1) return { shard, index: item[0], key, type: 'delete', version: item[4] };
    if (item[2] !== 0) throw protocolError('change kind');
    return { shard, index: item[0], key, type: 'put', value: item[3] as Value, version: item[4] };
  });
  if (more && changes.length === 0) throw protocolError('an empty page that has more');
  return { changes, more };
}

const resultTypes = new Set(['put', 'delete', 'cas', 'incr', 'batch', 'exec']);

/**
 * A command result from its answer's body (a put's read directly, anything else through the
 * generic codec); throws PROTOCOL unless it has the type `expected`.
 */
export function commandResultFromBody(body: Uint8Array, expected: string): CommandResult {
  const put = expected === 'put' ? decodePutResult(body) : undefined;
  return put ?? commandResultFromWire(unpackBody(body), expected);
}

/**
 * A command result from its wire form; throws PROTOCOL unless it has the type `expected` (the
 * command's own: a node never answers a put with anything but a put result).
 */
export function commandResultFromWire(value: unknown, expected: string): CommandResult {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw protocolError('command result is not a map');
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string' || !resultTypes.has(type) || type !== expected) {
    throw protocolError(`a ${expected} command answered with a ${String(type)} result`);
  }
  if (type === 'batch') {
    const b = value as { ok?: unknown; results?: unknown };
    if (typeof b.ok !== 'boolean' || (b.ok && !Array.isArray(b.results))) {
      throw protocolError('batch result shape');
    }
  }
  return value as CommandResult;
}
