/**
 * Every limit of Flotilla, in one place (STYLE.md §6). Names end in their unit.
 *
 * "Hard" constants fix the on-disk format: changing one corrupts existing data. "Soft" constants
 * are tunables: changing one is safe across restarts. The relations between them are checked
 * when this module loads.
 */
import { recordHeaderBytes, recordPayloadBytesMax } from '../wasm/format.js';

import { kernelWindowBytes, kernelWindowBytesMin } from '../wasm/kernel-limits.js';
import { assert } from './assert.js';

// ---- Hard: on-disk format --------------------------------------------------------------------

/** Format version of the node directory (node.json). HARD. */
export const nodeFormatVersion = 1;

// ---- Soft: the public API ----------------------------------------------------------------------

/**
 * Longest key, in bytes (UTF-8 for string keys). LMDB keys are at most 4026 bytes with 8 KiB
 * pages and the state machine prefixes each key with its 4-byte shard id (see
 * stateKeyBytesMax below).
 */
export const keyBytesMax = 4000;
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

// ---- State machine (engine/state) ------------------------------------------------------------
// Hard, on disk: changing one makes existing state directories and snapshots unreadable.

/** Format version of the LMDB state environment (<dir>/state). HARD. */
export const stateFormatVersion = 1;
/** Format version of a shard snapshot stream. HARD: snapshots cross nodes of different builds. */
export const snapshotFormatVersion = 1;
/** LMDB page size of the state environment, in bytes. HARD: fixed when the file is created. */
export const statePageBytes = 8192;
/** Longest LMDB key with `statePageBytes` pages (LMDB's own limit). HARD. */
export const stateKeyBytesMax = 4026;

// Replicated semantics: these decide what a committed command does, so every replica of the
// cluster must use the same value (a mismatch makes replicas diverge). Change them only with a
// whole-cluster restart.

/** Longest client session id, in bytes. */
export const sessionIdBytesMax = 64;
/** Most client sessions remembered per shard; the least recently used is evicted beyond it. */
export const sessionsPerShardMax = 4096;
/** A session idle for more than this many log entries of its shard is forgotten. */
export const sessionExpiryEntries = 1_000_000;
/** A session idle for more than this long (by the time carried in commands) is forgotten. */
export const sessionExpiryMs = 10 * 60 * 1000;
/** Longest user command name (exec), in bytes. */
export const commandNameBytesMax = 128;
/** Most writes one user command (exec) may make. */
export const execWritesMax = 1024;
/** Deepest nesting of arrays and objects inside a value. */
export const valueDepthMax = 64;
/** Longest message kept from an exception a user command throws, in UTF-16 code units. */
export const commandErrorMessageCharsMax = 1024;

// Soft, local to one node: safe to change across restarts.

/** Change-feed records kept per shard (up to an eighth more between trims); older ones are
 *  trimmed, and a watcher behind them resyncs. */
export const changesPerShardMax = 4096;
/** Change-feed bytes (keys + values) kept per shard, whichever bound is reached first. */
export const changeBytesPerShardMax = 16 * 1024 * 1024;
/** Most change records one read of the change feed returns. */
export const changesReadMax = 4096;
/** Most in-process change listeners. */
export const changeListenersMax = 64;
/** A snapshot chunk is closed once its payload reaches this size. */
export const snapshotChunkBytesTarget = 256 * 1024;
/** Largest snapshot chunk, header included: a chunk holds at least one whole key/value item. */
export const snapshotChunkBytesMax = 2 * 1024 * 1024;
/** Most snapshot installs staged at once on one node. */
export const snapshotInstallsMax = 16;

// ---- Soft: test support (test/support/linearizability.ts) -------------------------------------

/** Steps one linearizability search may take before its partition is reported as timed out. */
export const linearizabilityStepsMax = 2_000_000;
/** Operations a printed linearizability failure lists per section before eliding the rest. */
export const historyOpsPrintedMax = 40;

// ---- Soft: WASM kernels (defined in wasm/kernel-limits.ts: wasm/ imports nothing from engine/) --

export {
  kernelCrcChunkBytes,
  kernelInPlaceBytesMin,
  kernelWindowBytes,
  kernelWindowBytesMin,
} from '../wasm/kernel-limits.js';

// ---- Checked relations -------------------------------------------------------------------------

assert(commandBytesMax <= recordPayloadBytesMax, 'a command must fit in one record');
assert(valueBytesMax + keyBytesMax < commandBytesMax, 'a single put must fit in one command');
assert(
  snapshotChunkBytesMax >= snapshotChunkBytesTarget + keyBytesMax + valueBytesMax + 1024,
  'a snapshot chunk must hold a full chunk target plus one largest item',
);
assert(keyBytesMax + 4 <= stateKeyBytesMax, 'a shard-prefixed key must fit in an LMDB key');
assert(sessionIdBytesMax + 4 <= stateKeyBytesMax, 'a shard-prefixed session id fits in a key');
assert(changesPerShardMax >= 1, 'the change feed keeps at least the latest change');

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
/** Largest data payload of one snapshot chunk on the wire. HARD (wire). */
export const wireSnapshotChunkBytesMax = 4 * 1024 * 1024;
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
  wireSnapshotChunkBytesMax + frameOverheadBytesMax <= frameBytesMax,
  'a largest snapshot chunk must fit in one frame',
);
assert(handshakeFrameBytesMax < frameBytesMax, 'handshake frames are the small ones');
assert(sendQueueBytesMax >= frameBytesMax, 'a peer queue must hold a largest frame');
assert(snapshotQueueBytesMax >= wireSnapshotChunkBytesMax, 'a snapshot queue must hold a chunk');
assert(
  snapshotChunkBytesMax <= wireSnapshotChunkBytesMax,
  'a state snapshot chunk must fit in one wire chunk',
);
assert(idleTimeoutMs >= 3 * keepaliveIntervalMs, 'keepalives must arrive well within idle');
assert(reconnectBackoffMinMs <= reconnectBackoffMaxMs, 'backoff range is ordered');

assert(kernelWindowBytesMin >= recordHeaderBytes, 'a kernel window must hold a record header');
assert(kernelWindowBytes >= kernelWindowBytesMin, 'the default kernel window is too small');
assert(kernelWindowBytes % 16 === 0, 'kernel windows are multiples of 16 bytes');
