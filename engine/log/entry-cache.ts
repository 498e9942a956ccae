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

/** Memory of one cached entry besides its data (its FIFO slots and the Entry object). */
const itemOverheadBytes = 96;

/** The byte budget and eviction order shared by every group's cache. */
export class EntryCache {
  // FIFO of every entry ever cached, as parallel arrays (no object per entry): stale items
  // (truncated or compacted since) count until they are popped. Item k is entries[k] of
  // caches[k], `sizes[k]` bytes, on disk once the log is written up to `lsns[k]`.
  private caches: GroupCache[] = [];
  private entries: Entry[] = [];
  private sizes: number[] = [];
  private lsns: number[] = [];
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
    this.caches.push(cache);
    this.entries.push(entry);
    this.sizes.push(bytes);
    this.lsns.push(lsn);
    this.bytes += bytes;
  }

  /** Evicts the oldest written entries while over budget. */
  evict(writtenLsn: number): void {
    while (this.bytes > this.bytesMax && this.head < this.entries.length) {
      const k = this.head;
      if (this.lsns[k]! > writtenLsn) break;
      this.head++;
      this.bytes -= this.sizes[k]!;
      const cache = this.caches[k]!;
      const entry = this.entries[k]!;
      if (cache.cachedFrom === entry.index && cache.get(entry.index) === entry) {
        cache.dropThrough(entry.index);
      }
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      const h = this.head;
      this.caches = this.caches.slice(h);
      this.entries = this.entries.slice(h);
      this.sizes = this.sizes.slice(h);
      this.lsns = this.lsns.slice(h);
      this.head = 0;
    }
  }
}
