/**
 * Keys as the store sees them: strings (UTF-8) or byte arrays, validated once at the API edge.
 */
import { encodeKey } from '../engine/state/value-codec.js';

/** A key as callers pass it. */
export type Key = string | Uint8Array;

/**
 * The bytes of `key` (UTF-8 for strings), after checking it is a non-empty, well-formed string
 * or byte array within keyBytesMax: INVALID_ARGUMENT or KEY_TOO_LARGE otherwise.
 */
export function keyBytes(key: unknown): Uint8Array {
  return encodeKey(key as Key);
}

const openBrace = 0x7b;
const closeBrace = 0x7d;

/**
 * The part of a key that decides its shard: as in Redis Cluster, when the key holds a `{` followed
 * later by a `}` with at least one byte between them, only the bytes between the first `{` and
 * the first `}` after it are hashed, so `{user1}.name` and `{user1}.mail` share a shard.
 */
export function hashTag(key: Uint8Array): Uint8Array {
  const open = key.indexOf(openBrace);
  if (open < 0) return key;
  const close = key.indexOf(closeBrace, open + 1);
  if (close < 0 || close === open + 1) return key;
  return key.subarray(open + 1, close);
}
