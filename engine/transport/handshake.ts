/**
 * The connection handshake: both ends prove knowledge of the cluster secret with an HMAC over
 * fresh random nonces, so neither a stranger nor a replayed transcript gets in.
 *
 *   dialer   → Hello   { magic, version, lane, dialer, acceptor, cluster id, dialer nonce }
 *   acceptor → Welcome { magic, version, acceptor, dialer, acceptor nonce,
 *                        HMAC(secret, "flotilla/accept" ‖ transcript) }
 *   dialer   → Proof   { HMAC(secret, "flotilla/dial" ‖ transcript) }
 *
 * transcript = u16 version ‖ u8 lane ‖ u8 cluster id length ‖ u32 dialer ‖ u32 acceptor ‖
 * cluster id ‖ dialer nonce ‖ acceptor nonce (integers little-endian). The two labels differ
 * so that one side's proof can never be reflected back as the other's. The acceptor proves
 * first, binding the dialer's nonce; the dialer then proves, binding the acceptor's fresh nonce,
 * so a recorded Proof is useless. MACs are compared with timingSafeEqual.
 *
 * HARD FORMAT (wire). Hello body: u32 magic (big-endian "FLTR"), u16 version, u8 lane,
 * varint dialer, varint acceptor, u8 cluster id length, cluster id bytes, 32-byte nonce.
 * Welcome body: u32 magic, u16 version, varint acceptor, varint dialer, 32-byte nonce,
 * 32-byte MAC. Proof body: 32-byte MAC. Each travels in a frame of its kind (codec.ts).
 *
 * The HMAC keeps out nodes of other clusters and anyone without the secret; it does not protect
 * the frames that follow against an on-path attacker. That is what the TLS option is for.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { assert } from '../assert.js';
import { ErrorCode, type FlotillaError, isFlotillaError } from '../errors.js';
import { clusterIdBytesMax, transportMagic, transportProtocolVersion } from '../limits.js';
import type { NodeId } from '../raft/types.js';
import { encodeHandshakeFrame, FrameKind } from './codec.js';
import { ByteReader, ByteWriter, protocolError, varintBytes } from './wire.js';

/** The two lanes of a node pair, each its own connection. HARD (wire). */
export const Lane = {
  /** Raft messages of every group. */
  Raft: 0,
  /** Snapshot chunks, kept off the Raft connection so they never delay it. */
  Snapshot: 1,
} as const;
/** See {@link Lane}. */
export type Lane = (typeof Lane)[keyof typeof Lane];

/** Bytes of a handshake nonce. HARD (wire). */
export const handshakeNonceBytes = 32;
/** Bytes of a handshake MAC (HMAC-SHA256). HARD (wire). */
export const handshakeMacBytes = 32;

/** The dialer's opening. */
export interface Hello {
  version: number;
  lane: Lane;
  dialer: NodeId;
  acceptor: NodeId;
  clusterId: Uint8Array;
  nonce: Uint8Array;
}

/** The acceptor's answer, proving the secret. */
export interface Welcome {
  version: number;
  acceptor: NodeId;
  dialer: NodeId;
  nonce: Uint8Array;
  mac: Uint8Array;
}

/** Outcome of decoding a handshake body. */
export type HandshakeDecodeResult<T> = { ok: true; value: T } | { ok: false; error: FlotillaError };

/** A fresh random nonce (from the OS, never from the seeded source). */
export function newNonce(): Uint8Array {
  return new Uint8Array(randomBytes(handshakeNonceBytes));
}

/** Encodes the Hello frame. */
export function encodeHello(h: Hello): Uint8Array {
  assert(h.clusterId.length <= clusterIdBytesMax, 'cluster id fits clusterIdBytesMax');
  assert(h.nonce.length === handshakeNonceBytes, 'nonce size');
  const w = new ByteWriter(
    4 + 2 + 1 + varintBytes(h.dialer) + varintBytes(h.acceptor) + 1 + h.clusterId.length + 32,
  );
  w.u32be(transportMagic);
  w.u16(h.version);
  w.u8(h.lane);
  w.varint(h.dialer);
  w.varint(h.acceptor);
  w.u8(h.clusterId.length);
  w.bytes(h.clusterId);
  w.bytes(h.nonce);
  return encodeHandshakeFrame(FrameKind.Hello, w.finish());
}

