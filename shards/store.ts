/**
 * The embedded store: one node, many hash-partitioned shards, replication factor 1, no network —
 * through exactly the Raft, log and apply path a cluster uses.
 */
import { assert } from '../engine/assert.js';
import { FlotillaError } from '../engine/errors.js';
import { NodeHost } from '../engine/host.js';
import { batchOpsMax, shardsMax } from '../engine/limits.js';
import { SegmentedLog } from '../engine/log/segmented-log.js';
import { openNodeDir } from '../engine/node-dir.js';
import { entropyRandom } from '../engine/random.js';
import { type Command, type CommandResult, encodeCommand } from '../engine/state/commands.js';
import type { UserCommand } from '../engine/state/exec.js';
import { KvState } from '../engine/state/kv-state.js';
import { keyBytes } from './keys.js';
import { compareBytes, mergeSorted } from './merge.js';
import { evenRanges, keyHash, rangeIndexOf } from './partition.js';
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

/** Options of `Flotilla.open`. */
export interface OpenOptions {
  /** The store's directory (created if missing). */
  dir: string;
  /** Shards to cut the hash space into when the store is created (default 16). */
  shards?: number;
}

/** The node id of an embedded store: it is the only voter of every shard. */
const embeddedNodeId = 1;

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** An open embedded store. */
export class EmbeddedStore {
  private closed = false;

  private constructor(
    private readonly host: NodeHost,
    private readonly state: KvState,
    private readonly log: SegmentedLog,
    private readonly starts: Uint32Array,
    /** Shard ids in hash-range order: shard of range i is i + 1. */
    readonly shardCount: number,
    readonly dir: string,
  ) {}

