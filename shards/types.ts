/**
 * The public shape of a Flotilla store, shared by the embedded store (Flotilla.open), a cluster
 * node embedded in an application (Flotilla.start) and a remote client (Flotilla.connect).
 */
import type { Value } from '../engine/state/value-codec.js';
import type { Key } from './keys.js';

/**
 * A storable value: null, booleans, numbers, bigints, strings, Dates, byte arrays (stored raw and
 * read back as bytes), and arrays and plain objects of these.
 */
export type { Value };

/** How fresh a read must be. */
export type Consistency =
  /** Confirmed with a quorum (ReadIndex): sees every write acknowledged before the read began. */
  | 'linearizable'
  /** Served by the leader under its lease, without a quorum round (bounded clock drift assumed). */
  | 'lease'
  /** Served by any replica from what it has applied: may be behind. */
  | 'stale';

/** Options of a read. */
export interface ReadOptions {
  consistency?: Consistency;
}

/** A value with the log index of its last write. */
export interface Entry {
  value: Value;
  version: number;
}

/** What `cas` compares with: a version (0 = the key must not exist) or a value. */
export type Expected = { version: number } | { value: Value };

/** One operation of an atomic batch. */
export type BatchOp =
  | { type: 'put'; key: Key; value: Value }
  | { type: 'delete'; key: Key }
  | { type: 'incr'; key: Key; by?: number | bigint }
  | { type: 'cas'; key: Key; expected: Expected; value: Value };

/** The selection of a scan: a prefix, or a half-open key range [start, end). */
export type ScanRange = { prefix: Key } | { start?: Key; end?: Key };

/** Options of a scan. */
export interface ScanOptions extends ReadOptions {
  limit?: number;
  reverse?: boolean;
}

/** One committed change, as `watch` delivers it. */
export interface WatchEvent {
  key: Key;
  type: 'put' | 'delete';
  value?: Value;
  version: number;
  shard: number;
  /** Resume the feed after this event by passing it as `from`. */
  cursor: string;
}

/** Options of a watch. */
export interface WatchOptions {
  prefix?: Key;
  /** A cursor from an earlier event: the feed resumes just after it. */
  from?: string;
}
