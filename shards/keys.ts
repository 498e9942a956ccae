/**
 * Keys as the store sees them: strings (UTF-8) or byte arrays, validated once at the API edge.
 */
import { FlotillaError } from '../engine/errors.js';
import { keyBytesMax } from '../engine/limits.js';

const utf8 = new TextEncoder();

/** A key as callers pass it. */
export type Key = string | Uint8Array;

/** The UTF-8 bytes of `key`, after checking it is a non-empty string or byte array within limits. */
export function keyBytes(key: unknown): Uint8Array {
  let bytes: Uint8Array;
  if (typeof key === 'string') bytes = utf8.encode(key);
  else if (key instanceof Uint8Array) bytes = key;
  else {
    throw new FlotillaError(
      'INVALID_ARGUMENT',
      `a key must be a string or a Uint8Array, got ${key === null ? 'null' : typeof key}`,
    );
  }
  if (bytes.length === 0) throw new FlotillaError('INVALID_ARGUMENT', 'a key must not be empty');
  if (bytes.length > keyBytesMax) {
    throw new FlotillaError(
      'KEY_TOO_LARGE',
      `a key of ${bytes.length} bytes exceeds keyBytesMax (${keyBytesMax}); use a shorter key`,
    );
  }
  return bytes;
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
