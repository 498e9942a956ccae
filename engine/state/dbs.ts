/**
 * The LMDB environment of one node's state and its named databases (layouts in layout.ts).
 */
import type { Database, RootDatabase } from 'lmdb';

/** A database with raw binary keys and values. */
export type BinaryDb = Database<Buffer, Buffer>;

/** Every database of the state environment. */
export interface StateDbs {
  env: RootDatabase;
  /** shard ‖ user key → version ‖ stored value. */
  data: BinaryDb;
  /** shard → ShardMeta. */
  meta: BinaryDb;
  /** feed position → change block (every shard's changes of one apply transaction). */
  changes: BinaryDb;
  /** shard ‖ session id → session record. */
  sessions: BinaryDb;
  /** Format marker. */
  system: BinaryDb;
  /** install id ‖ user key → data record, for snapshots being received. */
  stagingData: BinaryDb;
  /** install id ‖ session id → session record, for snapshots being received. */
  stagingSessions: BinaryDb;
}

/** The tunables a KvState applies with. See engine/limits.ts for what each one means. */
export interface StateLimits {
  /** Replicated semantics: must be equal on every replica. */
  sessionsPerShardMax: number;
  sessionExpiryEntries: number;
  sessionExpiryMs: number;
  execWritesMax: number;
  /** Local to the node. */
  changesMax: number;
  changeBytesMax: number;
  sessionTablesMirroredMax: number;
}
