/**
 * The semantics of each operation, applied to one shard inside the apply transaction.
 *
 * Single operations write straight to LMDB (`ShardWriter`). An atomic batch and a user command
 * write into a `WriteSet` first, an in-memory overlay that reads through to LMDB; it reaches LMDB
 * only when every operation succeeded, so a failure leaves nothing behind without needing an
 * LMDB child transaction.
 */
import { type FlotillaError, isFlotillaError } from '../errors.js';
import { stateKeyBytesMax } from '../limits.js';
import type { RawChange } from './change-feed.js';
import type { DecodedOp, ErrorResult, OpResult, StateErrorCode } from './commands.js';
import type { StateDbs } from './dbs.js';
import {
  dataHeaderBytes,
  readU64,
  type Scratch,
  type ShardMeta,
  shardPrefixBytes,
} from './layout.js';
import { decodeValue, encodeValue, type Value, ValueTag } from './value-codec.js';

/** A stored key's version (the index of its last write) and stored value (tag ‖ payload). */
export interface StoredEntry {
  version: number;
  stored: Uint8Array;
}

/** Reads and writes the keys of one shard at one log index. */
export interface KeyStore {
  read(key: Uint8Array): StoredEntry | undefined;
  /** Writes `stored` with version = the entry's index. */
  write(key: Uint8Array, stored: Uint8Array): void;
  /** Deletes the key; true when it existed. */
  remove(key: Uint8Array): boolean;
}

/** Receives the change records of the entry being applied. */
export type ChangeSink = (change: RawChange) => void;

/** Direct LMDB access for one entry of one shard. */
export class ShardWriter implements KeyStore {
  constructor(
    private readonly dbs: StateDbs,
    private readonly scratch: Scratch,
    readonly shard: number,
    readonly meta: ShardMeta,
    /** The index of the entry being applied (the Applier moves one writer along a shard). */
    public index: number,
    private readonly onChange: ChangeSink,
  ) {}

  read(key: Uint8Array): StoredEntry | undefined {
    const record = this.dbs.data.getBinary(this.scratch.key(this.shard, key));
    if (record === undefined) return undefined;
    return { version: readU64(record, 0), stored: record.subarray(dataHeaderBytes) };
  }

  write(key: Uint8Array, stored: Uint8Array): void {
    this.writeQuietly(key, stored);
    this.onChange({ shard: this.shard, index: this.index, key, stored });
  }

  remove(key: Uint8Array): boolean {
    const existed = this.removeQuietly(key);
    if (existed) this.onChange({ shard: this.shard, index: this.index, key, stored: null });
    return existed;
  }

  /** Writes the record without a change record (the caller emits changes itself). */
  writeQuietly(key: Uint8Array, stored: Uint8Array): void {
    // No read first: the shard keeps no key count, so a put is one B-tree descent.
    const full = this.scratch.key(this.shard, key);
    this.dbs.data.putSync(full, this.scratch.dataRecord(this.index, stored));
  }

  /** Deletes the record without a change record. */
  removeQuietly(key: Uint8Array): boolean {
    return this.dbs.data.removeSync(this.scratch.key(this.shard, key));
  }

  /** Emits a change record for a write made quietly. */
  emit(key: Uint8Array, stored: Uint8Array | null): void {
    this.onChange({ shard: this.shard, index: this.index, key, stored });
  }
}

interface Pending {
  key: Uint8Array;
  /** The entry before this write set touched the key (undefined: absent). */
  before: StoredEntry | undefined;
  /** The value now, or null when deleted. */
  after: Uint8Array | null;
}

/** An overlay of writes over a ShardWriter, applied only by `commit`. */
export class WriteSet implements KeyStore {
  private readonly pending = new Map<string, Pending>();
  private readonly writes: { key: Uint8Array; stored: Uint8Array | null }[] = [];

  constructor(private readonly base: ShardWriter) {}

  /** Writes made so far (each put or existing delete counts). */
  get writeCount(): number {
    return this.writes.length;
  }

  read(key: Uint8Array): StoredEntry | undefined {
    const pending = this.pending.get(mapKey(key));
    if (pending === undefined) return this.base.read(key);
    if (pending.after === null) return undefined;
    return { version: this.base.index, stored: pending.after };
  }

  write(key: Uint8Array, stored: Uint8Array): void {
    this.touch(key).after = stored;
    this.writes.push({ key, stored });
  }

  remove(key: Uint8Array): boolean {
    const pending = this.touch(key);
    const existed = pending.after !== null;
    pending.after = null;
    if (existed) this.writes.push({ key, stored: null });
    return existed;
  }

  /** Applies the final state of every touched key, then the change records in write order. */
  commit(): void {
    for (const { key, before, after } of this.pending.values()) {
      if (after !== null) this.base.writeQuietly(key, after);
      else if (before !== undefined) this.base.removeQuietly(key);
    }
    for (const { key, stored } of this.writes) this.base.emit(key, stored);
  }

