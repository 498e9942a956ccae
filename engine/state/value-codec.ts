/**
 * Keys and values of the state machine: what a caller may store, how it is validated, and the
 * bytes it becomes.
 *
 * The value model is JSON plus three types: `null`, booleans, numbers, strings, arrays and plain
 * objects, `bigint` (any size), `Date`, and bytes (`Uint8Array`, including `Buffer`). Anything
 * else is refused with INVALID_ARGUMENT before it reaches the log, because msgpack would silently
 * change it: `undefined`, functions, symbols, Map, Set, class instances, sparse arrays, invalid
 * dates, cycles, an own `__proto__` key, strings with lone surrogates. `-0` is stored as `0`, as
 * in JSON.
 *
 * HARD FORMAT: a stored value is a one-byte tag followed by its payload:
 *   tag 0 (raw)     payload = the bytes of a top-level Uint8Array, read back as a Buffer;
 *   tag 1 (msgpack) payload = the value in standard MessagePack (maps, no records), with the
 *                   timestamp extension (-1) for Date and msgpackr's bigint extension for a
 *                   bigint outside 64 bits; bytes nested in a value read back as Buffers.
 */
import { Packr } from 'msgpackr';
import { FlotillaError } from '../errors.js';
import { keyBytesMax, valueBytesMax, valueDepthMax } from '../limits.js';

/** A key: a string (stored as its UTF-8 bytes) or bytes. Keys order by their bytes. */
export type Key = string | Uint8Array;

/** A value the state machine stores; see the module comment for the exact model. */
export type Value =
  | null
  | boolean
  | number
  | bigint
  | string
  | Date
  | Uint8Array
  | Value[]
  | { [key: string]: Value };

/** Tag byte of a stored value. HARD: written to disk; never renumber. */
export const ValueTag = {
  /** Raw bytes, stored as given. */
  Raw: 0,
  /** A MessagePack-encoded value. */
  Msgpack: 1,
} as const;

/**
 * The one MessagePack codec of the state machine (values, commands, results). Options are fixed
 * because the bytes it writes are replicated and compared:
 * - `useRecords: false`: plain maps; msgpackr's record structures are encoder state, and two
 *   encoders with different histories would write different bytes for the same value;
 * - `moreTypes: false`: the value model is validated above, so only standard types appear;
 * - `useBigIntExtension`, `int64AsType: 'bigint'`: every bigint reads back as a bigint;
 * - `useToJSON: false`: stored bytes never depend on a class's JSON shape;
 * - `copyBuffers: true`: decoded bytes never alias LMDB's or the log's reused buffers;
 * - `variableMapSize: true`: the smallest map header, and objects beyond 65535 keys.
 */
export const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  mapsAsObjects: true,
  useBigIntExtension: true,
  int64AsType: 'bigint',
  useToJSON: false,
  copyBuffers: true,
  variableMapSize: true,
});

/**
 * The same codec for decoding entry data while applying: decoded bytes are views into the
 * entry instead of copies (they are copied into LMDB, and never kept past the apply call).
 * Encoding options are identical, so it writes the same bytes as `packr`.
 */
export const entryPackr = new Packr({
  useRecords: false,
  moreTypes: false,
  mapsAsObjects: true,
  useBigIntExtension: true,
  int64AsType: 'bigint',
  useToJSON: false,
  copyBuffers: false,
  variableMapSize: true,
});

/** The bytes of a key, validated: non-empty, well-formed, at most `keyBytesMax` bytes. */
export function encodeKey(key: Key): Uint8Array {
  let bytes: Uint8Array;
  if (typeof key === 'string') {
    if (!isWellFormed(key)) {
      throw invalid('a string key must be well-formed UTF-16 (no lone surrogates)');
    }
    // Buffer.from takes short strings from Node's shared pool: no ArrayBuffer per key, unlike
    // TextEncoder (a tenth of a put's CPU went to it).
    bytes = Buffer.from(key, 'utf8');
  } else if (key instanceof Uint8Array) {
    bytes = key;
  } else {
    throw invalid(`a key must be a string or a Uint8Array, not ${describe(key)}`);
  }
  if (bytes.length === 0) throw invalid('a key must not be empty');
  if (bytes.length > keyBytesMax) throw keyTooLarge(bytes.length);
  return bytes;
}

/**
 * Writes the bytes of a key, validated as `encodeKey` does, into `target` at `offset` and
 * returns their length: the read path's copy-free twin of `encodeKey` (no buffer per call).
 * `target` must have room for `keyBytesMax` bytes after `offset`.
 */
