/**
 * The state machine's public surface for the node host: KvState, the command encoding and
 * results, the value model, and the snapshot stream's types.
 */
export type { ApplyItem } from './apply.js';
export type { Change } from './change-feed.js';
export {
  type BatchOp,
  type CasExpectation,
  type Command,
  type CommandResult,
  decodeResult,
  type ErrorResult,
  encodeCommand,
  encodeResult,
  type OpResult,
  resultError,
  type Session,
  type StateErrorCode,
} from './commands.js';
export type { StateLimits } from './dbs.js';
export type { Durability } from './durability.js';
export type { ShardTxn, UserCommand } from './exec.js';
export {
  type ChangeListener,
  KvState,
  type KvStateOptions,
  type ScanEntry,
  type ScanOptions,
  type ScanRange,
  SnapshotInstall,
  type StoredValue,
} from './kv-state.js';
export type { SnapshotHeader } from './snapshot-format.js';
export { decodeValue, encodeKey, encodeValue, type Key, type Value } from './value-codec.js';
