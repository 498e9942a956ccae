/**
 * KvState: the replicated key-value state machine of one node, for every shard it hosts, in one
 * LMDB environment.
 *
 * The host feeds it committed entries of many shards at once (`applyBatch`, one LMDB write
 * transaction per event-loop turn); each shard's applied index and term are written in that same
 * transaction, so a replay after a crash skips what was applied and nothing is applied twice.
 * Reads are synchronous and see the last committed batch. See durability.ts for when commits
 * reach the disk, layout.ts for what is stored, commands.ts for what entries mean.
 */
import { closeSync, existsSync, mkdirSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { open, type RootDatabase, type Transaction } from 'lmdb';
import { hashKey } from '../../wasm/index.js';
import { FlotillaError } from '../errors.js';
import {
  changeBytesMax,
  changeListenersMax,
  changesMax,
  changesReadMax,
  commandNameBytesMax,
  execWritesMax,
  keyBytesMax,
  sessionExpiryEntries,
  sessionExpiryMs,
  sessionsPerShardMax,
  sessionTablesMirroredMax,
  snapshotInstallsMax,
  stateFormatVersion,
  statePageBytes,
} from '../limits.js';
import type { ConfState } from '../raft/types.js';
import { Applier, type ApplyItem } from './apply.js';
import { type Change, ChangeFeed, materialize, type RawChange } from './change-feed.js';
import type { CommandResult } from './commands.js';
import type { BinaryDb, StateDbs, StateLimits } from './dbs.js';
import { type Durability, UnsyncedMarker } from './durability.js';
import type { UserCommand } from './exec.js';
import {
  dataHeaderBytes,
  decodeMeta,
  emptyMeta,
  encodeMeta,
  prefixedKey,
  readU64,
  Scratch,
  type ShardMeta,
  shardEnd,
  shardPrefix,
  shardPrefixBytes,
} from './layout.js';
import { SessionTables } from './sessions.js';
import { dropShardRange, exportChunks, StagedStream, shardChecksum, swapIn } from './snapshot.js';
import type { SnapshotHeader } from './snapshot-format.js';
import {
  decodeValue,
  decodeValueAt,
  encodeKeyInto,
  invalid,
  type Key,
  type Value,
} from './value-codec.js';

/** How to open a KvState. */
export interface KvStateOptions {
  /** The LMDB environment directory (created if missing). */
  dir: string;
  /** When commits reach the disk; default 'deferred' (see durability.ts). */
  durability?: Durability;
  /** The routing hash of a key, used to check that keys belong to their shard's hash range.
   *  Must be the router's function, identical on every replica; default xxh32 of the key. */
  keyHash?: (key: Uint8Array) => number;
  /** Overrides of the limits in engine/limits.ts (replicated ones must match cluster-wide). */
  limits?: Partial<StateLimits>;
}

/** A scan range: every key with `prefix`, or keys in [start, end) (either side open). */
export type ScanRange = { prefix: Key } | { start?: Key; end?: Key };

/** Scan options: at most `limit` entries, in descending key order when `reverse`. */
export interface ScanOptions {
  limit?: number;
  reverse?: boolean;
}

/** A stored key as read back. */
export interface StoredValue {
  value: Value;
  /** The log index of the key's last write. */
  version: number;
}

/** One scanned key. */
export interface ScanEntry extends StoredValue {
  key: Buffer;
}

/** Told about the changes of each applied batch, after it committed. */
export type ChangeListener = (changes: readonly Change[]) => void;

const formatKey = Buffer.from('format');

/** Key of a shard's Raft membership in the system database: "conf" ‖ shard u32 BE. HARD. */
function confKey(shard: number): Buffer {
  const key = Buffer.alloc(8);
  key.write('conf', 0, 'latin1');
  key.writeUInt32BE(shard, 4);
  return key;
}
const formatMagic = Buffer.from('FLOTILLA-STATE');
const dbNames = [
  'data',
  'meta',
  'changes',
  'sessions',
  'system',
  'stagingData',
  'stagingSessions',
] as const;

/** The state machine of one node. */
export class KvState {
  /** Committed metadata of every shard that has any. */
  private readonly metas = new Map<number, ShardMeta>();
  /** Scratch key of point reads (shard prefix ‖ key), reused to spare an allocation per get. */
  private readonly lookupKey = Buffer.allocUnsafe(shardPrefixBytes + keyBytesMax);
  /** Raft memberships read or written so far (see confState). */
  private readonly confs = new Map<number, ConfState>();
  private readonly commands = new Map<string, UserCommand>();
  private readonly listeners = new Set<ChangeListener>();
  private readonly installs = new Set<number>();
  private readonly readers = new Set<Transaction>();
  private readonly scratch = new Scratch();
  private readonly feed: ChangeFeed;
  /** Mirrors of the session tables; forgotten wherever LMDB changes other than by applying. */
  private readonly sessions: SessionTables;
  private nextStagingId = 1;
  private closed = false;

  private constructor(
    private readonly dbs: StateDbs,
    private readonly limits: StateLimits,
    private readonly keyHash: (key: Uint8Array) => number,
    private readonly marker: UnsyncedMarker,
    private readonly deferred: boolean,
  ) {
    this.sessions = new SessionTables(dbs, this.scratch, limits.sessionTablesMirroredMax);
    for (const { key, value } of dbs.meta.getRange({})) {
      const meta = decodeMeta(value);
      if (meta === undefined) throw corruptState(`shard metadata of ${key.toString('hex')}`);
      this.metas.set(key.readUInt32BE(0), meta);
    }
    this.feed = new ChangeFeed(dbs, limits, (shard) => this.metas.get(shard));
    // Staged snapshot chunks of installs that never finished are garbage after a restart.
    const staged = (db: BinaryDb) => db.getKeysCount({ limit: 1 }) > 0;
    if (staged(dbs.stagingData) || staged(dbs.stagingSessions)) {
      this.beforeCommit();
      dbs.stagingData.clearSync();
      dbs.stagingSessions.clearSync();
    }
  }

  /** Opens (or creates) the state in `options.dir`. Throws VERSION_MISMATCH or CORRUPT_STATE. */
  static open(options: KvStateOptions): KvState {
    const durability = options.durability ?? 'deferred';
    mkdirSync(options.dir, { recursive: true });
    const marker = new UnsyncedMarker(options.dir);
    checkLmdbFile(join(options.dir, 'data.mdb'));
    let env: RootDatabase;
    try {
      env = open({
        path: options.dir,
        pageSize: statePageBytes,
        maxDbs: dbNames.length + 2,
        noSync: durability === 'deferred',
        // No writable map: it halved the apply's CPU per put, but under a heavy put load lmdb's
        // commit then failed with MDB_BAD_TXN ("reserved freelist had a data entry with
        // zero-size") and stopped the node.
        overlappingSync: false,
      });
    } catch (err) {
      throw corruptState(`cannot open LMDB in ${options.dir}`, err);
    }
    const deferred = durability === 'deferred';
    try {
      checkFormat(env, options.dir, () => {
        if (deferred) marker.beforeCommit();
      });
      const dbs = openDbs(env);
      const keyHash = options.keyHash ?? ((key: Uint8Array) => hashKey(key));
      return new KvState(dbs, resolveLimits(options.limits), keyHash, marker, deferred);
    } catch (err) {
      void env.close();
      throw err;
    }
  }

  /** Registers a user command under `name`. Every replica must register the same ones. */
  defineCommand(name: string, fn: UserCommand): void {
    if (typeof name !== 'string' || name.length === 0) throw invalid('a command needs a name');
    if (Buffer.byteLength(name) > commandNameBytesMax) throw invalid('command name too long');
    if (typeof fn !== 'function') throw invalid('a command must be a function');
    if (this.commands.has(name)) throw invalid(`command "${name}" is already defined`);
    this.commands.set(name, fn);
  }

  /**
   * Applies committed entries of any shards in one LMDB transaction and returns one result per
   * item, in order. Per shard, items must come in log order; an entry at or below the shard's
   * applied index is skipped. Either every item is applied (with the applied indexes) or, when
   * an engine failure throws, none is.
   */
  applyBatch(items: readonly ApplyItem[], confs?: ReadonlyMap<number, ConfState>): CommandResult[] {
    this.checkOpen();
    if (items.length === 0 && (confs === undefined || confs.size === 0)) return [];
    const work = new Map<number, ShardMeta>();
    const collected: RawChange[] = [];
    const listening = this.listeners.size > 0;
    // The changes grouped by shard, each group in commit order: the transaction's one block.
    const groups = new Map<number, RawChange[]>();
    let changeCount = 0;
    const metaOf = (shard: number): ShardMeta => {
      let meta = work.get(shard);
      if (meta === undefined) {
        const committed = this.metas.get(shard);
        // A new shard's history starts at this transaction's block.
        meta = committed ? { ...committed } : { ...emptyMeta(), changesFrom: this.feed.position };
        work.set(shard, meta);
      }
      return meta;
    };
    const applier = new Applier({
      dbs: this.dbs,
      scratch: this.scratch,
      limits: this.limits,
      sessions: this.sessions,
      keyHash: this.keyHash,
      commands: this.commands,
      metaOf,
      record: (change) => {
        const group = groups.get(change.shard);
        if (group === undefined) groups.set(change.shard, [change]);
        else group.push(change);
        changeCount += 1;
        if (listening) collected.push(change);
      },
    });
    // A trim raises the compacted index of shards it finds, if they still exist.
    const metaFor = (shard: number) =>
      work.has(shard) || this.metas.has(shard) ? metaOf(shard) : undefined;
    this.beforeCommit();
    this.feed.begin();
    let results: CommandResult[];
    try {
      results = this.dbs.env.transactionSync(() => {
        const out = items.map((item) => applier.apply(item));
        if (changeCount > 0) this.feed.append(this.scratch, groups, changeCount, metaFor);
        for (const [shard, meta] of work) {
          this.dbs.meta.putSync(this.scratch.shardKey(shard), this.scratch.metaRecord(meta));
        }
        for (const [shard, conf] of confs ?? []) {
          this.dbs.system.putSync(confKey(shard), Buffer.from(JSON.stringify(conf)));
        }
        return out;
      });
    } catch (err) {
      this.feed.abort();
      // The session mirrors were written through a transaction that is now rolled back.
      for (const shard of work.keys()) this.sessions.forget(shard);
      throw err;
    }
    for (const [shard, meta] of work) this.metas.set(shard, meta);
    for (const [shard, conf] of confs ?? []) this.confs.set(shard, conf);
    this.feed.commit();
    if (collected.length > 0) this.notify(collected);
    return results;
  }

  /**
   * The Raft membership of the shard as of its applied index (stored by applyBatch with the
   * entries that changed it), or undefined if none was ever stored.
   */
  confState(shard: number): ConfState | undefined {
    this.checkOpen();
    const cached = this.confs.get(shard);
    if (cached !== undefined) return cached;
    const raw = this.dbs.system.getBinary(confKey(shard));
    if (raw === undefined) return undefined;
    let conf: ConfState;
    try {
      conf = JSON.parse(raw.toString('utf8')) as ConfState;
    } catch (err) {
      throw corruptState(`membership of shard ${shard}`, err);
    }
    this.confs.set(shard, conf);
    return conf;
  }

  /** The key's value and version, or undefined. */
  get(shard: number, key: Key): StoredValue | undefined {
    this.checkOpen();
    const length = encodeKeyInto(key, this.lookupKey, shardPrefixBytes);
    return this.lookup(shard, length);
  }

  /**
   * Reads a key whose shard `route` picks from the key's bytes: the key is encoded once, into a
   * reused buffer, for both (the hot read path of the embedded store). `route` returns the
   * shard, or -1 when the read cannot be served here now, and then so does this (null).
   */
  getRouted(key: Key, route: (bytes: Uint8Array) => number): StoredValue | undefined | null {
    this.checkOpen();
    const lookup = this.lookupKey;
    const length = encodeKeyInto(key, lookup, shardPrefixBytes);
    const shard = route(lookup.subarray(shardPrefixBytes, shardPrefixBytes + length));
    if (shard < 0) return null;
    return this.lookup(shard, length);
  }

  /** Reads the key of `length` bytes already written after the prefix of `lookupKey`. */
  private lookup(shard: number, length: number): StoredValue | undefined {
    const lookup = this.lookupKey;
    lookup.writeUInt32BE(shard, 0);
    // getBinaryFast hands back a buffer reused by the next read: decode (copy) before returning.
    const record = this.dbs.data.getBinaryFast(lookup.subarray(0, shardPrefixBytes + length));
    if (record === undefined) return undefined;
    return { value: decodeValueAt(record, dataHeaderBytes), version: readU64(record, 0) };
  }

  /** The index of the last entry the shard applied (0: none). */
  appliedIndex(shard: number): number {
    this.checkOpen();
    return this.metas.get(shard)?.appliedIndex ?? 0;
  }

  /** The index and term of the last entry the shard applied. */
  applied(shard: number): { index: number; term: number } {
    this.checkOpen();
    const meta = this.metas.get(shard);
    return { index: meta?.appliedIndex ?? 0, term: meta?.appliedTerm ?? 0 };
  }

  /** The shard's hash range: it owns keys whose routing hash is in [hashLow, hashHigh). */
  hashRange(shard: number): { hashLow: number; hashHigh: number } {
    this.checkOpen();
    const meta = this.metas.get(shard) ?? emptyMeta();
    return { hashLow: meta.hashLow, hashHigh: meta.hashHigh };
  }

  /**
   * How many keys the shard holds: counted in LMDB on each call (O(keys of the shard), in native
   * code), since the apply keeps no running count (a put would need a read before its write).
   */
  count(shard: number): number {
    this.checkOpen();
    return this.dbs.data.getKeysCount({ start: shardPrefix(shard), end: shardEnd(shard) });
  }

  /** Every shard with state on this node, ascending. */
  shards(): number[] {
    this.checkOpen();
    return [...this.metas.keys()].sort((a, b) => a - b);
  }

  /**
   * The shard's keys in a range, in key byte order (descending when `reverse`), from one
   * consistent read snapshot held until the iteration ends: exhaust it or break out of it.
   */
  *scan(shard: number, range: ScanRange = {}, options: ScanOptions = {}): Generator<ScanEntry> {
    this.checkOpen();
    const { start, end } = scanBounds(shard, range);
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    if (!(limit >= 0)) throw invalid('scan limit must be >= 0');
    if (limit === 0) return;
    const query = options.reverse
      ? { start: end, end: start, reverse: true, exclusiveStart: true, inclusiveEnd: true }
      : { start, end };
    const finite = Number.isFinite(limit) ? { limit } : {};
    const entries = this.dbs.data.getRange({ ...query, ...finite })[Symbol.iterator]();
    let finished = false;
    try {
      for (;;) {
        // After close() the snapshot is gone: say CLOSED rather than let LMDB fail obscurely.
        this.checkOpen();
        const next = entries.next();
        if (next.done) {
          finished = true;
          return;
        }
        const { key, value } = next.value;
        yield {
          key: key.subarray(shardPrefixBytes),
          value: decodeValue(value.subarray(dataHeaderBytes)),
          version: readU64(value, 0),
        };
      }
    } finally {
      if (!finished && !this.closed) entries.return?.();
    }
  }

  /**
   * A checksum of the shard's keys, values, versions, sessions, applied index/term and hash
   * range: replicas that applied the same entries have equal checksums.
   */
  checksum(shard: number): number {
    return this.withReader((txn) => shardChecksum(this.dbs, shard, this.metaAt(shard, txn), txn));
  }

  /**
   * The shard's changes after index `afterIndex`, in commit order, at most `limit`. Throws
   * COMPACTED when the feed no longer holds changes right after `afterIndex`: re-read the state
   * (scan) and resume from its applied index; INVALID_ARGUMENT for a cursor that is not an index
   * or a limit that is not a number >= 0.
   */
  changes(shard: number, afterIndex: number, limit = changesReadMax): Change[] {
    this.checkOpen();
    if (!Number.isSafeInteger(afterIndex) || afterIndex < 0) {
      throw invalid('a change cursor is an index >= 0');
    }
    if (!(limit >= 0)) throw invalid('a change read limit must be >= 0');
    return this.feed.read(shard, this.metas.get(shard) ?? emptyMeta(), afterIndex, limit);
  }

  /**
   * Calls `listener` after each applied batch commits, with its changes in commit order. A
   * listener must not throw: an exception is rethrown asynchronously (an uncaught exception)
   * after the other listeners ran; the batch stays applied. Returns the unsubscribe function.
   */
  onChanges(listener: ChangeListener): () => void {
    this.checkOpen();
    if (this.listeners.size >= changeListenersMax) {
      throw new FlotillaError('BUSY', `at most ${changeListenersMax} change listeners`);
    }
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Streams a consistent snapshot of the shard as chunks (see snapshot-format.ts). */
  async *exportSnapshot(shard: number): AsyncGenerator<Uint8Array> {
    this.checkOpen();
    const txn = this.dbs.env.useReadTransaction();
    this.readers.add(txn);
    try {
      const meta = this.metaAt(shard, txn);
      yield* exportChunks(this.dbs, shard, meta, txn, () => this.checkOpen());
    } finally {
      if (this.readers.delete(txn)) txn.done();
    }
  }

  /** Starts receiving a snapshot for `shard`. At most `snapshotInstallsMax` at once (BUSY). */
  beginInstall(shard: number): SnapshotInstall {
    this.checkOpen();
    if (this.installs.size >= snapshotInstallsMax) {
      throw new FlotillaError('BUSY', `at most ${snapshotInstallsMax} snapshot installs at once`);
    }
    const stagingId = this.nextStagingId++;
    this.installs.add(stagingId);
    return new SnapshotInstall(new StagedStream(this.dbs, stagingId), {
      swap: (staged, conf) => this.swapIn(shard, staged, conf),
      release: (id) => this.installs.delete(id),
      checkOpen: () => this.checkOpen(),
    });
  }

  /** Receives a whole snapshot stream and installs it; nothing changes if it is rejected. */
  async installSnapshot(
    shard: number,
    chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  ): Promise<SnapshotHeader> {
    const install = this.beginInstall(shard);
    try {
      for await (const chunk of chunks) install.write(chunk);
      return install.commit();
    } finally {
      install.abort();
    }
  }

  /**
   * Deletes the shard: keys, sessions and metadata, in one transaction. Its change records stay
   * in the feed until trimmed, unread: a shard created again starts a new history after them.
   */
  dropShard(shard: number): void {
    this.checkOpen();
    this.beforeCommit();
    this.dbs.env.transactionSync(() => {
      dropShardRange(this.dbs, shard);
      this.dbs.meta.removeSync(shardPrefix(shard));
      this.dbs.system.removeSync(confKey(shard));
    });
    this.metas.delete(shard);
    this.confs.delete(shard);
    this.sessions.forget(shard);
    this.feed.forget(shard);
  }

  /** Resolves once every commit made before the call is on disk. */
  async flush(): Promise<void> {
    this.checkOpen();
    await this.syncToDisk();
  }

  /** Flushes and closes the environment. Later calls throw CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.syncToDisk();
    this.closed = true;
    for (const txn of this.readers) txn.done();
    this.readers.clear();
    await this.dbs.env.close();
  }

  private beforeCommit(): void {
    if (this.deferred) this.marker.beforeCommit();
  }

  private async syncToDisk(): Promise<void> {
    const env = this.dbs.env;
    await env.flushed;
    await this.marker.flush(
      () =>
        new Promise<void>((resolve, reject) => {
          // lmdb's typings omit sync(): it forces mdb_env_sync on a worker thread.
          const syncable = env as unknown as { sync(done: (err: unknown) => void): void };
          syncable.sync((err) => (err ? reject(err) : resolve()));
        }),
    );
  }

  private swapIn(shard: number, staged: StagedStream, conf: ConfState | undefined): SnapshotHeader {
    this.beforeCommit();
    const meta = this.dbs.env.transactionSync(() => {
      const installed = swapIn(this.dbs, shard, staged, this.feed.position);
      this.dbs.meta.putSync(shardPrefix(shard), encodeMeta(installed));
      if (conf !== undefined) {
        this.dbs.system.putSync(confKey(shard), Buffer.from(JSON.stringify(conf)));
      }
      return installed;
    });
    this.metas.set(shard, meta);
    if (conf !== undefined) this.confs.set(shard, conf);
    this.sessions.forget(shard);
    this.feed.forget(shard);
    return staged.summary.header;
  }

  private metaAt(shard: number, transaction: Transaction): ShardMeta {
    const bytes = this.dbs.meta.get(shardPrefix(shard), { transaction });
    if (bytes === undefined) return emptyMeta();
    const meta = decodeMeta(bytes);
    if (meta === undefined) throw corruptState(`shard ${shard} metadata`);
    return meta;
  }

  private withReader<T>(fn: (txn: Transaction) => T): T {
    this.checkOpen();
    const txn = this.dbs.env.useReadTransaction();
    try {
      return fn(txn);
    } finally {
      txn.done();
    }
  }

  private notify(raw: RawChange[]): void {
    const changes = raw.map(materialize);
    for (const listener of [...this.listeners]) {
      try {
        listener(changes);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new FlotillaError('CLOSED', 'the state machine is closed');
  }
}

/** What a SnapshotInstall needs from its KvState. */
interface InstallHost {
  swap(staged: StagedStream, conf: ConfState | undefined): SnapshotHeader;
  release(stagingId: number): void;
  checkOpen(): void;
}

/**
 * A snapshot being received: `write` each chunk as it arrives (verified and staged on disk),
 * then `commit` to replace the shard in one transaction. Any rejected chunk, or a commit before
 * the end chunk, throws CORRUPT_STATE, discards the staged data and leaves the shard unchanged.
 */
export class SnapshotInstall {
  private state: 'open' | 'done' = 'open';

  constructor(
    private readonly staged: StagedStream,
    private readonly host: InstallHost,
  ) {}

  /** Verifies and stages one chunk. */
  write(chunk: Uint8Array): void {
    this.checkUsable();
    try {
      this.staged.accept(chunk);
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  /**
   * Installs the complete stream; returns its applied index/term and hash range. `conf`, the
   * Raft membership as of the snapshot's index, is stored in the same transaction, so that no
   * crash leaves the installed data with the membership from before it.
   */
  commit(conf?: ConfState): SnapshotHeader {
    this.checkUsable();
    if (!this.staged.complete) {
      this.abort();
      throw new FlotillaError('CORRUPT_STATE', 'snapshot rejected: the stream is incomplete');
    }
    const header = this.host.swap(this.staged, conf);
    this.state = 'done';
    this.host.release(this.staged.stagingId);
    return header;
  }

  /** Discards the staged data (nothing when already committed or aborted). */
  abort(): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.host.release(this.staged.stagingId);
    this.staged.clearStaging();
  }

  private checkUsable(): void {
    this.host.checkOpen();
    if (this.state === 'done') throw invalid('this snapshot install has finished');
  }
}

function openDbs(env: RootDatabase): StateDbs {
  const db = (name: string): BinaryDb =>
    env.openDB<Buffer, Buffer>({ name, keyEncoding: 'binary', encoding: 'binary' });
  return {
    env,
    data: db('data'),
    meta: db('meta'),
    changes: db('changes'),
    sessions: db('sessions'),
    system: db('system'),
    stagingData: db('stagingData'),
    stagingSessions: db('stagingSessions'),
  };
}

/** Offset and value of the magic number in an LMDB data file's first meta page. */
const lmdbMagicOffset = 24;
const lmdbMagic = 0xbeefc0de;

/**
 * LMDB trusts its file and crashes the process on one that is not LMDB at all, so the first
 * meta page's magic is checked before LMDB sees the file. (A file with a valid header but torn
 * pages is beyond what LMDB or this check can detect; see durability.ts.)
 */
function checkLmdbFile(path: string): void {
  if (!existsSync(path)) return;
  const header = Buffer.alloc(lmdbMagicOffset + 4);
  const fd = openSync(path, 'r');
  let read: number;
  try {
    read = readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  if (read === 0) return;
  if (read < header.length || header.readUInt32LE(lmdbMagicOffset) !== lmdbMagic) {
    throw new FlotillaError('CORRUPT_STATE', `${path} is not an LMDB data file`, { file: path });
  }
}

/** Accepts a fresh environment (and marks it) or one of this format; refuses anything else. */
function checkFormat(env: RootDatabase, dir: string, beforeCommit: () => void): void {
  const names = [...env.getKeys({})].map(String);
  const expected = Buffer.alloc(formatMagic.length + 4);
  formatMagic.copy(expected);
  expected.writeUInt32BE(stateFormatVersion, formatMagic.length);
  if (names.length > 0 && !names.includes('system')) {
    throw new FlotillaError('VERSION_MISMATCH', `${dir} is not a Flotilla state directory`);
  }
  const system = env.openDB<Buffer, Buffer>({
    name: 'system',
    keyEncoding: 'binary',
    encoding: 'binary',
  });
  if (names.length === 0) {
    beforeCommit();
    env.transactionSync(() => system.putSync(formatKey, expected));
    return;
  }
  const found = system.getBinary(formatKey);
  if (found === undefined || !found.subarray(0, formatMagic.length).equals(formatMagic)) {
    throw new FlotillaError('VERSION_MISMATCH', `${dir} is not a Flotilla state directory`);
  }
  if (!found.equals(expected)) {
    const version = found.length >= formatMagic.length + 4 ? found.readUInt32BE(14) : -1;
    throw new FlotillaError(
      'VERSION_MISMATCH',
      `${dir} holds state format ${version}; this build reads ${stateFormatVersion}`,
    );
  }
}

function resolveLimits(overrides: Partial<StateLimits> | undefined): StateLimits {
  const limits: StateLimits = {
    sessionsPerShardMax,
    sessionExpiryEntries,
    sessionExpiryMs,
    execWritesMax,
    changesMax,
    changeBytesMax,
    sessionTablesMirroredMax,
    ...overrides,
  };
  for (const [name, value] of Object.entries(limits)) {
    if (!(Number.isSafeInteger(value) && value >= 1)) {
      throw new FlotillaError('CONFIG', `state limit ${name} must be an integer >= 1`);
    }
  }
  return limits;
}

/** Full-key bounds of a scan. */
function scanBounds(shard: number, range: ScanRange): { start: Buffer; end: Buffer | undefined } {
  if ('prefix' in range) {
    const prefix = boundBytes(range.prefix);
    const start = prefixedKey(shard, prefix);
    return { start, end: successor(start) ?? shardEnd(shard) };
  }
  const start =
    range.start === undefined ? shardPrefix(shard) : prefixedKey(shard, boundBytes(range.start));
  const end = range.end === undefined ? shardEnd(shard) : prefixedKey(shard, boundBytes(range.end));
  return { start, end };
}

/** The smallest key greater than every key starting with `key`, or undefined if none. */
function successor(key: Buffer): Buffer | undefined {
  for (let i = key.length - 1; i >= shardPrefixBytes; i--) {
    if (key[i]! < 0xff) {
      const out = Buffer.from(key.subarray(0, i + 1));
      out[i] = key[i]! + 1;
      return out;
    }
  }
  return undefined;
}

function boundBytes(bound: Key): Uint8Array {
  if (typeof bound === 'string') return Buffer.from(bound, 'utf8');
  if (!(bound instanceof Uint8Array)) throw invalid('a scan bound must be a string or bytes');
  if (bound.length > keyBytesMax) throw invalid('a scan bound is longer than any key');
  return bound;
}

function corruptState(what: string, cause?: unknown): FlotillaError {
  return new FlotillaError('CORRUPT_STATE', `${what} is unreadable`, { cause });
}
