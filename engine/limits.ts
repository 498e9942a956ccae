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
/**
 * Longest a node holds a request for a shard that is electing a leader (no leader known), so
 * that the request is served, or redirected, as soon as the election ends instead of after the
 * caller's next retry: one election timeout at the default tick.
 */
export const electionWaitMs = 1_000;
/** Requests one node holds that way at once; beyond it they are refused (NOT_LEADER) at once. */
export const electionWaitersMax = 4_096;

// ---- State machine (engine/state) ------------------------------------------------------------
// Hard, on disk: changing one makes existing state directories and snapshots unreadable.

/** Format version of the LMDB state environment (<dir>/state). HARD. */
export const stateFormatVersion = 3;
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

/** Change-feed records one node keeps, over all its shards (up to an eighth more between
 *  trims); older blocks are trimmed whole, and a watcher behind them resyncs. At 256 shards
 *  this is the 4,096 records per shard of a uniform load. */
export const changesMax = 1_048_576;
/** Change-feed bytes (keys + values) one node keeps, whichever bound is reached first: ~1 KiB
 *  values would reach it at 256 Ki records. Bounds the feed's share of the state file. */
export const changeBytesMax = 256 * 1024 * 1024;
/** Most change blocks one apply transaction trims; the rest go in the next ones. Bounds the
 *  pause of a trim when blocks are small (a lightly loaded node writes one change per block). */
export const changeTrimBlocksMax = 4096;
/** Change blocks read back are cached up to this many bytes (at least the last one read), so
 *  that watchers of many shards reading the same new block fetch it from LMDB once. */
export const changeBlockCacheBytesMax = 4 * 1024 * 1024;
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
/** Shards whose session table is mirrored in memory at once (each mirror holds at most
 *  `sessionsPerShardMax` sessions of ~200 bytes); the least recently used is dropped beyond it
 *  and rebuilt from LMDB when needed. */
export const sessionTablesMirroredMax = 256;

// ---- Soft: test support (test/support/linearizability.ts) -------------------------------------

/** Steps one linearizability search may take before its partition is reported as timed out. */
export const linearizabilityStepsMax = 2_000_000;
/** Operations a printed linearizability failure lists per section before eliding the rest. */
export const historyOpsPrintedMax = 40;

// ---- Soft: the host ----------------------------------------------------------------------------

/** Milliseconds between two Raft ticks of every group. */
export const tickMsDefault = 100;
/** A proposal not applied within this many milliseconds fails with TIMEOUT (outcome unknown). */
export const proposalTimeoutMs = 10_000;
/** A read not confirmed within this many milliseconds fails with TIMEOUT. */
export const readTimeoutMs = 5_000;
/** Proposals a node tracks at once; beyond it, proposals are refused with BUSY. */
export const proposalsPendingMax = 262_144;
/** Milliseconds between checkpoints (state flushed to disk, then the log compacted). */
export const hostCheckpointMs = 1_000;
/** Entries kept in the log below the durable applied index, for followers slightly behind. */
export const compactionSlackEntries = 1_024;
/**
 * Log appends a host keeps in flight: the turn's batch is handed to the log while the previous
 * one is still being synced (the log coalesces it into its next write), so the pump's CPU work
 * overlaps the fsync. 1 serializes them.
 */
export const hostAppendsInFlightMax = 2;
/**
 * Committed entries a host applies per turn for groups it alone replicates. Under a heavy load
 * this splits the callers into cohorts whose appends and applies take turns (see
 * NodeHost.applyTurn); small enough that a cohort forms, large enough to batch the apply.
 */
export const hostApplyEntriesPerTurnMax = 512;
/**
 * Most reads of one group waiting at once on a node (queued for the group's next ReadIndex or
 * waiting for its answer); beyond it a read gets BUSY.
 */
export const hostReadsWaitingMax = 16_384;
/**
 * How long `NodeHost.transferLeader` waits to see the target lead, in milliseconds (the Raft
 * core itself abandons a transfer after one election timeout).
 */
export const leaderTransferTimeoutMs = 5_000;

// ---- Soft: snapshots over the wire (engine/host-snapshots.ts) ----------------------------------

/** Snapshot streams one node sends at once; a Snap beyond it is reported failed (Raft retries). */
export const snapshotSendsMax = 4;
/** A stream whose chunks the transport keeps refusing for this long is abandoned (and retried). */
export const snapshotStallMs = 10_000;
/** After its last chunk, a stream waits this long for the follower's answer before giving up. */
export const snapshotAckTimeoutMs = 30_000;
/** A follower drops a partly received snapshot after this long without a chunk. */
export const snapshotReceiveIdleMs = 30_000;

