/**
 * Hash partitioning: a key's hash (xxHash32 of its hash tag) falls in exactly one shard's range of
 * the hash space [0, 2^32).
 */
import { assert } from '../engine/assert.js';
import { hashKey } from '../wasm/index.js';
import { hashTag } from './keys.js';

/** Size of the hash space. */
export const hashSpace = 2 ** 32;

/** The partitioning hash of a key (already validated bytes). */
export function keyHash(key: Uint8Array): number {
  return hashKey(hashTag(key));
}

/** A shard's slice of the hash space: [start, end), end exclusive, end may be 2^32. */
export interface HashRange {
  start: number;
  end: number;
}

/** Cuts the hash space into `count` contiguous ranges of (nearly) equal size. */
export function evenRanges(count: number): HashRange[] {
  assert(Number.isInteger(count) && count >= 1, 'shard count must be a positive integer');
  assert(count <= hashSpace, 'shard count must not exceed the hash space');
  const ranges: HashRange[] = [];
  for (let i = 0; i < count; i++) {
    ranges.push({
      start: Math.floor((i * hashSpace) / count),
      end: Math.floor(((i + 1) * hashSpace) / count),
    });
  }
  return ranges;
}

/**
 * Finds the range holding `hash` among `starts`, the ascending start points of ranges that tile
 * the hash space (the first start is 0). Returns the range's position.
 */
export function rangeIndexOf(starts: ArrayLike<number>, hash: number): number {
  assert(starts.length > 0, 'a partitioning has at least one range');
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (starts[mid]! <= hash) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
