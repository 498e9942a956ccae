/**
 * The store API — get, put, delete, cas, incr, batch, exec, scan, watch — over any ShardAccess:
 * the embedded store's in-process node, or a remote client's router. Validation, routing by
 * key, command building, the cross-shard scan merge and the watch feed live here once.
 */
import { assert } from '../engine/assert.js';
import { FlotillaError } from '../engine/errors.js';
import { batchOpsMax } from '../engine/limits.js';
import type { Change } from '../engine/state/change-feed.js';
import type { Command, CommandResult } from '../engine/state/commands.js';
import type { UserCommand } from '../engine/state/exec.js';
import type { ScanEntry, StoredValue } from '../engine/state/kv-state.js';
import { keyBytes } from './keys.js';
import { compareBytes, mergeSortedAsync } from './merge.js';
import type {
  BatchOp,
  Consistency,
  Entry,
  Expected,
  ReadOptions,
  ScanOptions,
  ScanRange,
  Value,
  WatchEvent,
  WatchOptions,
} from './types.js';
import { Watcher } from './watch.js';

/** Keys per scan page fetched from one shard. */
export const scanPageEntries = 256;

/** Where the changes of a watch come from. */
export interface ChangeSource {
  /** Changes of `shard` after `afterIndex`, in commit order (COMPACTED when too old). */
  changes(shard: number, afterIndex: number, limit: number): Change[] | Promise<Change[]>;
  /** The applied index a new feed of `shard` starts after. */
  appliedIndex(shard: number): number | Promise<number>;
  /** Calls `listener` with shards that have new changes; returns the unsubscribe function. */
  onChanges(listener: (shards: ReadonlySet<number>) => void): () => void;
}

