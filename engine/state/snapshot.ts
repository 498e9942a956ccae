/**
 * Shard snapshots: export as a consistent LMDB read streamed in chunks, install by staging the
 * chunks as they arrive and swapping them in with one transaction. Also the shard checksum,
 * which is defined over the same items (see snapshot-format.ts).
 */
import type { Transaction } from 'lmdb';
import { crc32c } from '../../wasm/index.js';
import { assert } from '../assert.js';
import {
  sessionIdBytesMax,
  snapshotChunkBytesMax,
  snapshotChunkBytesTarget,
  stateKeyBytesMax,
} from '../limits.js';
import { clearRange } from './change-feed.js';
import type { BinaryDb, StateDbs } from './dbs.js';
import {
  asBuffer,
  dataHeaderBytes,
  decodeSession,
  emptyMeta,
  prefixedKey,
  readU64,
  type ShardMeta,
  shardEnd,
  shardPrefix,
  shardPrefixBytes,
} from './layout.js';
import {
  ChunkKind,
  corrupt,
  decodeChunk,
  decodeHeader,
  decodeItems,
  decodeTrailer,
  encodeChunk,
  encodeHeader,
  encodeItem,
  encodeTrailer,
  ItemKind,
  type SnapshotHeader,
  type SnapshotTrailer,
} from './snapshot-format.js';
import { ValueTag } from './value-codec.js';

/** The items of a shard in stream order: keys, then sessions, each ascending. */
function* shardItems(dbs: StateDbs, shard: number, transaction: Transaction): Generator<Buffer> {
  const range = { start: shardPrefix(shard), end: shardEnd(shard), transaction };
  for (const { key, value } of dbs.data.getRange(range)) {
    yield encodeItem(ItemKind.Key, key.subarray(shardPrefixBytes), value);
  }
  for (const { key, value } of dbs.sessions.getRange(range)) {
    yield encodeItem(ItemKind.Session, key.subarray(shardPrefixBytes), value);
  }
}

function headerOf(meta: ShardMeta): SnapshotHeader {
  const { appliedIndex, appliedTerm, hashLow, hashHigh } = meta;
  return { appliedIndex, appliedTerm, hashLow, hashHigh };
}

/** The shard's content checksum as of `transaction` (see snapshot-format.ts). */
export function shardChecksum(
  dbs: StateDbs,
  shard: number,
  meta: ShardMeta,
  transaction: Transaction,
): number {
  let crc = 0;
  for (const item of shardItems(dbs, shard, transaction)) crc = crc32c(item, crc);
  return crc32c(encodeHeader(headerOf(meta)), crc);
}

/** Streams the shard as of `transaction` in chunks; `done` releases the transaction. */
export async function* exportChunks(
  dbs: StateDbs,
  shard: number,
  meta: ShardMeta,
  transaction: Transaction,
  checkOpen: () => void,
): AsyncGenerator<Uint8Array> {
  const header = encodeHeader(headerOf(meta));
  let seq = 0;
  yield encodeChunk(ChunkKind.Begin, shard, seq++, header);
  checkOpen();
  const trailer: SnapshotTrailer = { keyCount: 0, sessionCount: 0, checksum: 0 };
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for (const item of shardItems(dbs, shard, transaction)) {
    if (pendingBytes > 0 && pendingBytes + item.length > snapshotChunkBytesTarget) {
      yield chunkOf(ChunkKind.Data, shard, seq++, Buffer.concat(pending, pendingBytes));
      checkOpen();
      pending = [];
      pendingBytes = 0;
    }
    trailer.checksum = crc32c(item, trailer.checksum);
    if (item[0] === ItemKind.Key) trailer.keyCount += 1;
    else trailer.sessionCount += 1;
    pending.push(item);
    pendingBytes += item.length;
  }
  if (pendingBytes > 0) {
    yield chunkOf(ChunkKind.Data, shard, seq++, Buffer.concat(pending, pendingBytes));
    checkOpen();
  }
  trailer.checksum = crc32c(header, trailer.checksum);
  yield encodeChunk(ChunkKind.End, shard, seq, encodeTrailer(trailer));
}

