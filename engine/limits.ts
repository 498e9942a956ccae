/**
 * Every limit of Flotilla, in one place (STYLE.md §6). Names end in their unit.
 *
 * "Hard" constants fix the on-disk format: changing one corrupts existing data. "Soft" constants
 * are tunables: changing one is safe across restarts. The relations between them are checked
 * when this module loads.
 */
import { recordPayloadBytesMax } from '../wasm/format.js';
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
/** Reads a group queues (waiting for a heartbeat round, or forwarded to the leader). */
export const raftReadsPendingMax = 4096;
/** Outgoing messages a group queues between two Readies (beyond it they are dropped). */
export const raftMessagesQueuedMax = 4096;
/** Leadership terms with unresolved proposals that a group tracks for drop reporting. */
export const raftProposalRangesMax = 64;

// ---- Checked relations -------------------------------------------------------------------------

assert(commandBytesMax <= recordPayloadBytesMax, 'a command must fit in one record');
assert(valueBytesMax + keyBytesMax < commandBytesMax, 'a single put must fit in one command');
assert(raftHeartbeatTicks < raftElectionTicks, 'heartbeats come more often than elections');
assert(raftLeaseMarginTicks >= 1, 'the lease margin absorbs at least one tick of phase');
assert(raftLeaseMarginTicks < raftElectionTicks, 'the lease margin leaves a lease');
assert(
  raftMessagesQueuedMax >= 4 * raftInflightMsgsMax,
  'a leader of five replicas can fill every peer window without dropping its own messages',
);
assert(raftMsgBytesMax <= raftInflightBytesMax, 'one App fits in the inflight window');
assert(commandBytesMax <= raftUncommittedBytesMax, 'a full command fits the uncommitted budget');