/** What the store API needs from the node(s) behind it. */
export interface ShardAccess extends ChangeSource {
  /** Every shard id, in hash-range order. */
  shardIds(): number[];
  /** The shard owning a (validated) key. */
  shardOf(key: Uint8Array): number;
  propose(shard: number, command: Command): Promise<CommandResult>;
  read(shard: number, key: Uint8Array, consistency: Consistency): Promise<StoredValue | undefined>;
  /**
   * Reads `key` (not yet validated) at once when its shard can serve `consistency` here without
   * waiting; null when it cannot (the caller then goes through `read`). Optional: a remote
   * access never can.
   */
  readNow?(key: Uint8Array | string, consistency: Consistency): StoredValue | undefined | null;
  /** Up to `limit` keys of `shard` within [start, end) in key order (descending if reverse). */
  scanPage(
    shard: number,
    bounds: { start?: Uint8Array; end?: Uint8Array },
    options: { limit: number; reverse: boolean; consistency: Consistency },
  ): Promise<ScanEntry[]>;
  defineCommand(name: string, fn: UserCommand): void;
  status(): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

/** The version a put's result carries. */
function putVersion(result: CommandResult): number {
  assert(result.type === 'put', 'a put yields a put result');
  return result.version;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** The public operations of a store; see the module comment. */
export class StoreApi {
  private closed = false;

  constructor(protected readonly access: ShardAccess) {}

  protected checkOpen(): void {
    if (this.closed) throw new FlotillaError('CLOSED', 'the store is closed');
  }

  /** Proposes `command` to the shard of `key`. It may throw: its callers are async functions,
   *  which turn that into their rejection (one promise per write fewer than being async too). */
  private write(key: Uint8Array, command: Command): Promise<CommandResult> {
    this.checkOpen();
    return this.access.propose(this.access.shardOf(key), command);
  }

  /** The shard that holds `key` (by its hash, or its {tag}'s hash). */
  shardOf(key: Uint8Array | string): number {
    return this.access.shardOf(keyBytes(key));
  }

  /** The value of `key`, or undefined. */
  get(key: Uint8Array | string, options: ReadOptions = {}): Promise<Value | undefined> {
    let later: Promise<StoredValue | undefined>;
    try {
      const now = this.readNow(key, options);
      if (now !== null) return Promise.resolve(now?.value);
      later = this.readLater(key, options);
    } catch (err) {
      return Promise.reject(err);
    }
    return later.then(storedValue);
  }

  /** The value of `key` with its version (the log index of its last write), or undefined. */
  getEntry(key: Uint8Array | string, options: ReadOptions = {}): Promise<Entry | undefined> {
    let later: Promise<StoredValue | undefined>;
    try {
      const now = this.readNow(key, options);
      if (now !== null) return Promise.resolve(entryOf(now));
      later = this.readLater(key, options);
    } catch (err) {
      return Promise.reject(err);
    }
    return later.then(entryOf);
  }

  /** A read served synchronously when the access can (the embedded store's common case). */
  private readNow(key: Uint8Array | string, options: ReadOptions): StoredValue | undefined | null {
    this.checkOpen();
    const consistency = checkConsistency(options.consistency);
    return this.access.readNow === undefined ? null : this.access.readNow(key, consistency);
  }

  /** A read through the access's `read`. Not async: it may throw, and its callers catch that
   *  (one promise per read fewer than an async frame of its own). */
  private readLater(
    key: Uint8Array | string,
    options: ReadOptions,
  ): Promise<StoredValue | undefined> {
    const bytes = keyBytes(key);
    const consistency = checkConsistency(options.consistency);
    return this.access.read(this.access.shardOf(bytes), bytes, consistency);
  }

  /** Stores `value` under `key`; resolves with the write's version once it is durable. */
  put(key: Uint8Array | string, value: Value): Promise<number> {
    // Not async: one chained promise per put instead of an async frame saved at its await (the
    // hottest write path). Errors thrown here still reach the caller as the rejection.
    let written: Promise<CommandResult>;
    try {
      const bytes = keyBytes(key);
      written = this.write(bytes, { type: 'put', key: bytes, value });
    } catch (err) {
      return Promise.reject(err);
    }
    return written.then(putVersion);
  }

  /** Deletes `key`; resolves with whether it existed. */
  async delete(key: Uint8Array | string): Promise<boolean> {
    const bytes = keyBytes(key);
    const result = await this.write(bytes, { type: 'delete', key: bytes });
    assert(result.type === 'delete', 'a delete yields a delete result');
    return result.existed;
  }

  /**
   * Stores `value` only if the key's current state matches `expected` ({ version }, 0 = must
   * not exist, or { value }); resolves with whether it did.
   */
  async cas(key: Uint8Array | string, expected: Expected, value: Value): Promise<boolean> {
    const bytes = keyBytes(key);
    checkExpected(expected);
    const result = await this.write(bytes, { type: 'cas', key: bytes, expected, value });
    assert(result.type === 'cas', 'a cas yields a cas result');
    return result.ok;
  }

  /** Adds `by` (default 1) to the number stored at `key` (missing = 0); resolves with the sum. */
  async incr(key: Uint8Array | string, by: number | bigint = 1): Promise<number | bigint> {
    const bytes = keyBytes(key);
    if (typeof by !== 'bigint' && !(typeof by === 'number' && Number.isFinite(by))) {
      throw new FlotillaError('INVALID_ARGUMENT', 'incr needs a finite number or a bigint');
    }
    const result = await this.write(bytes, { type: 'incr', key: bytes, by });
    assert(result.type === 'incr', 'an incr yields an incr result');
    return result.value;
  }

  /**
   * Applies `ops` atomically: all or nothing. Every key must live in one shard (give related
   * keys a common hash tag, e.g. `{user1}.name` and `{user1}.mail`). Resolves with one result
   * per operation: a put's version, a delete's existed, a cas's ok, an incr's new value.
   */
  async batch(ops: BatchOp[]): Promise<unknown[]> {
    this.checkOpen();
    if (!Array.isArray(ops) || ops.length === 0) {
      throw new FlotillaError('INVALID_ARGUMENT', 'batch needs a non-empty array of operations');
    }
    if (ops.length > batchOpsMax) {
      throw new FlotillaError(
        'INVALID_ARGUMENT',
        `a batch holds at most ${batchOpsMax} operations`,
      );
    }
    let shard = 0;
    const encoded = ops.map((op, i) => {
      if (op === null || typeof op !== 'object') {
        throw new FlotillaError('INVALID_ARGUMENT', `batch operation ${i} is not an object`);
      }
      const bytes = keyBytes(op.key);
      const s = this.access.shardOf(bytes);
      if (shard !== 0 && s !== shard) {
        throw new FlotillaError(
          'INVALID_ARGUMENT',
          `batch keys span shards ${shard} and ${s}: an atomic batch must stay in one shard; ` +
            'give its keys a common hash tag such as {order42}',
        );
      }
      shard = s;
      return toStateOp(op, bytes, i);
    });
    const result = await this.access.propose(shard, { type: 'batch', ops: encoded });
    assert(result.type === 'batch', 'a batch yields a batch result');
    if (!result.ok) {
      throw new FlotillaError(
        'INVALID_ARGUMENT',
        `batch operation ${result.failedOp} failed, so nothing was applied: ` +
          JSON.stringify(result.failure, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)),
        { reason: result.failure.type },
      );
    }
    return result.results.map(opValue);
  }

  /**
   * Registers a deterministic user command, applied inside the apply transaction of its key's
   * shard. Every replica must register the same commands under the same names.
   */
  defineCommand(name: string, fn: UserCommand): void {
    this.checkOpen();
    this.access.defineCommand(name, fn);
  }

  /** Runs the user command `name` on `key`'s shard with `args`; resolves with its result. */
  async exec(name: string, key: Uint8Array | string, args?: Value): Promise<Value> {
    const bytes = keyBytes(key);
    if (typeof name !== 'string' || name === '') {
      throw new FlotillaError('INVALID_ARGUMENT', 'exec needs a command name');
    }
    const command: Command = { type: 'exec', name, key: bytes };
    if (args !== undefined) command.args = args;
    const result = await this.write(bytes, command);
    assert(result.type === 'exec', 'an exec yields an exec result');
    return result.value;
  }

  /**
   * The keys of `range` in key byte order (descending with `reverse`), merged across shards, as
   * `[key, value]` pairs. Keys come back as strings when the range was given with strings (or
   * is empty) and as Buffers when given with byte arrays. Each page of a shard is one consistent
   * read; the scan as a whole is not one atomic snapshot.
   */
  async *scan(
    range: ScanRange = {},
    options: ScanOptions = {},
  ): AsyncGenerator<[string | Uint8Array, Value]> {
    this.checkOpen();
    const bounds = scanBounds(range);
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    if (!(limit >= 0)) throw new FlotillaError('INVALID_ARGUMENT', 'scan limit must be >= 0');
    const reverse = options.reverse === true;
    const consistency = checkConsistency(options.consistency);
    const asBytes = Object.values(range).some((v) => v instanceof Uint8Array);
    const pageLimit = Math.min(scanPageEntries, limit);
    const sources = this.access
      .shardIds()
      .map((s) => this.shardPages(s, bounds, { limit: pageLimit, reverse, consistency }));
    const order = reverse
      ? (a: ScanEntry, b: ScanEntry) => compareBytes(b.key, a.key)
      : (a: ScanEntry, b: ScanEntry) => compareBytes(a.key, b.key);
    let left = limit;
    if (left <= 0) return;
    for await (const item of mergeSortedAsync(sources, order)) {
      yield [asBytes ? item.key : utf8.decode(item.key), item.value];
      if (--left <= 0) return;
    }
  }

  /** One shard's keys within `bounds`, fetched a page at a time. */
  private async *shardPages(
    shard: number,
    bounds: { start?: Uint8Array; end?: Uint8Array },
    options: { limit: number; reverse: boolean; consistency: Consistency },
  ): AsyncGenerator<ScanEntry> {
    let { start, end } = bounds;
    for (;;) {
      const page = await this.access.scanPage(shard, { start, end }, options);
      yield* page;
      if (page.length < options.limit) return;
      const last = page.at(-1)!.key;
      if (options.reverse) end = last;
      else start = Buffer.concat([last, Buffer.of(0)]);
    }
  }

  /**
   * The committed change feed: every put and delete after the watch starts (or after the event
   * whose `cursor` is passed as `from`), in commit order per shard. Survives restarts: a cursor
   * stays valid while the shards retain changes after it (else COMPACTED).
   */
  watch(options: WatchOptions = {}): AsyncIterableIterator<WatchEvent> & { cursor(): string } {
    this.checkOpen();
    const prefix = options.prefix === undefined ? undefined : keyBytes(options.prefix);
    const asBytes = options.prefix instanceof Uint8Array;
    return new Watcher(this.access, this.access.shardIds(), {
      prefix,
      from: options.from,
      asBytes,
    });
  }

  /** Facts about the store for humans. */
  async status(): Promise<Record<string, unknown>> {
    this.checkOpen();
    return this.access.status();
  }

  /** Closes the store; later calls reject with CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.access.close();
  }
}

function storedValue(stored: StoredValue | undefined): Value | undefined {
  return stored?.value;
}

function entryOf(stored: StoredValue | undefined): Entry | undefined {
  return stored === undefined ? undefined : { value: stored.value, version: stored.version };
}

function checkConsistency(consistency: unknown): Consistency {
  if (consistency === undefined) return 'linearizable';
  if (consistency === 'linearizable' || consistency === 'lease' || consistency === 'stale') {
    return consistency;
  }
  throw new FlotillaError(
    'INVALID_ARGUMENT',
    `unknown consistency ${JSON.stringify(consistency)}; use linearizable, lease or stale`,
  );
}

function checkExpected(expected: Expected): void {
  const ok =
    expected !== null &&
    typeof expected === 'object' &&
    (('version' in expected && Number.isSafeInteger(expected.version) && expected.version >= 0) ||
      'value' in expected);
  if (!ok) {
    throw new FlotillaError(
      'INVALID_ARGUMENT',
      'cas needs expected = { version } (0 = must not exist) or { value }',
    );
  }
}

function toStateOp(op: BatchOp, key: Uint8Array, i: number) {
  switch (op.type) {
    case 'put':
      return { type: 'put' as const, key, value: op.value };
    case 'delete':
      return { type: 'delete' as const, key };
    case 'incr':
      return { type: 'incr' as const, key, by: op.by ?? 1 };
    case 'cas':
      checkExpected(op.expected);
      return { type: 'cas' as const, key, expected: op.expected, value: op.value };
    default:
      throw new FlotillaError(
        'INVALID_ARGUMENT',
        `batch operation ${i} has unknown type ${JSON.stringify((op as { type?: unknown }).type)}`,
      );
  }
}

function opValue(r: CommandResult): unknown {
  switch (r.type) {
    case 'put':
      return r.version;
    case 'delete':
      return r.existed;
    case 'cas':
      return r.ok;
    case 'incr':
      return r.value;
    default:
      return r;
  }
}

/** The smallest key greater than every key starting with `prefix`; undefined if none. */
export function prefixEnd(prefix: Uint8Array): Uint8Array | undefined {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return undefined;
}

/** A scan range as [start, end) byte bounds (either side open). */
export function scanBounds(range: ScanRange): { start?: Uint8Array; end?: Uint8Array } {
  if (range === null || typeof range !== 'object') {
    throw new FlotillaError('INVALID_ARGUMENT', 'scan needs { prefix } or { start, end }');
  }
  if ('prefix' in range) {
    if (range.prefix === '' || (range.prefix instanceof Uint8Array && range.prefix.length === 0)) {
      return {};
    }
    const start = keyBytes(range.prefix);
    const end = prefixEnd(start);
    return end === undefined ? { start } : { start, end };
  }
  const bounds: { start?: Uint8Array; end?: Uint8Array } = {};
  if (range.start !== undefined) bounds.start = keyBytes(range.start);
  if (range.end !== undefined) bounds.end = keyBytes(range.end);
  return bounds;
}
