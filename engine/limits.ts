/**
 * Every limit of Flotilla, in one place (STYLE.md §6). Names end in their unit.
 *
 * "Hard" constants fix the on-disk format: changing one corrupts existing data. "Soft" constants
 * are tunables: changing one is safe across restarts. The relations between them are checked
 * when this module loads.
 */
import { recordHeaderBytes, recordPayloadBytesMax } from '../wasm/format.js';
import { assert } from './assert.js';

// ---- Hard: on-disk format --------------------------------------------------------------------

/** Format version of the node directory (node.json). HARD. */
export const nodeFormatVersion = 1;

// ---- Soft: the public API ----------------------------------------------------------------------

/** Longest key, in bytes (UTF-8 for string keys). */
export const keyBytesMax = 4 * 1024;
/** Longest encoded value, in bytes. */
export const valueBytesMax = 1024 * 1024;
/** Most operations in one atomic batch. */
export const batchOpsMax = 1024;
/** Largest encoded command (one proposal) in bytes: a full batch must fit. */
export const commandBytesMax = 8 * 1024 * 1024;

// ---- Soft: shards ------------------------------------------------------------------------------

/** Shards a new store is cut into when the caller does not say. */
export const shardsDefault = 16;
/** Most shards one store may be created with. */
export const shardsMax = 65_536;

// ---- Checked relations -------------------------------------------------------------------------

assert(commandBytesMax <= recordPayloadBytesMax, 'a command must fit in one record');
assert(valueBytesMax + keyBytesMax < commandBytesMax, 'a single put must fit in one command');

// ==== Transport (engine/transport) ==============================================================
//
// Hard constants fix the node-to-node wire format: every node of a cluster must agree on them, so
// changing one needs a new `transportProtocolVersion` (the handshake refuses a mismatch).

// ---- Hard: wire format -------------------------------------------------------------------------

/** Version of the node-to-node protocol, exchanged and checked in the handshake. HARD (wire). */
export const transportProtocolVersion = 1;
/** First four bytes of every handshake ("FLTR", big-endian). HARD (wire). */
export const transportMagic = 0x464c5452;
/** Largest frame, header included, after the handshake. HARD (wire): a receiver refuses more. */
export const frameBytesMax = 16 * 1024 * 1024;
/** Largest frame before the peer is authenticated, so a stranger cannot make us buffer much. */
export const handshakeFrameBytesMax = 512;
/** Most messages (general + coalesced heartbeats) in one Raft frame. HARD (wire). */
export const frameMessagesMax = 65_536;
/** Longest ReadIndex / Heartbeat context. HARD (wire). */
export const messageContextBytesMax = 4 * 1024;
/** Most node ids in one list of a ConfState on the wire. HARD (wire). */
export const confStateNodesMax = 1024;
/** Largest data payload of one snapshot chunk. HARD (wire). */
export const snapshotChunkBytesMax = 4 * 1024 * 1024;
/** Longest cluster id (UTF-8). HARD (wire). */
export const clusterIdBytesMax = 64;

// ---- Soft: transport tunables ------------------------------------------------------------------

/** Shortest cluster secret accepted, so the HMAC handshake is not trivially guessable. */
export const clusterSecretBytesMin = 16;
/** Most Raft messages waiting for one peer; beyond it `send` refuses (Raft retries). */
export const sendQueueMessagesMax = 16 * 1024;
/** Most encoded bytes of Raft messages waiting for one peer. */
export const sendQueueBytesMax = 64 * 1024 * 1024;
/** Most snapshot chunks waiting for one peer. */
export const snapshotQueueChunksMax = 64;
/** Most snapshot chunk bytes waiting for one peer. */
export const snapshotQueueBytesMax = 32 * 1024 * 1024;
/** Snapshot bytes handed to one peer's snapshot lane per event-loop turn (keeps turns short). */
export const snapshotLaneBytesPerTurn = 1024 * 1024;
/** Most connections accepted but not yet authenticated; more are closed at once. */
export const pendingHandshakesMax = 64;
/** A connection that has not completed the handshake within this is closed. */
export const handshakeTimeoutMs = 5_000;
/** A connection that has sent nothing for this long gets a keepalive frame. */
export const keepaliveIntervalMs = 1_000;
/** A connection that has received no frame for this long is considered dead and closed. */
export const idleTimeoutMs = 10_000;
/** First reconnect delay after a lost or failed connection (before jitter). */
export const reconnectBackoffMinMs = 50;
/** Largest reconnect delay (before jitter). */
export const reconnectBackoffMaxMs = 5_000;

// ---- Checked relations: transport --------------------------------------------------------------

/** Frame bytes a single message may need beyond its entries' records (header, fields, context). */
const frameOverheadBytesMax = 64 * 1024;
assert(
  commandBytesMax + recordHeaderBytes + frameOverheadBytesMax <= frameBytesMax,
  'an App message carrying one largest command must fit in one frame',
);
assert(
  snapshotChunkBytesMax + frameOverheadBytesMax <= frameBytesMax,
  'a largest snapshot chunk must fit in one frame',
);
assert(handshakeFrameBytesMax < frameBytesMax, 'handshake frames are the small ones');
assert(sendQueueBytesMax >= frameBytesMax, 'a peer queue must hold a largest frame');
assert(snapshotQueueBytesMax >= snapshotChunkBytesMax, 'a snapshot queue must hold a chunk');
assert(idleTimeoutMs >= 3 * keepaliveIntervalMs, 'keepalives must arrive well within idle');
assert(reconnectBackoffMinMs <= reconnectBackoffMaxMs, 'backoff range is ordered');
