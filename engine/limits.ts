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

/** Longest key, in bytes (UTF-8 for string keys). */
export const keyBytesMax = 4 * 1024;
/** Longest encoded value, in bytes. */
export const valueBytesMax = 1024 * 1024;
/** Most operations in one atomic batch. */
export const batchOpsMax = 1024;
/** Largest encoded command (one proposal) in bytes: a full batch must fit. */
export const commandBytesMax = 8 * 1024 * 1024;

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
assert(kernelWindowBytesMin >= recordHeaderBytes, 'a kernel window must hold a record header');
assert(kernelWindowBytes >= kernelWindowBytesMin, 'the default kernel window is too small');
assert(kernelWindowBytes % 16 === 0, 'kernel windows are multiples of 16 bytes');
