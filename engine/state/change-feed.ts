/**
 * The change feed: every applied write leaves a change record in LMDB, in the same transaction
 * as the write. The records one apply transaction leaves, over all shards, form one block
 * (layout.ts), so that a batch of writes costs one LMDB put however many shards it touched. The
 * node keeps a bounded tail (`changesMax` records and `changeBytesMax` bytes, whichever is reached
 * first, and up to an eighth more between trims — or the newest block, when it alone is larger);
 * older blocks are trimmed whole, and each shard's `changesCompactedIndex` remembers how far its
 * own changes went. A reader whose cursor is below that point gets COMPACTED and must re-read
 * the state (a scan) before watching again.
 *
 * Reading one shard's changes goes through a locator kept in memory: for each shard, the retained
 * blocks that hold its records (the last index it has there, the block's position and the offset
 * of its records in it). The locator is built by one pass over the feed on the first read, then
 * kept up to date by applies, trims, installs and drops; a read finds its first block by binary
 * search and fetches only the blocks that hold the shard.
 */
import { assert } from '../assert.js';
import { FlotillaError } from '../errors.js';
import { changeBlockCacheBytesMax, changesReadMax, changeTrimBlocksMax } from '../limits.js';
import type { BinaryDb, StateDbs, StateLimits } from './dbs.js';
import {
  ChangeTypeByte,
  changeBlockHeaderBytes,
  changeBytesOf,
  changeHeaderBytes,
  changeKey,
  changeKeyBytes,
  readU64,
  type Scratch,
  type ShardMeta,
  writeU64,
} from './layout.js';
import { decodeValue, type Value } from './value-codec.js';
/** One applied write, as a watcher sees it. `version` is the index of the entry that wrote it. */
export interface Change {
  shard: number;
  index: number;
  key: Buffer;
  type: 'put' | 'delete';
  /** The new value (put only). */
  value?: Value;
  version: number;
}

/** A change as written, before its value is decoded. */
export interface RawChange {
  shard: number;
  index: number;
  key: Uint8Array;
  /** The stored value for a put, null for a delete. */
  stored: Uint8Array | null;
}

/** The feed's extent: blocks at positions [first, next), holding bytes [firstBytes, nextBytes). */
interface Extent {
  // Invariant: first <= next and firstBytes <= nextBytes; first === next only while the feed has
  // never had a block (a trim keeps the newest block, so the positions never start over).
  first: number;
  firstBytes: number;
  next: number;
  nextBytes: number;
}

/** What one apply transaction did to the feed, adopted when it commits. */
interface Pending {
  extent: Extent;
  /** The block written and its groups (shard → its changes, in block order). */
  appended: { position: number; groups: ReadonlyMap<number, readonly RawChange[]> } | undefined;
  /** Shards with records in trimmed blocks. */
  trimmed: Set<number>;
}

/** Where one shard's records sit in the feed: one slot per block, oldest first, from `head`. */
class ShardTrail {
  // Invariant: lasts and positions ascend strictly from head to the end.
  readonly lasts: number[] = [];
  readonly positions: number[] = [];
  readonly offsets: number[] = [];
  head = 0;

  /** Adds the shard's group in a newer block: its last index, the block, the group's offset. */
  push(last: number, position: number, offset: number): void {
    const n = this.lasts.length;
    assert(n === this.head || this.lasts[n - 1]! < last, 'a shard trail ascends by index');
    assert(n === this.head || this.positions[n - 1]! < position, 'a trail ascends by position');
    this.lasts.push(last);
    this.positions.push(position);
    this.offsets.push(offset);
  }

  /** Forgets the slots of blocks before `position` (trimmed). */
  dropBefore(position: number): void {
    while (this.head < this.positions.length && this.positions[this.head]! < position) {
      this.head++;
    }
    // Compacts the arrays once most of them is dead, so a trail costs O(its live slots).
    if (this.head >= 64 && this.head * 2 >= this.positions.length) {
      this.lasts.splice(0, this.head);
      this.positions.splice(0, this.head);
      this.offsets.splice(0, this.head);
      this.head = 0;
    }
  }

