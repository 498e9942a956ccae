/**
 * User commands (`exec`): deterministic functions registered under a name on every replica and
 * run inside the apply transaction against one shard.
 *
 * A user command must be a pure function of the transaction's reads, its key and its arguments:
 * no clock, no randomness, no I/O, no state outside the transaction, synchronous. Every replica
 * must register the same function under the same name before applying entries that use it;
 * otherwise replicas diverge. Whatever it throws becomes a COMMAND_FAILED result and nothing it
 * wrote is kept; that keeps one bad command from stopping the shard, but an error the JavaScript
 * engine raises on one replica only (a stack overflow at a different depth, running out of
 * memory) would still make replicas diverge, which no state machine can repair.
 */
import { FlotillaError, isFlotillaError } from '../errors.js';
import { commandErrorMessageCharsMax, valueBytesMax } from '../limits.js';
import type { CommandResult, ErrorResult } from './commands.js';
import {
  errorResult,
  errorResultOf,
  isCommandError,
  type KeyCheck,
  type ShardWriter,
  WriteSet,
} from './ops.js';
import {
  checkValue,
  decodeValue,
  encodeKey,
  encodeValue,
  type Key,
  packr,
  packValue,
  type Value,
} from './value-codec.js';

/** The transaction a user command sees: the keys of its own shard, at its entry's index. */
export interface ShardTxn {
  /** The shard being written. */
  readonly shard: number;
  /** The entry's log index: the version every write of this command gets. */
  readonly index: number;
  /** The key's value (this command's own writes included), or undefined. */
  get(key: Key): Value | undefined;
  /** The key's value and version, or undefined. */
  entry(key: Key): { value: Value; version: number } | undefined;
  put(key: Key, value: Value): void;
  /** Deletes the key; true when it existed. */
  delete(key: Key): boolean;
}

/** A user command. Its return value (undefined becomes null) is the command's result. */
export type UserCommand = (tx: ShardTxn, key: Buffer, args: Value) => Value | undefined;

class Txn implements ShardTxn {
  /** The first rule the command broke; the command fails even if it caught the error. */
  violation: ErrorResult | undefined;
  /** An engine failure (not the command's fault): it aborts the whole apply transaction. */
  fatal: unknown;

  constructor(
    private readonly set: WriteSet,
    readonly shard: number,
    readonly index: number,
    private readonly check: KeyCheck,
    private readonly writesMax: number,
  ) {}

  get(key: Key): Value | undefined {
    return this.entry(key)?.value;
  }

  entry(key: Key): { value: Value; version: number } | undefined {
    const bytes = this.key(key);
    const found = this.engine(() => this.set.read(bytes));
    if (found === undefined) return undefined;
    return { value: this.engine(() => decodeValue(found.stored)), version: found.version };
  }

  put(key: Key, value: Value): void {
    const bytes = this.key(key);
    let stored: Uint8Array;
    try {
      stored = encodeValue(value);
    } catch (err) {
      throw this.violate(err);
    }
    this.countWrite();
    this.engine(() => this.set.write(bytes, stored));
  }

  delete(key: Key): boolean {
    const bytes = this.key(key);
    this.countWrite();
    return this.engine(() => this.set.remove(bytes));
  }

  private key(key: Key): Uint8Array {
    let bytes: Uint8Array;
    try {
      bytes = encodeKey(key);
    } catch (err) {
      throw this.violate(err);
    }
    const refused = this.check(bytes);
    if (refused !== undefined) {
      const code = refused.code === 'STALE_EPOCH' ? 'INVALID_ARGUMENT' : refused.code;
      const message = `user command touched a key of another shard: ${refused.message}`;
      throw this.violate(new FlotillaError(code, message));
    }
    // A copy: the command may reuse its buffer after the call.
    return Buffer.from(bytes);
  }

  private countWrite(): void {
    if (this.set.writeCount < this.writesMax) return;
    const message = `user command made more than ${this.writesMax} writes`;
    throw this.violate(new FlotillaError('INVALID_ARGUMENT', message));
  }

  private violate(err: unknown): unknown {
    if (isCommandError(err)) this.violation ??= errorResultOf(err);
    else this.fatal ??= err;
    return err;
  }

  private engine<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (!isCommandError(err)) this.fatal ??= err;
      throw err;
    }
  }
}

/** Runs a user command; its writes reach `writer` only when it succeeds. */
export function runUserCommand(
  fn: UserCommand,
  writer: ShardWriter,
  key: Uint8Array,
  args: Value,
  check: KeyCheck,
  writesMax: number,
): CommandResult {
  const set = new WriteSet(writer);
  const tx = new Txn(set, writer.shard, writer.index, check, writesMax);
  let returned: unknown;
  try {
    returned = fn(tx, Buffer.from(key), args);
  } catch (err) {
    if (tx.fatal !== undefined) throw tx.fatal;
    if (tx.violation !== undefined) return tx.violation;
    const message = err instanceof Error ? err.message : String(err);
    const kept = message.slice(0, commandErrorMessageCharsMax);
    return errorResult('COMMAND_FAILED', `user command threw: ${kept}`);
  }
  if (tx.fatal !== undefined) throw tx.fatal;
  if (tx.violation !== undefined) return tx.violation;
  if (typeof (returned as { then?: unknown } | null)?.then === 'function') {
    return errorResult(
      'COMMAND_FAILED',
      'a user command must be synchronous (it returned a Promise)',
    );
  }
  const value = normalize(returned === undefined ? null : returned);
  if (value.type === 'error') return value;
  set.commit();
  return { type: 'exec', value: value.value };
}

/** The value as it reads back from its encoding, so that a retried (deduplicated) command
 *  returns exactly what the first run returned. */
function normalize(value: unknown): { type: 'ok'; value: Value } | ErrorResult {
  try {
    checkValue(value, 0);
    const bytes = packValue(value);
    if (bytes.length > valueBytesMax) {
      return errorResult('VALUE_TOO_LARGE', `user command returned ${bytes.length} bytes`);
    }
    return { type: 'ok', value: packr.unpack(bytes) as Value };
  } catch (err) {
    if (!isFlotillaError(err)) throw err;
    return errorResult(
      'INVALID_ARGUMENT',
      `user command returned an invalid value: ${err.message}`,
    );
  }
}