function chunkOf(kind: number, shard: number, seq: number, payload: Buffer): Buffer {
  const chunk = encodeChunk(kind, shard, seq, payload);
  assert(chunk.length <= snapshotChunkBytesMax, 'a snapshot chunk stays within its bound');
  return chunk;
}

/** Where a stream being received stands. */
interface Progress {
  shard: number;
  nextSeq: number;
  header: SnapshotHeader | undefined;
  trailer: SnapshotTrailer | undefined;
  keyCount: number;
  sessionCount: number;
  checksum: number;
  lastKind: number;
  lastKey: Uint8Array | undefined;
}

/** Verifies a stream chunk by chunk and stages its items under one staging id. */
export class StagedStream {
  private readonly progress: Progress = {
    shard: -1,
    nextSeq: 0,
    header: undefined,
    trailer: undefined,
    keyCount: 0,
    sessionCount: 0,
    checksum: 0,
    lastKind: ItemKind.Key,
    lastKey: undefined,
  };

  constructor(
    private readonly dbs: StateDbs,
    readonly stagingId: number,
  ) {}

  /** True once the end chunk has been verified. */
  get complete(): boolean {
    return this.progress.trailer !== undefined;
  }

  /** The verified header and trailer; only once complete. */
  get summary(): { header: SnapshotHeader; trailer: SnapshotTrailer } {
    const { header, trailer } = this.progress;
    assert(header !== undefined && trailer !== undefined, 'the stream is complete');
    return { header, trailer };
  }

  /** Verifies a chunk and stages its items; throws CORRUPT_STATE. */
  accept(bytes: Uint8Array): void {
    const p = this.progress;
    const chunk = decodeChunk(bytes);
    if (p.trailer !== undefined) throw corrupt('a chunk arrived after the end chunk');
    if (chunk.seq !== p.nextSeq) throw corrupt(`chunk ${chunk.seq} arrived, ${p.nextSeq} due`);
    if (p.nextSeq === 0) p.shard = chunk.shard;
    if (chunk.shard !== p.shard) throw corrupt('chunks of two different shards are mixed');
    p.nextSeq += 1;
    if (chunk.seq === 0) {
      if (chunk.kind !== ChunkKind.Begin) throw corrupt('the stream does not start with begin');
      p.header = decodeHeader(chunk.payload);
    } else if (chunk.kind === ChunkKind.Data) {
      this.stageItems(chunk.payload);
    } else if (chunk.kind === ChunkKind.End) {
      this.finish(decodeTrailer(chunk.payload));
    } else {
      throw corrupt(`chunk ${chunk.seq} has kind ${chunk.kind}`);
    }
  }

  private stageItems(payload: Uint8Array): void {
    const p = this.progress;
    const header = p.header!;
    const items = decodeItems(payload);
    for (const item of items) {
      checkItem(item.kind, item.key, item.record, header);
      if (item.kind < p.lastKind) throw corrupt('a key item follows a session item');
      const ordered =
        item.kind !== p.lastKind ||
        p.lastKey === undefined ||
        Buffer.compare(p.lastKey, item.key) < 0;
      if (!ordered) throw corrupt('items are not in ascending key order');
      p.lastKind = item.kind;
      p.lastKey = item.key;
      p.checksum = crc32c(item.bytes, p.checksum);
      if (item.kind === ItemKind.Key) p.keyCount += 1;
      else p.sessionCount += 1;
    }
    const { stagingData, stagingSessions } = this.dbs;
    this.dbs.env.transactionSync(() => {
      for (const item of items) {
        const db = item.kind === ItemKind.Key ? stagingData : stagingSessions;
        db.putSync(prefixedKey(this.stagingId, item.key), asBuffer(item.record));
      }
    });
    // Items alias the chunk; keep a copy of the last key only.
    p.lastKey = p.lastKey === undefined ? undefined : Buffer.from(p.lastKey);
  }