// ---- Soft: Raft (engine/raft; the host passes these in RaftConfig) ---------------------------

/** Ticks without hearing from a leader before a follower campaigns (randomized up to 2x). */
export const raftElectionTicks = 10;
/** Ticks between a leader's heartbeats. */
export const raftHeartbeatTicks = 1;
/**
 * Safety margin of the leader lease, in ticks: the lease lasts raftElectionTicks minus this from
 * the send time of a quorum-acknowledged heartbeat. Tolerates follower ticks running up to
 * raftElectionTicks / (raftElectionTicks - margin) times faster than the leader's (here 25 %).
 */
export const raftLeaseMarginTicks = 2;
/** Inflight window per peer, in App messages (pipelining depth). */
export const raftInflightMsgsMax = 256;
/** Inflight window per peer, in entry bytes. */
export const raftInflightBytesMax = 32 * 1024 * 1024;
/** Target size of one App message's entries, in bytes (a larger single entry still goes). */
export const raftMsgBytesMax = 1024 * 1024;
/** Uncommitted proposal bytes a leader accepts per group before refusing (backpressure). */
export const raftUncommittedBytesMax = 64 * 1024 * 1024;
/** Committed entry bytes handed to the host per Ready and group. */
export const raftCommittedBytesPerReadyMax = 4 * 1024 * 1024;
/**
 * Bytes of durable, not yet applied entries a group keeps in memory so that handing them out as
 * committed needs no read back from the log (beyond it the log serves them, as before).
 */
export const raftRetainedBytesMax = 1024 * 1024;
/** Reads a group queues (waiting for a heartbeat round, or forwarded to the leader). */
export const raftReadsPendingMax = 4096;
/** Outgoing messages a group queues between two Readies (beyond it they are dropped). */
export const raftMessagesQueuedMax = 4096;
/** Leadership terms with unresolved proposals that a group tracks for drop reporting. */
export const raftProposalRangesMax = 64;

// ---- Soft: WASM kernels (defined in wasm/kernel-limits.ts: wasm/ imports nothing from engine/) --