  /** The first slot whose block holds an index > `afterIndex` (the end when none does). */
  seek(afterIndex: number): number {
    let low = this.head;
    let high = this.lasts.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.lasts[mid]! > afterIndex) high = mid;
      else low = mid + 1;
    }
    return low;
  }
}

/** The node's change feed over the `changes` database; see the module comment. */
export class ChangeFeed {
  private extent: Extent;
  private pending: Pending | undefined;
  /** The locator: each shard's trail; undefined until the first read builds it. */
  private trails: Map<number, ShardTrail> | undefined;
  /** Recently read blocks by position (a position never names another block, so never stale). */
  private readonly cache = new Map<number, Buffer>();
  private cacheBytes = 0;
  private readonly readKey = Buffer.allocUnsafe(changeKeyBytes);

  /** `metaOf` returns a shard's committed metadata (undefined for a shard this node lacks). */
  constructor(
    private readonly dbs: StateDbs,
    private readonly limits: StateLimits,
    private readonly metaOf: (shard: number) => ShardMeta | undefined,
  ) {
    this.extent = recoverExtent(dbs);
  }

  /** The position the next block takes: where a shard created or installed now starts. */
  get position(): number {
    return (this.pending?.extent ?? this.extent).next;
  }

  /** Starts the feed's part of an apply transaction. */
  begin(): void {
    assert(this.pending === undefined, 'one apply transaction at a time');
    this.pending = { extent: { ...this.extent }, appended: undefined, trimmed: new Set() };
  }

  /**
   * Writes the transaction's changes (`count` records, grouped by shard in commit order) as one
   * block, then trims if the feed is over its bounds by an eighth. `metaFor` gives the working
   * metadata of a shard (undefined for one without any), whose compacted index a trim raises.
   */
  append(
    scratch: Scratch,
    groups: ReadonlyMap<number, readonly RawChange[]>,
    count: number,
    metaFor: (shard: number) => ShardMeta | undefined,
  ): void {
    const p = this.pending;
    assert(p !== undefined && p.appended === undefined, 'one block per apply transaction');
    assert(count > 0, 'a change block holds at least one record');
    const position = p.extent.next;
    const { block, bytes } = scratch.changeBlock(groups, count, p.extent.nextBytes);
    this.dbs.changes.putSync(scratch.changeKey(position), block);
    p.extent.next += count;
    p.extent.nextBytes += bytes;
    p.appended = { position, groups };
    if (this.over(p.extent, this.limits.changesMax >> 3, this.limits.changeBytesMax >> 3)) {
      this.trim(p, position, metaFor);
    }
  }

  /** Adopts the transaction's changes (after it committed) and updates the locator. */
  commit(): void {
    const p = this.pending;
    assert(p !== undefined, 'a transaction is pending');
    this.pending = undefined;
    this.extent = p.extent;
    const trails = this.trails;
    if (trails === undefined) return;
    if (p.appended !== undefined) {
      let at = changeBlockHeaderBytes;
      for (const [shard, group] of p.appended.groups) {
        trailOf(trails, shard).push(group[group.length - 1]!.index, p.appended.position, at);
        for (const c of group) at += changeHeaderBytes + changeBytesOf(c);
      }
    }
    for (const shard of p.trimmed) trails.get(shard)?.dropBefore(p.extent.first);
  }

  /** Forgets the transaction (it rolled back). */
  abort(): void {
    this.pending = undefined;
  }

  /** Forgets the shard's located blocks: it was dropped, or a snapshot replaced its history. */
  forget(shard: number): void {
    this.trails?.delete(shard);
  }