export function encodeKeyInto(key: Key, target: Buffer, offset: number): number {
  if (typeof key !== 'string') {
    const bytes = encodeKey(key);
    target.set(bytes, offset);
    return bytes.length;
  }
  if (!isWellFormed(key)) {
    throw invalid('a string key must be well-formed UTF-16 (no lone surrogates)');
  }
  if (key.length === 0) throw invalid('a key must not be empty');
  // A UTF-16 code unit takes at most 3 UTF-8 bytes; longer strings are measured first, so
  // that `write` never truncates silently.
  const length =
    key.length * 3 <= keyBytesMax ? target.write(key, offset, 'utf8') : Buffer.byteLength(key);
  if (length > keyBytesMax) throw keyTooLarge(length);
  if (key.length * 3 > keyBytesMax) target.write(key, offset, 'utf8');
  return length;
}

function keyTooLarge(length: number): FlotillaError {
  return new FlotillaError(
    'KEY_TOO_LARGE',
    `key is ${length} bytes; the most is ${keyBytesMax}: use a shorter key`,
  );
}

/** The stored form (tag ‖ payload) of a value, validated; throws INVALID_ARGUMENT or
 *  VALUE_TOO_LARGE. */
export function encodeValue(value: Value): Uint8Array {
  if (value instanceof Uint8Array) {
    checkValueSize(value.length);
    const out = Buffer.allocUnsafe(1 + value.length);
    out[0] = ValueTag.Raw;
    out.set(value, 1);
    return out;
  }
  checkValue(value, 0);
  const payload = packValue(value);
  checkValueSize(payload.length);
  const out = Buffer.allocUnsafe(1 + payload.length);
  out[0] = ValueTag.Msgpack;
  out.set(payload, 1);
  return out;
}

/** MessagePack bytes of a validated value; an encoder failure is the caller's INVALID_ARGUMENT. */
export function packValue(value: Value): Uint8Array {
  try {
    return packr.pack(value);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new FlotillaError('INVALID_ARGUMENT', `value cannot be encoded: ${message}`, {
      cause: err,
    });
  }
}

/** Validates a value that travels inside a command or result (exec arguments and results). */
export function checkValue(value: unknown, depth: number): asserts value is Value {
  switch (typeof value) {
    case 'string':
      if (!isWellFormed(value)) throw invalid('a string in a value has a lone surrogate');
      return;
    case 'boolean':
    case 'number':
    case 'bigint':
      return;
    case 'object':
      break;
    default:
      throw invalid(`a value must not contain ${describe(value)}`);
  }
  if (value === null || value instanceof Uint8Array) return;
  if (depth >= valueDepthMax) {
    throw invalid(`a value nests deeper than ${valueDepthMax} levels (or is cyclic)`);
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw invalid('a value must not contain an invalid Date');
    return;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) throw invalid('a value must not contain a sparse array');
      checkValue(value[i], depth + 1);
    }
    return;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw invalid(`a value must not contain ${describe(value)}; use a plain object`);
  }
  if (Object.getOwnPropertySymbols(value).length > 0) {
    throw invalid('a value must not contain symbol-keyed properties');
  }
  for (const name of Object.keys(value)) {
    if (name === '__proto__') throw invalid('a value must not contain a "__proto__" key');
    if (!isWellFormed(name)) throw invalid('an object key in a value has a lone surrogate');
    checkValue((value as Record<string, unknown>)[name], depth + 1);
  }
}

/** The value a stored form (tag ‖ payload) holds. */
export function decodeValue(stored: Uint8Array): Value {
  const tag = stored[0];
  if (tag === ValueTag.Raw) return Buffer.from(stored.subarray(1));
  if (tag === ValueTag.Msgpack) return packr.unpack(stored.subarray(1)) as Value;
  throw new FlotillaError('CORRUPT_STATE', `stored value has unknown tag ${String(tag)}`);
}

/**
 * `decodeValue` of the stored value that fills `record` from `start` on: raw bytes are copied
 * straight out of the record (the point read's path: no intermediate views).
 */
export function decodeValueAt(record: Buffer, start: number): Value {
  if (record[start] !== ValueTag.Raw) return decodeValue(record.subarray(start));
  const out = Buffer.allocUnsafe(record.length - start - 1);
  record.copy(out, 0, start + 1);
  return out;
}

/** Throws VALUE_TOO_LARGE when an encoded value's payload exceeds `valueBytesMax`. */
export function checkValueSize(payloadBytes: number): void {
  if (payloadBytes > valueBytesMax) {
    throw new FlotillaError(
      'VALUE_TOO_LARGE',
      `value encodes to ${payloadBytes} bytes; the most is ${valueBytesMax}: split it up`,
    );
  }
}

/** An INVALID_ARGUMENT error with `message`. */
export function invalid(message: string): FlotillaError {
  return new FlotillaError('INVALID_ARGUMENT', message);
}

function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  if (typeof value === 'object' && value !== null) {
    const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
    return typeof name === 'string' ? `a ${name}` : 'an object';
  }
  return typeof value;
}

function isWellFormed(s: string): boolean {
  // String.prototype.isWellFormed exists from Node 20 but is not in the ES2022 typings.
  return (s as unknown as { isWellFormed(): boolean }).isWellFormed();
}