  private touch(key: Uint8Array): Pending {
    const k = mapKey(key);
    let pending = this.pending.get(k);
    if (pending === undefined) {
      const before = this.base.read(key);
      pending = { key, before, after: before === undefined ? null : before.stored };
      this.pending.set(k, pending);
    }
    return pending;
  }
}

function mapKey(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.length).toString('latin1');
}

/** An error result. */
export function errorResult(code: StateErrorCode, message: string): ErrorResult {
  return { type: 'error', code, message };
}

const resultCodes: ReadonlySet<string> = new Set<StateErrorCode>([
  'INVALID_ARGUMENT',
  'KEY_TOO_LARGE',
  'VALUE_TOO_LARGE',
  'WRONG_TYPE',
  'COMMAND_FAILED',
  'SESSION_EXPIRED',
  'STALE_EPOCH',
]);

/** True when `err` is a failure a command can cause (it becomes an error result). */
export function isCommandError(err: unknown): err is FlotillaError {
  return isFlotillaError(err) && resultCodes.has(err.code);
}

/** The error result for a command failure; rethrows anything else (it aborts the batch). */
export function errorResultOf(err: unknown): ErrorResult {
  if (!isCommandError(err)) throw err;
  return errorResult(err.code as StateErrorCode, err.message);
}

/** Says whether a key belongs to the shard (by its routing hash); an error result if not. */
export type KeyCheck = (key: Uint8Array) => ErrorResult | undefined;

/** Applies one operation; never throws for a failure a command can cause. */
export function applyOp(store: KeyStore, op: DecodedOp, index: number, check: KeyCheck): OpResult {
  const refused = check(op.key);
  if (refused !== undefined) return refused;
  switch (op.type) {
    case 'put':
      store.write(op.key, op.stored);
      return { type: 'put', version: index };
    case 'delete':
      return { type: 'delete', existed: store.remove(op.key) };
    case 'cas': {
      const current = store.read(op.key);
      const version = current === undefined ? 0 : current.version;
      const holds =
        op.expectedStored === null
          ? version === op.expectedVersion
          : current !== undefined && Buffer.compare(current.stored, op.expectedStored) === 0;
      if (!holds) return { type: 'cas', ok: false, version };
      store.write(op.key, op.stored);
      return { type: 'cas', ok: true, version: index };
    }
    case 'incr': {
      const current = store.read(op.key);
      const sum = increment(current, op.by);
      if (typeof sum === 'object') return sum;
      let stored: Uint8Array;
      try {
        stored = encodeValue(sum);
      } catch (err) {
        return errorResultOf(err);
      }
      store.write(op.key, stored);
      return { type: 'incr', value: sum, version: index };
    }
  }
}

/** A stored number plus `by`; a missing key counts as 0. */
function increment(
  current: StoredEntry | undefined,
  by: number | bigint,
): number | bigint | ErrorResult {
  if (current === undefined) return by;
  if (current.stored[0] !== ValueTag.Msgpack) {
    return errorResult('WRONG_TYPE', 'incr: the stored value is bytes, not a number');
  }
  const value: Value = decodeValue(current.stored);
  if (typeof value === 'bigint' && typeof by === 'bigint') return value + by;
  if (typeof value === 'number' && typeof by === 'number') {
    const sum = value + by;
    if (!Number.isFinite(sum)) return errorResult('INVALID_ARGUMENT', 'incr: the sum overflows');
    if (Number.isInteger(value) && Number.isInteger(by) && !Number.isSafeInteger(sum)) {
      return errorResult('INVALID_ARGUMENT', 'incr: the sum leaves the safe integers; use bigint');
    }
    return sum;
  }
  if (typeof value === 'number' || typeof value === 'bigint') {
    return errorResult(
      'WRONG_TYPE',
      `incr: the stored value is a ${typeof value}, incremented by a ${typeof by}`,
    );
  }
  return errorResult('WRONG_TYPE', `incr: the stored value is not a number`);
}

/** The check every key of a command passes: it fits LMDB and belongs to the shard's range. */
export function keyCheck(meta: ShardMeta, keyHash: (key: Uint8Array) => number): KeyCheck {
  const whole = meta.hashLow === 0 && meta.hashHigh === 2 ** 32;
  return (key) => {
    if (key.length + shardPrefixBytes > stateKeyBytesMax) {
      return errorResult('KEY_TOO_LARGE', `key is ${key.length} bytes; too long to store`);
    }
    if (whole) return undefined;
    const hash = keyHash(key);
    if (hash >= meta.hashLow && hash < meta.hashHigh) return undefined;
    return errorResult(
      'STALE_EPOCH',
      `key hashes to ${hash}, outside the shard's range [${meta.hashLow}, ${meta.hashHigh})`,
    );
  };
}