  /**
   * The shard's changes with index > `afterIndex`, in commit order, at most `limit` (and at most
   * `changesReadMax`). Throws COMPACTED when changes after `afterIndex` were already trimmed.
   */
  read(shard: number, meta: ShardMeta, afterIndex: number, limit: number): Change[] {
    if (afterIndex < meta.changesCompactedIndex) {
      throw new FlotillaError(
        'COMPACTED',
        `shard ${shard}: changes up to index ${meta.changesCompactedIndex} are no longer kept ` +
          `(cursor ${afterIndex}); re-read the state and watch from its applied index`,
      );
    }
    // "At most 2.5" is at most 2.
    const max = Math.min(Math.floor(limit), changesReadMax);
    const out: Change[] = [];
    const trail = this.locator().get(shard);
    if (max <= 0 || trail === undefined) return out;
    for (let slot = trail.seek(afterIndex); slot < trail.lasts.length; slot++) {
      const block = this.block(trail.positions[slot]!);
      let at = trail.offsets[slot]!;
      while (at < block.length && block.readUInt32BE(at + 1) === shard && out.length < max) {
        const index = readU64(block, at + 5);
        if (index > afterIndex) out.push(decodeChange(shard, index, block, at));
        at = recordEnd(block, at);
      }
      if (out.length >= max) break;
    }
    return out;
  }

  /** Whether the feed holds more than its bounds plus a slack of records and bytes. */
  private over(extent: Extent, slackCount = 0, slackBytes = 0): boolean {
    return (
      extent.next - extent.first > this.limits.changesMax + slackCount ||
      extent.nextBytes - extent.firstBytes > this.limits.changeBytesMax + slackBytes
    );
  }

  /**
   * Deletes the oldest blocks until both bounds hold (or `changeTrimBlocksMax` went), never the
   * newest (at `newest`). Each shard of a trimmed block (of its current history) gets its largest
   * index there as its compacted index. Runs inside the apply transaction.
   */
  private trim(
    p: Pending,
    newest: number,
    metaFor: (shard: number) => ShardMeta | undefined,
  ): void {
    const doomed: Buffer[] = [];
    const extent = p.extent;
    for (const { key, value } of this.dbs.changes.getRange({ start: changeKey(extent.first) })) {
      const position = readU64(key, 0);
      if (position !== extent.first || readU64(value, 4) !== extent.firstBytes) {
        throw corruptFeed(`the change block at ${position} does not follow on from its elder`);
      }
      if (position === newest || doomed.length >= changeTrimBlocksMax || !this.over(extent)) break;
      const { count, bytes } = forEachGroup(value, position, (shard, _offset, last) => {
        const meta = metaFor(shard);
        p.trimmed.add(shard);
        if (meta === undefined || position < meta.changesFrom) return;
        if (last > meta.changesCompactedIndex) meta.changesCompactedIndex = last;
      });
      doomed.push(key);
      extent.first += count;
      extent.firstBytes += bytes;
    }
    assert(extent.first <= newest, 'a trim keeps the newest block');
    for (const key of doomed) this.dbs.changes.removeSync(key);
  }

  /** The locator, built on first use by one pass over the feed. */
  private locator(): Map<number, ShardTrail> {
    if (this.trails !== undefined) return this.trails;
    const trails = new Map<number, ShardTrail>();
    for (const { key, value } of this.dbs.changes.getRange({})) {
      const position = readU64(key, 0);
      forEachGroup(value, position, (shard, offset, last) => {
        const meta = this.metaOf(shard);
        if (meta !== undefined && position >= meta.changesFrom) {
          trailOf(trails, shard).push(last, position, offset);
        }
      });
    }
    this.trails = trails;
    return trails;
  }

  /** The block at `position`, from the cache or LMDB. */
  private block(position: number): Buffer {
    const cached = this.cache.get(position);
    if (cached !== undefined) return cached;
    writeU64(this.readKey, 0, position);
    const block = this.dbs.changes.getBinary(this.readKey);
    assert(block !== undefined, 'the locator names retained blocks only');
    this.cache.set(position, block);
    this.cacheBytes += block.length;
    for (const [kept, bytes] of this.cache) {
      if (this.cacheBytes <= changeBlockCacheBytesMax || this.cache.size === 1) break;
      this.cache.delete(kept);
      this.cacheBytes -= bytes.length;
    }
    return block;
  }
}

/** The shard's trail in `trails`, created empty when missing. */
function trailOf(trails: Map<number, ShardTrail>, shard: number): ShardTrail {
  let trail = trails.get(shard);
  if (trail === undefined) {
    trail = new ShardTrail();
    trails.set(shard, trail);
  }
  return trail;
}

