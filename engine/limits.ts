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

// ---- Soft: test support (test/support/linearizability.ts) -------------------------------------

/** Steps one linearizability search may take before its partition is reported as timed out. */
export const linearizabilityStepsMax = 2_000_000;
/** Operations a printed linearizability failure lists per section before eliding the rest. */
export const historyOpsPrintedMax = 40;

// ---- Checked relations -------------------------------------------------------------------------

assert(commandBytesMax <= recordPayloadBytesMax, 'a command must fit in one record');
assert(valueBytesMax + keyBytesMax < commandBytesMax, 'a single put must fit in one command');
