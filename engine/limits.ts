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

// ---- Checked relations -------------------------------------------------------------------------

assert(commandBytesMax <= recordPayloadBytesMax, 'a command must fit in one record');
assert(valueBytesMax + keyBytesMax < commandBytesMax, 'a single put must fit in one command');

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

/** Size of a new segment file (preallocated with ftruncate). Existing segments keep their size. */
export const logSegmentBytesDefault = 64 * 1024 * 1024;
/** Smallest segment a log may be configured with (tests use small ones to rotate often). */
export const logSegmentBytesMin = 4 * 1024;
/** Most bytes appended but not yet durable; beyond it `append` rejects with BUSY. */
export const logAppendQueueBytesMax = 64 * 1024 * 1024;
/** Bytes of recent entries kept in memory for reads (entries not yet written are always kept). */
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
/** Bytes read per step when recovery scans a segment. */
export const logRecoveryReadBytes = 8 * 1024 * 1024;

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
assert(logRewriteBurstBytes >= 64 * 1024, 'the rewrite burst must move more than a few records');