/** Encodes the Welcome frame. */
export function encodeWelcome(m: Welcome): Uint8Array {
  assert(m.nonce.length === handshakeNonceBytes, 'nonce size');
  assert(m.mac.length === handshakeMacBytes, 'mac size');
  const w = new ByteWriter(4 + 2 + varintBytes(m.acceptor) + varintBytes(m.dialer) + 64);
  w.u32be(transportMagic);
  w.u16(m.version);
  w.varint(m.acceptor);
  w.varint(m.dialer);
  w.bytes(m.nonce);
  w.bytes(m.mac);
  return encodeHandshakeFrame(FrameKind.Welcome, w.finish());
}

/** Encodes the Proof frame. */
export function encodeProof(mac: Uint8Array): Uint8Array {
  assert(mac.length === handshakeMacBytes, 'mac size');
  return encodeHandshakeFrame(FrameKind.Proof, mac);
}

function guard<T>(parse: () => T): HandshakeDecodeResult<T> {
  try {
    return { ok: true, value: parse() };
  } catch (err) {
    if (isFlotillaError(err, ErrorCode.PROTOCOL)) return { ok: false, error: err };
    throw err;
  }
}

function magicAndVersion(r: ByteReader): number {
  if (r.u32be() !== transportMagic) throw protocolError('bad magic: not a Flotilla peer');
  const version = r.u16();
  if (version !== transportProtocolVersion) {
    throw protocolError(
      `protocol version ${version}, this node speaks ${transportProtocolVersion}`,
    );
  }
  return version;
}

function nodeId(r: ByteReader, what: string): NodeId {
  const id = r.varintMax(0xffffffff, what);
  if (id === 0) throw protocolError(`${what} is 0`);
  return id;
}

/** Decodes a Hello body. */
export function decodeHello(body: Uint8Array): HandshakeDecodeResult<Hello> {
  return guard(() => {
    const r = new ByteReader(body, 0, body.length);
    const version = magicAndVersion(r);
    const lane = r.u8();
    if (lane !== Lane.Raft && lane !== Lane.Snapshot) throw protocolError(`unknown lane ${lane}`);
    const dialer = nodeId(r, 'dialer');
    const acceptor = nodeId(r, 'acceptor');
    const idLength = r.u8();
    if (idLength > clusterIdBytesMax) throw protocolError('cluster id too long');
    const clusterId = r.bytes(idLength);
    const nonce = r.bytes(handshakeNonceBytes);
    r.expectEnd('hello');
    return { version, lane, dialer, acceptor, clusterId, nonce };
  });
}

/** Decodes a Welcome body. */
export function decodeWelcome(body: Uint8Array): HandshakeDecodeResult<Welcome> {
  return guard(() => {
    const r = new ByteReader(body, 0, body.length);
    const version = magicAndVersion(r);
    const acceptor = nodeId(r, 'acceptor');
    const dialer = nodeId(r, 'dialer');
    const nonce = r.bytes(handshakeNonceBytes);
    const mac = r.bytes(handshakeMacBytes);
    r.expectEnd('welcome');
    return { version, acceptor, dialer, nonce, mac };
  });
}

/** Decodes a Proof body. */
export function decodeProof(body: Uint8Array): HandshakeDecodeResult<Uint8Array> {
  return guard(() => {
    if (body.length !== handshakeMacBytes) throw protocolError('proof of the wrong size');
    return body;
  });
}

/** What both MACs of one handshake bind. */
export interface Transcript {
  lane: Lane;
  clusterId: Uint8Array;
  dialer: NodeId;
  acceptor: NodeId;
  dialerNonce: Uint8Array;
  acceptorNonce: Uint8Array;
}

/** The MAC one side sends: `role` is the side that proves. */
export function handshakeMac(
  secret: Uint8Array,
  role: 'accept' | 'dial',
  t: Transcript,
): Uint8Array {
  const fixed = Buffer.alloc(2 + 1 + 1 + 4 + 4);
  fixed.writeUInt16LE(transportProtocolVersion, 0);
  fixed.writeUInt8(t.lane, 2);
  fixed.writeUInt8(t.clusterId.length, 3);
  fixed.writeUInt32LE(t.dialer, 4);
  fixed.writeUInt32LE(t.acceptor, 8);
  const hmac = createHmac('sha256', secret);
  hmac.update(`flotilla/${role}`);
  hmac.update(fixed);
  hmac.update(t.clusterId);
  hmac.update(t.dialerNonce);
  hmac.update(t.acceptorNonce);
  return new Uint8Array(hmac.digest());
}

/** Constant-time comparison of a received MAC with the expected one. */
export function macMatches(received: Uint8Array, expected: Uint8Array): boolean {
  return received.length === expected.length && timingSafeEqual(received, expected);
}