  /** Opens (or creates) the store in `options.dir`. */
  static async open(options: OpenOptions): Promise<EmbeddedStore> {
    if (options === null || typeof options !== 'object' || typeof options.dir !== 'string') {
      throw new FlotillaError('INVALID_ARGUMENT', 'Flotilla.open needs { dir: string }');
    }
    const shards = options.shards;
    if (shards !== undefined && (!Number.isInteger(shards) || shards < 1 || shards > shardsMax)) {
      throw new FlotillaError(
        'INVALID_ARGUMENT',
        `shards must be an integer from 1 to ${shardsMax}`,
      );
    }
    const nodeDir = openNodeDir(options.dir, { nodeId: embeddedNodeId, shards });
    const count = nodeDir.identity.shards;
    const log = await SegmentedLog.open({ dir: nodeDir.paths.logDir });
    let state: KvState;
    try {
      state = KvState.open({ dir: nodeDir.paths.stateDir, keyHash });
    } catch (err) {
      await log.close();
      throw err;
    }
    const host = new NodeHost({ nodeId: embeddedNodeId, log, state, random: entropyRandom() });
    const ranges = evenRanges(count);
    const store = new EmbeddedStore(
      host,
      state,
      log,
      Uint32Array.from(ranges, (r) => r.start),
      count,
      options.dir,
    );
    try {
      for (let shard = 1; shard <= count; shard++) {
        host.addGroup({ group: shard, voters: [embeddedNodeId] });
      }
      await store.initShards(ranges);
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  /** Waits for every shard to elect this node and to own its hash range. */
  private async initShards(ranges: { start: number; end: number }[]): Promise<void> {
    const pending: Promise<unknown>[] = [];
    for (let shard = 1; shard <= this.shardCount; shard++) {
      const range = ranges[shard - 1]!;
      const owned = this.state.hashRange(shard);
      if (owned.hashLow === range.start && owned.hashHigh === range.end) {
        pending.push(this.host.whenLocalReadsReady(shard));
        continue;
      }
      pending.push(
        this.host
          .whenLeader(shard)
          .then(() =>
            this.host.propose(
              shard,
              encodeCommand({ type: 'shardRange', hashLow: range.start, hashHigh: range.end }),
            ),
          ),
      );
    }
    await Promise.all(pending);
  }

  /** The shard owning `key` (validated bytes). */
  private shardOf(key: Uint8Array): number {
    return rangeIndexOf(this.starts, keyHash(key)) + 1;
  }

  private checkOpen(): void {
    if (this.closed) throw new FlotillaError('CLOSED', 'the store is closed');
  }

  private async write(key: Uint8Array, command: Command): Promise<CommandResult> {
    this.checkOpen();
    return this.host.propose(this.shardOf(key), encodeCommand(command));
  }

  private async barrier(shard: number, consistency: Consistency | undefined): Promise<void> {
    const mode = consistency ?? 'linearizable';
    if (mode === 'stale') return;
    if (mode !== 'linearizable' && mode !== 'lease') {
      throw new FlotillaError('INVALID_ARGUMENT', `unknown consistency '${String(mode)}'`);
    }
    if (this.host.canReadLocally(shard)) return;
    await this.host.readBarrier(shard, mode === 'lease' ? 'lease' : 'safe');
  }

  /** The value of `key`, or undefined. */
  async get(key: Uint8Array | string, options: ReadOptions = {}): Promise<Value | undefined> {
    return (await this.getEntry(key, options))?.value;
  }

  /** The value of `key` with its version (the log index of its last write), or undefined. */
  async getEntry(key: Uint8Array | string, options: ReadOptions = {}): Promise<Entry | undefined> {
    this.checkOpen();
    const bytes = keyBytes(key);
    const shard = this.shardOf(bytes);
    await this.barrier(shard, options.consistency);
    const stored = this.state.get(shard, bytes);
    return stored === undefined ? undefined : { value: stored.value, version: stored.version };
  }

  /** Stores `value` under `key`; resolves with the write's version once it is durable. */
  async put(key: Uint8Array | string, value: Value): Promise<number> {
    const bytes = keyBytes(key);
    const result = await this.write(bytes, { type: 'put', key: bytes, value });
    assert(result.type === 'put', 'a put yields a put result');
    return result.version;
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
   * keys a common hash tag, e.g. `{user1}.name` and `{user1}.mail`).
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
      const s = this.shardOf(bytes);
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
    this.checkOpen();
    const result = await this.host.propose(shard, encodeCommand({ type: 'batch', ops: encoded }));
    assert(result.type === 'batch', 'a batch yields a batch result');
    if (!result.ok) {
      throw new FlotillaError(
        'INVALID_ARGUMENT',
        `batch operation ${result.failedOp} failed, so nothing was applied`,
        { reason: JSON.stringify(result.failure) },
      );
    }
    return result.results.map(opValue);
  }

  /**
   * Registers a deterministic user command, applied inside the apply transaction of its key's
   * shard. Register the same commands, under the same names, before using `exec`.
   */
  defineCommand(name: string, fn: UserCommand): void {
    this.checkOpen();
    this.state.defineCommand(name, fn);
  }

  /** Runs the user command `name` on `key`'s shard with `args`; resolves with its result. */
  async exec(name: string, key: Uint8Array | string, args?: Value): Promise<Value> {
    const bytes = keyBytes(key);
    if (typeof name !== 'string' || name === '') {
      throw new FlotillaError('INVALID_ARGUMENT', 'exec needs a command name');
    }
    const result = await this.write(bytes, { type: 'exec', name, key: bytes, args });
    assert(result.type === 'exec', 'an exec yields an exec result');
    return result.value;
  }

  /**
   * The keys of `range` in key byte order (descending with `reverse`), merged across shards, as
   * `[key, value]` pairs. Keys come back as strings when the range was given with strings (or
   * is empty) and as Buffers when given with byte arrays. Each shard's part is read from one
   * consistent snapshot; the scan as a whole is not one atomic snapshot across shards.
   */
  async *scan(
    range: ScanRange = {},
    options: ScanOptions = {},
  ): AsyncGenerator<[string | Uint8Array, Value]> {
    this.checkOpen();
    const { limit, reverse } = checkScan(range, options);
    const asBytes = Object.values(range).some((v) => v instanceof Uint8Array);
    const shards = Array.from({ length: this.shardCount }, (_, i) => i + 1);
    await Promise.all(shards.map((s) => this.barrier(s, options.consistency)));
    const sources = shards.map((s) => this.state.scan(s, range, { limit, reverse }));
    const order = reverse
      ? (a: { key: Buffer }, b: { key: Buffer }) => compareBytes(b.key, a.key)
      : (a: { key: Buffer }, b: { key: Buffer }) => compareBytes(a.key, b.key);
    let left = limit;
    for (const item of mergeSorted(sources, order)) {
      if (left-- <= 0) return;
      yield [asBytes ? item.key : utf8.decode(item.key), item.value];
    }
  }

  /**
   * The committed change feed: every put and delete after the watch starts (or after the event
   * whose `cursor` is passed as `from`), in commit order per shard. Survives restarts: a
   * cursor stays valid while the shards still retain changes after it (else COMPACTED).
   */
  watch(options: WatchOptions = {}): AsyncIterableIterator<WatchEvent> & { cursor(): string } {
    this.checkOpen();
    const prefix = options.prefix === undefined ? undefined : keyBytes(options.prefix);
    const asBytes = options.prefix instanceof Uint8Array;
    return new Watcher(this.state, this.shardCount, { prefix, from: options.from, asBytes });
  }

  /** Facts about the store for humans: shards, leadership, log and state. */
  async status(): Promise<Record<string, unknown>> {
    this.checkOpen();
    let keys = 0;
    let leaders = 0;
    for (let shard = 1; shard <= this.shardCount; shard++) {
      keys += this.state.count(shard);
      if (this.host.isLeader(shard)) leaders++;
    }
    return { dir: this.dir, shards: this.shardCount, leaders, keys, log: this.log.stats() };
  }

  /** Flushes and closes the store; later calls reject with CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.host.close();
    await this.state.flush();
    await this.log.close();
    await this.state.close();
  }
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

function checkScan(range: ScanRange, options: ScanOptions): { limit: number; reverse: boolean } {
  if (range === null || typeof range !== 'object') {
    throw new FlotillaError('INVALID_ARGUMENT', 'scan needs { prefix } or { start, end }');
  }
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  if (!(limit >= 0)) throw new FlotillaError('INVALID_ARGUMENT', 'scan limit must be >= 0');
  return { limit, reverse: options.reverse === true };
}