/**
 * Calls `fn` for each shard's group of records in a block (its shard, its offset, its last
 * index); returns the block's record count and key + value bytes. Throws CORRUPT_STATE for a
 * block whose records do not add up.
 */
function forEachGroup(
  block: Buffer,
  position: number,
  fn: (shard: number, offset: number, last: number) => void,
): { count: number; bytes: number } {
  let count = 0;
  let at = changeBlockHeaderBytes;
  while (at < block.length) {
    if (at + changeHeaderBytes > block.length) break;
    const shard = block.readUInt32BE(at + 1);
    const offset = at;
    let last = 0;
    while (at + changeHeaderBytes <= block.length && block.readUInt32BE(at + 1) === shard) {
      last = readU64(block, at + 5);
      at = recordEnd(block, at);
      count += 1;
    }
    fn(shard, offset, last);
  }
  if (block.length < changeBlockHeaderBytes || at !== block.length) {
    throw corruptFeed(`the change block at ${position} is cut short`);
  }
  if (count !== block.readUInt32BE(0)) {
    throw corruptFeed(`the change block at ${position} holds ${count} records, not its count`);
  }
  return { count, bytes: at - changeBlockHeaderBytes - count * changeHeaderBytes };
}

/** Where the record starting at `at` of a block ends: after its header, key and value. */
function recordEnd(block: Buffer, at: number): number {
  return at + changeHeaderBytes + block.readUInt32BE(at + 13) + block.readUInt32BE(at + 17);
}

/** The feed's extent as stored: from its oldest and newest blocks. */
function recoverExtent(dbs: StateDbs): Extent {
  const oldest = firstOf(dbs.changes.getRange({ limit: 1 }));
  const newest = firstOf(dbs.changes.getRange({ reverse: true, limit: 1 }));
  if (oldest === undefined || newest === undefined) {
    return { first: 0, firstBytes: 0, next: 0, nextBytes: 0 };
  }
  for (const { value } of [oldest, newest]) {
    if (value.length < changeBlockHeaderBytes) throw corruptFeed('a change block is cut short');
  }
  const last = readU64(newest.key, 0);
  const { count, bytes } = forEachGroup(newest.value, last, () => {});
  return {
    first: readU64(oldest.key, 0),
    firstBytes: readU64(oldest.value, 4),
    next: last + count,
    nextBytes: readU64(newest.value, 4) + bytes,
  };
}

function firstOf<T>(entries: Iterable<T>): T | undefined {
  for (const entry of entries) return entry;
  return undefined;
}

function corruptFeed(what: string): FlotillaError {
  return new FlotillaError('CORRUPT_STATE', `change feed: ${what}`);
}

/** Keys deleted per cursor pass when clearing a range, bounding the keys held in memory. */
const clearPassKeys = 1024;

/** Deletes every key in [start, end) of `db`, inside the current write transaction. */
export function clearRange(db: BinaryDb, start: Buffer, end: Buffer | undefined): void {
  for (;;) {
    const keys: Buffer[] = [];
    for (const key of db.getKeys({ start, end, limit: clearPassKeys })) keys.push(key as Buffer);
    for (const key of keys) db.removeSync(key);
    if (keys.length < clearPassKeys) return;
  }
}

/** The change whose record starts at `at` of a block. */
function decodeChange(shard: number, index: number, block: Buffer, at: number): Change {
  const keyStart = at + changeHeaderBytes;
  const keyEnd = keyStart + block.readUInt32BE(at + 13);
  const key = Buffer.from(block.subarray(keyStart, keyEnd));
  if (block[at] === ChangeTypeByte.Delete) {
    return { shard, index, key, type: 'delete', version: index };
  }
  const value = decodeValue(block.subarray(keyEnd, keyEnd + block.readUInt32BE(at + 17)));
  return { shard, index, key, type: 'put', value, version: index };
}

/** A change as a listener receives it. */
export function materialize(raw: RawChange): Change {
  const key = Buffer.from(raw.key);
  if (raw.stored === null) {
    return { shard: raw.shard, index: raw.index, key, type: 'delete', version: raw.index };
  }
  const value = decodeValue(raw.stored);
  return { shard: raw.shard, index: raw.index, key, type: 'put', value, version: raw.index };
}
