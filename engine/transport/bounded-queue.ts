/**
 * A FIFO bounded both in items and in bytes (STYLE.md §7). A batch is accepted whole or refused
 * whole, so a caller's `false` always means "none of these were queued".
 */
import { assert } from '../assert.js';

/** A bounded FIFO of items with known sizes. */
export class BoundedQueue<T> {
  private items: T[] = [];
  private sizes: number[] = [];
  /** Index of the first live item; the arrays are compacted when it passes half. */
  private head = 0;
  // Invariant: length === items.length - head, bytes === sum of live sizes.
  private count = 0;
  private byteCount = 0;
  private readonly itemsMax: number;
  private readonly bytesMax: number;

  constructor(itemsMax: number, bytesMax: number) {
    assert(itemsMax > 0, 'a queue holds at least one item');
    assert(bytesMax > 0, 'a queue holds at least one byte');
    this.itemsMax = itemsMax;
    this.bytesMax = bytesMax;
  }

  /** Items queued. */
  get length(): number {
    return this.count;
  }

  /** Bytes queued. */
  get bytes(): number {
    return this.byteCount;
  }

  /** Queues all of `batch` (sizes in `sizes`) or, when they do not all fit, none of them. */
  offer(batch: readonly T[], sizes: readonly number[]): boolean {
    assert(batch.length === sizes.length, 'one size per item');
    let total = 0;
    for (const s of sizes) total += s;
    if (this.count + batch.length > this.itemsMax) return false;
    if (this.byteCount + total > this.bytesMax) return false;
    for (let i = 0; i < batch.length; i++) {
      this.items.push(batch[i]!);
      this.sizes.push(sizes[i]!);
    }
    this.count += batch.length;
    this.byteCount += total;
    return true;
  }

  /** Size of the oldest item, or undefined when empty. */
  peekSize(): number | undefined {
    return this.count === 0 ? undefined : this.sizes[this.head];
  }

  /**
   * Removes and returns the longest prefix of at most `itemsMax` items whose sizes sum to at
   * most `bytesBudget`, but always at least one item when the queue is not empty.
   */
  take(bytesBudget: number, itemsMax: number): T[] {
    const out: T[] = [];
    let used = 0;
    while (this.count > 0 && out.length < itemsMax) {
      const size = this.sizes[this.head]!;
      if (out.length > 0 && used + size > bytesBudget) break;
      out.push(this.items[this.head]!);
      this.head++;
      this.count--;
      this.byteCount -= size;
      used += size;
    }
    this.compact();
    return out;
  }

  /** Empties the queue; returns how many items were dropped. */
  clear(): number {
    const dropped = this.count;
    this.items = [];
    this.sizes = [];
    this.head = 0;
    this.count = 0;
    this.byteCount = 0;
    return dropped;
  }

  private compact(): void {
    if (this.count === 0) {
      this.items = [];
      this.sizes = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
  }
}