export {
  hashWasmKeyBytesMin,
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
assert(changesMax >= 1, 'the change feed keeps at least the latest change');
assert(changeTrimBlocksMax >= 2, 'a trim outpaces the one block each transaction adds');
assert(
  leaderTransferTimeoutMs >= 2 * raftElectionTicks * tickMsDefault,
  'a transfer is awaited longer than the election timeout after which Raft abandons it',
);

assert(hostAppendsInFlightMax >= 1, 'a host keeps at least one append in flight');
assert(hostApplyEntriesPerTurnMax >= 1, 'a host applies at least one entry per turn');
assert(hostReadsWaitingMax >= 1, 'a host lets at least one read wait per group');

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

assert(raftHeartbeatTicks < raftElectionTicks, 'heartbeats come more often than elections');
assert(snapshotSendsMax >= 1, 'a node can send at least one snapshot');
assert(snapshotInstallsMax >= 1, 'a node can receive at least one snapshot');
assert(snapshotAckTimeoutMs >= snapshotStallMs, 'a delivered stream gets as long as a stalled one');
assert(raftLeaseMarginTicks >= 1, 'the lease margin absorbs at least one tick of phase');
assert(raftLeaseMarginTicks < raftElectionTicks, 'the lease margin leaves a lease');
assert(
  raftMessagesQueuedMax >= 4 * raftInflightMsgsMax,
  'a leader of five replicas can fill every peer window without dropping its own messages',
);
assert(raftMsgBytesMax <= raftInflightBytesMax, 'one App fits in the inflight window');
assert(commandBytesMax <= raftUncommittedBytesMax, 'a full command fits the uncommitted budget');

// ==== Log (engine/log) ==========================================================================
//
// The shared segmented log of a node. Hard constants fix how a log directory is read back:
// changing one makes existing logs unreadable (or misjudged at recovery); bump
// `logFormatVersion` instead. The byte layouts themselves are in engine/log/format.ts.

// ---- Hard: log format --------------------------------------------------------------------------

/** Format version written in every segment header. HARD: a log of another version will not open. */
export const logFormatVersion = 1;
/**
 * Most bytes written between two fdatasyncs. Recovery relies on it to tell a torn last write from
 * corruption (records that verify beyond this distance from the damage cannot be one torn write).
 * HARD: raising it makes older binaries refuse logs whose tear they cannot explain.
 */
export const logWriteBytesMax = 16 * 1024 * 1024;
/** Largest segment file: record offsets in the in-memory index are u32. HARD. */
export const logSegmentBytesMax = 1024 * 1024 * 1024;

// ---- Soft: log tunables ------------------------------------------------------------------------

/** Size of a new segment file (preallocated ahead of need). Existing segments keep their size. */
export const logSegmentBytesDefault = 64 * 1024 * 1024;
/**
 * Whether a new segment is preallocated by writing zeros over it (true) or only sized with
 * ftruncate, leaving it sparse (false). See engine/log/segments.ts for the measurements.
 */
export const logSegmentZeroFill = false;
/** Bytes per write when a new segment is filled with zeros. */
export const logSegmentFillBytes = 1024 * 1024;
/** Smallest segment a log may be configured with (tests use small ones to rotate often). */
export const logSegmentBytesMin = 4 * 1024;
/** Most bytes appended but not yet durable; beyond it `append` rejects with BUSY. */
export const logAppendQueueBytesMax = 64 * 1024 * 1024;
/** Bytes of written records kept in memory for reads (records not yet written are always kept). */
export const logEntryCacheBytesMax = 64 * 1024 * 1024;
/** Rate at which live records of old segments are rewritten forward (token bucket refill). */
export const logRewriteBytesPerSec = 32 * 1024 * 1024;
/** Most rewrite bytes that may accumulate while idle (bucket depth; at most 1 s of the rate). */
export const logRewriteBurstBytes = 4 * 1024 * 1024;
/**
 * Segments the log may hold beyond what its live records need when packed. Past it, the oldest
 * segment's live records are rewritten forward so that segment can be deleted.
 */
export const logCleanSlackSegments = 4;
/** Bytes read per step when recovery scans a segment (two steps are in memory at a time). */
export const logRecoveryReadBytes = 1024 * 1024;
/**
 * Room kept in front of each recovery read for the unfinished write carried over from the
 * previous step; a longer carry costs one extra copy.
 */
export const logRecoveryCarryBytes = 1024 * 1024;

// ---- Checked relations: log --------------------------------------------------------------------

assert(logSegmentBytesMin <= logSegmentBytesDefault, 'segment size bounds are ordered');
assert(logSegmentBytesDefault <= logSegmentBytesMax, 'the default segment is a legal size');
assert(logSegmentBytesMax <= 2 ** 32, 'segment offsets must fit the u32 index');
assert(
  commandBytesMax + 2 * recordHeaderBytes <= logSegmentBytesDefault,
  'a largest command must fit in one default segment',
);
assert(
  commandBytesMax + 2 * recordHeaderBytes <= logWriteBytesMax,
  'a largest command and the record ending its write must fit in one log write',
);
assert(logAppendQueueBytesMax >= logWriteBytesMax, 'the append queue must hold a largest write');
assert(logSegmentFillBytes % 4096 === 0, 'zero-fill writes are whole pages');
assert(logRewriteBurstBytes >= 64 * 1024, 'the rewrite burst must move more than a few records');

assert(kernelWindowBytesMin >= recordHeaderBytes, 'a kernel window must hold a record header');
assert(kernelWindowBytes >= kernelWindowBytesMin, 'the default kernel window is too small');
assert(kernelWindowBytes % 16 === 0, 'kernel windows are multiples of 16 bytes');

// ==== Client protocol (shards/client) ===========================================================
//
// The client-to-node protocol of `Flotilla.connect`. Hard constants fix its wire format: a client
// and a node must agree on them, so changing one needs a new `clientProtocolVersion` (the
// handshake refuses a mismatch). The frame and message layouts are in shards/client/protocol.ts.

// ---- Hard: client wire format ------------------------------------------------------------------

/** Version of the client protocol, exchanged and checked in the handshake. HARD (wire). */
export const clientProtocolVersion = 2;
/** First four bytes of every client handshake body ("FLTC", big-endian). HARD (wire). */
export const clientMagic = 0x464c5443;
/** Largest client frame, header included, after the handshake. HARD (wire). */
export const clientFrameBytesMax = 16 * 1024 * 1024;
/** Largest client frame before the handshake completes. HARD (wire). */
export const clientHandshakeFrameBytesMax = 512;
/** Most items in one Batch frame; a receiver refuses more. HARD (wire). */
export const clientBatchItemsMax = 512;

// ---- Soft: client server (a node serving clients) ----------------------------------------------

/** Most client connections one node serves at once; more are closed on arrival. */
export const clientConnectionsMax = 1024;
/** Most requests of one connection being served at once; beyond it a request gets BUSY. */
export const clientRequestsInFlightMax = 1024;
/**
 * Unsent response bytes of one connection beyond which the node stops reading its requests
 * until the client catches up (a slow reader cannot make the node buffer without bound).
 */
export const clientSendBufferBytesMax = 8 * 1024 * 1024;
/** A scan page or change-feed response is cut (at an entry boundary) once it reaches this. */
export const clientResponseBytesTarget = 4 * 1024 * 1024;
/**
 * A sender closes a Batch frame once its items reach this many bytes, so that one frame of a
 * turn's requests or answers stays small next to clientFrameBytesMax.
 */
export const clientBatchBytesTarget = 256 * 1024;
/** A request or answer body beyond this travels in a frame of its own, never in a Batch. */
export const clientBatchItemBytesMax = 64 * 1024;
/** A client connection that has not completed the handshake within this is closed. */
export const clientHandshakeTimeoutMs = 5_000;
/** Milliseconds between a client's keepalive pings on an idle connection. */
export const clientKeepaliveMs = 1_000;
/** A connection on which nothing arrived for this long is considered dead and closed. */
export const clientIdleTimeoutMs = 10_000;

// ---- Soft: remote client (Flotilla.connect) ----------------------------------------------------

/** Default deadline of one client call, retries included. */
export const clientRequestTimeoutMs = 15_000;
/** Longest wait for one connection (TCP, TLS and the handshake). */
export const clientConnectTimeoutMs = 3_000;
/** First retry delay of a call (before jitter). */
export const clientRetryBackoffMinMs = 5;
/** Largest retry delay of a call (before jitter). */
export const clientRetryBackoffMaxMs = 500;
/**
 * Largest delay between rounds over a shard's replicas when none leads it (an election is
 * under way): the call should notice the new leader soon after the election ends.
 */
export const clientLeaderPollMsMax = 100;
/** First delay before redialing a node that could not be reached (before jitter). */
export const clientRedialBackoffMinMs = 50;
/** Largest delay before redialing a node that could not be reached (before jitter). */
export const clientRedialBackoffMaxMs = 2_000;
/**
 * Client sessions one client keeps per shard: its writes in flight to one shard at once (a
 * session has one outstanding request per shard). Further writes wait for a free session.
 */
export const clientSessionsPerShardMax = 32;
/** Writes of one client waiting for a free session of one shard; beyond it, BUSY. */
export const clientSessionWaitersMax = 65_536;
/** Most endpoints `Flotilla.connect` accepts. */
export const clientEndpointsMax = 256;

// ---- Checked relations: client protocol --------------------------------------------------------

assert(
  clientRetryBackoffMinMs <= clientLeaderPollMsMax,
  'the leader poll cap is not below the first retry delay',
);

assert(
  clientBatchBytesTarget + clientBatchItemBytesMax + clientBatchItemsMax * 9 + 16 <=
    clientFrameBytesMax,
  'a Batch frame closed at its byte target fits in one client frame',
);

/** Bytes a client frame may need beyond its largest payload (header, msgpack framing, fields). */
const clientFrameOverheadBytesMax = 64 * 1024;
assert(
  commandBytesMax + clientFrameOverheadBytesMax <= clientFrameBytesMax,
  'a propose request carrying one largest command must fit in one client frame',
);
assert(
  clientResponseBytesTarget + commandBytesMax + clientFrameOverheadBytesMax <= clientFrameBytesMax,
  'a cut response plus one whole entry (at most one largest command) fits in one frame',
);
assert(
  clientResponseBytesTarget >= keyBytesMax + valueBytesMax,
  'a scan page always holds at least one largest key/value pair',
);
assert(clientSendBufferBytesMax >= clientFrameBytesMax / 4, 'a send buffer holds real responses');
assert(clientHandshakeFrameBytesMax < clientFrameBytesMax, 'handshake frames are the small ones');
assert(clientIdleTimeoutMs >= 3 * clientKeepaliveMs, 'keepalives must arrive well within idle');
assert(clientRetryBackoffMinMs <= clientRetryBackoffMaxMs, 'retry backoff range is ordered');
assert(clientRedialBackoffMinMs <= clientRedialBackoffMaxMs, 'redial backoff range is ordered');
assert(
  clientSessionsPerShardMax <= sessionsPerShardMax,
  'one client cannot fill a shard session table by itself',
);
assert(clientSessionsPerShardMax <= 0xffff, 'a session slot number fits in two bytes');