  private finish(trailer: SnapshotTrailer): void {
    const p = this.progress;
    const checksum = crc32c(encodeHeader(p.header!), p.checksum);
    if (trailer.keyCount !== p.keyCount || trailer.sessionCount !== p.sessionCount) {
      throw corrupt(
        `the end chunk counts ${trailer.keyCount} keys and ${trailer.sessionCount} sessions, ` +
          `the stream held ${p.keyCount} and ${p.sessionCount}`,
      );
    }
    if (trailer.checksum !== checksum) throw corrupt('the content checksum does not match');
    p.trailer = trailer;
  }

  /** Deletes everything staged (inside or outside a write transaction). */
  clearStaging(): void {
    const start = shardPrefix(this.stagingId);
    const end = shardEnd(this.stagingId);
    this.dbs.env.transactionSync(() => {
      clearRange(this.dbs.stagingData, start, end);
      clearRange(this.dbs.stagingSessions, start, end);
    });
  }
}

function checkItem(kind: number, key: Uint8Array, record: Uint8Array, h: SnapshotHeader): void {
  if (kind === ItemKind.Key) {
    if (key.length === 0 || key.length + shardPrefixBytes > stateKeyBytesMax) {
      throw corrupt(`a key of ${key.length} bytes`);
    }
    if (record.length <= dataHeaderBytes) throw corrupt('a key record is too short');
    const tag = record[dataHeaderBytes];
    if (tag !== ValueTag.Raw && tag !== ValueTag.Msgpack) throw corrupt(`value tag ${tag}`);
    const version = readU64(record, 0);
    if (version < 1 || version > h.appliedIndex) throw corrupt(`a key has version ${version}`);
  } else if (kind === ItemKind.Session) {
    if (key.length === 0 || key.length > sessionIdBytesMax) throw corrupt('a session id length');
    const session = decodeSession(record);
    if (session === undefined) throw corrupt('a session record is too short');
    // Installing indexes the session by its last index, and expiry compares its time.
    const sane =
      Number.isSafeInteger(session.seq) &&
      session.seq >= 1 &&
      session.index >= 1 &&
      session.index <= h.appliedIndex &&
      Number.isFinite(session.time);
    if (!sane) throw corrupt('a session record holds impossible values');
  } else {
    throw corrupt(`item kind ${kind}`);
  }
}

/**
 * Replaces shard `target` with a complete staged stream; runs inside a write transaction.
 * Returns the shard's new metadata, whose change history starts at feed position `changesFrom`
 * (the shard's older change records are of the history the snapshot replaced).
 */
export function swapIn(
  dbs: StateDbs,
  target: number,
  staged: StagedStream,
  changesFrom: number,
): ShardMeta {
  const { header, trailer } = staged.summary;
  dropShardRange(dbs, target);
  const meta: ShardMeta = {
    ...emptyMeta(),
    appliedIndex: header.appliedIndex,
    appliedTerm: header.appliedTerm,
    changesFrom,
    changesCompactedIndex: header.appliedIndex,
    hashLow: header.hashLow,
    hashHigh: header.hashHigh,
  };
  const range = { start: shardPrefix(staged.stagingId), end: shardEnd(staged.stagingId) };
  const keyCount = copyStaged(dbs.stagingData, dbs.data, range, target);
  meta.sessionCount = copyStaged(dbs.stagingSessions, dbs.sessions, range, target);
  assert(keyCount === trailer.keyCount, 'every staged key was copied');
  assert(meta.sessionCount === trailer.sessionCount, 'every staged session was copied');
  clearRange(dbs.stagingData, range.start, range.end);
  clearRange(dbs.stagingSessions, range.start, range.end);
  return meta;
}

function copyStaged(
  from: BinaryDb,
  to: BinaryDb,
  range: { start: Buffer; end: Buffer | undefined },
  target: number,
): number {
  let count = 0;
  for (const { key, value } of from.getRange(range)) {
    to.putSync(prefixedKey(target, key.subarray(shardPrefixBytes)), value);
    count += 1;
  }
  return count;
}

/**
 * Deletes every key and session of a shard (not its metadata, nor its change records: the feed
 * is node-wide, and the shard's `changesFrom` hides them).
 */
export function dropShardRange(dbs: StateDbs, shard: number): void {
  const start = shardPrefix(shard);
  const end = shardEnd(shard);
  clearRange(dbs.data, start, end);
  clearRange(dbs.sessions, start, end);
}
