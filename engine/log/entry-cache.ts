/**
 * Recent entries of every group, kept in memory so that a leader replicating what it just
 * appended never reads the disk. Bounded in bytes across all groups (data plus a fixed
 * allowance per entry for the cache's own objects); the oldest entries go first. An entry whose record is not yet written to its segment cannot be read back from disk,
 * so it stays cached (pinned) whatever the bound until the write completes; the append queue's
 * own bound limits how many such entries exist.
 *
 * Per group, the cached entries are always a suffix [cachedFrom, lastIndex] of its log: appends
 * extend it, truncation cuts it, compaction and eviction advance its start.
 */
import type { Entry } from '../raft/types.js';
import { entryRecordBytes } from './plan.js';

/** Cached entries of one group: a suffix of its log. */
export class GroupCache {
  // Invariant: entries[head + k].index === from + k, for k < entries.length - head.
  private entries: Entry[] = [];
  private head = 0;
  private from = 1;

  /** First cached index (lastIndex + 1 when nothing is cached). */
  get cachedFrom(): number {
    return this.from;
  }

  /** The cached entry `index`, if cached. */
  get(index: number): Entry | undefined {
    if (index < this.from) return undefined;
    return this.entries[this.head + index - this.from];
  }

  /** Appends the entry lastIndex + 1 (an empty cache restarts at it). */
  push(entry: Entry): void {
    if (this.head === this.entries.length) this.restart(entry.index);
    this.entries.push(entry);
  }

  /** Forgets entries >= index. */
  truncateFrom(index: number): void {
    const keep = Math.max(0, index - this.from);
    if (this.head + keep < this.entries.length) this.entries.length = this.head + keep;
  }

  /** Forgets entries <= index. */
  dropThrough(index: number): void {
    if (index < this.from) return;
    const n = Math.min(index - this.from + 1, this.entries.length - this.head);
    this.head += n;
    this.from += n;
    if (this.head === this.entries.length) this.restart(index + 1);
    else if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  /** Empties the cache so that it restarts at `index`. */
  restart(index: number): void {
    this.entries = [];
    this.head = 0;
    this.from = index;
  }
}

/** Memory of one cached entry besides its data (the FIFO item, the slot, the Entry object). */
const itemOverheadBytes = 96;

interface CacheItem {
  cache: GroupCache;
  entry: Entry;
  bytes: number;
  /** Log position after the entry's record: it is on disk once `written >= lsn`. */
  lsn: number;
}

/** The byte budget and eviction order shared by every group's cache. */
export class EntryCache {
  // FIFO of every entry ever cached (stale items included: they count until they are popped).
  private items: CacheItem[] = [];
  private head = 0;
  private bytes = 0;

  constructor(private readonly bytesMax: number) {}

  /** Bytes counted against the budget. */
  get cachedBytes(): number {
    return this.bytes;
  }

  /** Caches `entry` (the next entry of `cache`), written to disk once the log reaches `lsn`. */
  add(cache: GroupCache, entry: Entry, lsn: number): void {
    cache.push(entry);
    const bytes = entryRecordBytes(entry) + itemOverheadBytes;
    this.items.push({ cache, entry, bytes, lsn });
    this.bytes += bytes;
  }

  /** Evicts the oldest written entries while over budget. */
  evict(writtenLsn: number): void {
    while (this.bytes > this.bytesMax && this.head < this.items.length) {
      const item = this.items[this.head]!;
      if (item.lsn > writtenLsn) break;
      this.head++;
      this.bytes -= item.bytes;
      const { cache, entry } = item;
      if (cache.cachedFrom === entry.index && cache.get(entry.index) === entry) {
        cache.dropThrough(entry.index);
      }
    }
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
