/**
 * The commands a store proposes into a shard's Raft log (an entry's `data`) and the results that
 * applying them produces.
 *
 * Callers build a `Command`, `encodeCommand` validates it (every error a caller can make is
 * caught here, before anything is proposed) and returns the entry bytes. The state machine
 * decodes them with `decodeCommand` while applying. Results are plain, deterministic data: the
 * same entry applied on any replica gives an equal result. Failures are results too
 * (`{ type: 'error', code }`), so that one bad command never stops a shard; `resultError` turns
 * one into the FlotillaError a caller sees.
 *
 * HARD FORMAT (it is in the Raft log): `data` is a MessagePack array
 *   `[1, opcode, session, ...fields]` (1 = command format version; session = null or
 *   `[id bin, seq, time]`), or empty (a leader's no-op). Keys travel as bin; values travel in
 *   their stored form (tag ‖ payload, see value-codec.ts) as bin, so applying one copies bytes and
 *   never re-encodes. Per opcode:
 *   0 noop       `[1, 0]`
 *   1 put        `[1, 1, s, key, value]`
 *   2 delete     `[1, 2, s, key]`
 *   3 cas        `[1, 3, s, key, expectedVersion | null, expectedValue | null, value]`
 *   4 incr       `[1, 4, s, key, by]` (by: float64/int or bigint)
 *   5 batch      `[1, 5, s, [op, ...]]`, each op `[opcode, ...fields]` of put/delete/cas/incr
 *   6 exec       `[1, 6, s, name, key, args]` (args: any Value, inline)
 *   7 shardRange `[1, 7, null, hashLow, hashHigh]`
 */
import { FlotillaError } from '../errors.js';
import {
  batchOpsMax,
  commandBytesMax,
  commandNameBytesMax,
  keyBytesMax,
  sessionIdBytesMax,
} from '../limits.js';
import {
  binBytes,
  DirectReader,
  isPackedUint,
  numberBytes,
  putBin,
  putNumber,
  putUint,
  uintBytes,
  writeBinHeader,
} from '../msgpack-bin.js';
import {
  checkValue,
  checkValueSize,
  encodeKey,
  encodeValue,
  entryPackr,
  invalid,
  type Key,
  packr,
  packValue,
  type Value,
  ValueTag,
} from './value-codec.js';

/** Version of the command array layout. HARD. */
export const commandFormatVersion = 1;

/** Opcodes. HARD: written to the log; never renumber, only add. */
export const Opcode = {
  Noop: 0,
  Put: 1,
  Delete: 2,
  Cas: 3,
  Incr: 4,
  Batch: 5,
  Exec: 6,
  ShardRange: 7,
} as const;

/**
 * A client session (Raft thesis §6.3): a command carrying one is applied at most once per shard.
 * `seq` grows by one per request of the session on that shard; `time` is the proposer's clock in
 * milliseconds, carried in the command so that expiry never reads a local clock while applying.
 */
export interface Session {
  id: string | Uint8Array;
  seq: number;
  time: number;
}

/** What a cas compares: the key's version (0 = the key must not exist) or its value's bytes. */
export type CasExpectation = { version: number } | { value: Value };

/** One operation of an atomic batch. */
export type BatchOp =
  | { type: 'put'; key: Key; value: Value }
  | { type: 'delete'; key: Key }
  | { type: 'cas'; key: Key; expected: CasExpectation; value: Value }
  | { type: 'incr'; key: Key; by: number | bigint };

/** A command, as a caller builds it. */
export type Command =
  | { type: 'noop' }
  | (BatchOp & { session?: Session })
  | { type: 'batch'; ops: BatchOp[]; session?: Session }
  | { type: 'exec'; name: string; key: Key; args?: Value; session?: Session }
  | { type: 'shardRange'; hashLow: number; hashHigh: number };

/** Result codes an applied command can fail with: a subset of FlotillaError codes. */
export type StateErrorCode =
  | 'INVALID_ARGUMENT'
  | 'KEY_TOO_LARGE'
  | 'VALUE_TOO_LARGE'
  | 'WRONG_TYPE'
  | 'COMMAND_FAILED'
  | 'SESSION_EXPIRED'
  | 'STALE_EPOCH';

/** A command that did not take effect, and why. Nothing it would have written was kept. */
export interface ErrorResult {
  type: 'error';
  code: StateErrorCode;
  message: string;
}

/** The result of one operation (alone or inside a batch). */
export type OpResult =
  /** `version` = the log index of this write. */
  | { type: 'put'; version: number }
  /** Deleting a missing key is not a write: no version, no change record. */
  | { type: 'delete'; existed: boolean }
  /** ok: `version` is the new version; not ok: the current version (0 = absent). */
  | { type: 'cas'; ok: boolean; version: number }
  | { type: 'incr'; value: number | bigint; version: number }
  | ErrorResult;

/** The result of applying one entry. */
export type CommandResult =
  | OpResult
  | { type: 'noop' }
  /** The entry's index was already applied (replay after a restart): nothing was done. */
  | { type: 'skipped' }
  /** ok: every op applied, in order; not ok: nothing applied, `failure` says why op i failed. */
  | { type: 'batch'; ok: true; results: OpResult[] }
  | { type: 'batch'; ok: false; failedOp: number; failure: OpResult }
  /** The user command's return value (`undefined` becomes null). */
  | { type: 'exec'; value: Value }
  | { type: 'shardRange'; hashLow: number; hashHigh: number };

/** A decoded session. */
export interface DecodedSession {
  id: Uint8Array;
  seq: number;
  time: number;
}

/** A decoded operation: keys as bytes, values in stored form. */
export type DecodedOp =
  | { type: 'put'; key: Uint8Array; stored: Uint8Array }
  | { type: 'delete'; key: Uint8Array }
  | {
      type: 'cas';
      key: Uint8Array;
      expectedVersion: number | null;
      expectedStored: Uint8Array | null;
      stored: Uint8Array;
    }
  | { type: 'incr'; key: Uint8Array; by: number | bigint };

/** A decoded command, as the state machine applies it. */
export type DecodedCommand =
  | { type: 'noop' }
  | (DecodedOp & { session: DecodedSession | null })
  | { type: 'batch'; ops: DecodedOp[]; session: DecodedSession | null }
  | {
      type: 'exec';
      name: string;
      key: Uint8Array;
      args: Value;
      session: DecodedSession | null;
    }
  | { type: 'shardRange'; hashLow: number; hashHigh: number };

/**
 * Entry bytes of `command`, carrying `session` (default: the command's own); throws
 * INVALID_ARGUMENT, KEY_TOO_LARGE or VALUE_TOO_LARGE.
 */
export function encodeCommand(
  command: Command,
  session = 'session' in command ? command.session : undefined,
): Uint8Array {
  const data =
    (command.type === 'put' && encodePut(command.key, command.value, session)) ||
    packr.pack(commandArray(command, session));
  if (data.length > commandBytesMax) {
    throw new FlotillaError(
      'VALUE_TOO_LARGE',
      `command encodes to ${data.length} bytes; the most is ${commandBytesMax}: split it up`,
    );
  }
  return data;
}

/** MessagePack bytes of a put array's start, `[1, 1, ` (fixarray of 5). */
const putHead = [0x95, commandFormatVersion, Opcode.Put] as const;
/** MessagePack nil: a sessionless command's session field. */
const nil = 0xc0;
/** MessagePack fixarray of 3: a session's `[id, seq, time]`. */
const sessionHead = 0x93;

/**
 * The bytes `packr.pack([1, 1, session, key, stored])` writes for a put (the hot write), built
 * in one buffer: the stored value (tag ‖ payload) goes straight into it instead of through an
 * intermediate array and value buffer. False for a session whose time msgpackr would write as a
 * negative number (the general path then encodes it).
 */
function encodePut(key: Key, value: Value, session: Session | undefined): Uint8Array | false {
  const id = session === undefined ? undefined : sessionId(session);
  if (session !== undefined && session.time < 0) return false;
  const keyBytes = encodeKey(key);
  let tag: number;
  let payload: Uint8Array;
  if (value instanceof Uint8Array) {
    tag = ValueTag.Raw;
    payload = value;
  } else {
    checkValue(value, 0);
    tag = ValueTag.Msgpack;
    payload = packValue(value);
  }
  checkValueSize(payload.length);
  const storedLength = 1 + payload.length;
  const sessionBytes =
    session === undefined || id === undefined
      ? 1
      : 1 + binBytes(id.length) + numberBytes(session.seq) + numberBytes(session.time);
  const out = Buffer.allocUnsafe(
    putHead.length + sessionBytes + binBytes(keyBytes.length) + binBytes(storedLength),
  );
  out.set(putHead, 0);
  let at: number = putHead.length;
  if (session === undefined || id === undefined) out[at++] = nil;
  else {
    out[at] = sessionHead;
    at = putBin(out, at + 1, id);
    at = putNumber(out, putNumber(out, at, session.seq), session.time);
  }
  at = putBin(out, at, keyBytes);
  at = writeBinHeader(out, at, storedLength);
  out[at] = tag;
  out.set(payload, at + 1);
  return out;
}

/**
 * The put that `encodePut` writes, read without the general decoder: undefined when `data` is
 * anything else (it then takes the general path, which accepts and rejects exactly as before).
 */
function decodePut(data: Uint8Array): DecodedCommand | undefined {
  if (data.length < 8) return undefined;
  for (let i = 0; i < putHead.length; i++) if (data[i] !== putHead[i]) return undefined;
  const r = new DirectReader(data, putHead.length);
  let id: Uint8Array | undefined;
  let seq = 0;
  let time = 0;
  if (data[r.at] === nil) r.at++;
  else {
    if (data[r.at] !== sessionHead) return undefined;
    r.at++;
    id = r.bin();
    seq = r.number();
    time = r.number();
    if (id === undefined || Number.isNaN(seq) || Number.isNaN(time)) return undefined;
  }
  const key = r.bin();
  const stored = r.bin();
  if (key === undefined || stored === undefined || !r.done) return undefined;
  // Checked in the general path's order: the session, the key, the value.
  const session = id === undefined ? null : checkSession(id, seq, time);
  return { type: 'put', key: bytesField(key, 'key'), stored: storedField(stored), session };
}

function commandArray(command: Command, session: Session | undefined): unknown[] {
  switch (command.type) {
    case 'noop':
      return [commandFormatVersion, Opcode.Noop];
    case 'batch': {
      if (!Array.isArray(command.ops)) throw invalid('batch ops must be an array');
      if (command.ops.length > batchOpsMax) {
        throw invalid(`a batch has ${command.ops.length} ops; the most is ${batchOpsMax}`);
      }
      const ops = command.ops.map((op) => opArray(op));
      return [commandFormatVersion, Opcode.Batch, sessionArray(session), ops];
    }
    case 'exec': {
      const name = checkName(command.name);
      const args = command.args === undefined ? null : command.args;
      checkValue(args, 0);
      const key = encodeKey(command.key);
      return [commandFormatVersion, Opcode.Exec, sessionArray(session), name, key, args];
    }
    case 'shardRange': {
      checkRange(command.hashLow, command.hashHigh);
      return [commandFormatVersion, Opcode.ShardRange, null, command.hashLow, command.hashHigh];
    }
    case 'put':
    case 'delete':
    case 'cas':
    case 'incr': {
      const [opcode, ...fields] = opArray(command);
      return [commandFormatVersion, opcode, sessionArray(session), ...fields];
    }
    default:
      throw invalid(`unknown command type ${String((command as { type: unknown }).type)}`);
  }
}

function opArray(op: BatchOp): unknown[] {
  if (typeof op !== 'object' || op === null) throw invalid('a batch op must be an object');
  switch (op.type) {
    case 'put':
      return [Opcode.Put, encodeKey(op.key), encodeValue(op.value)];
    case 'delete':
      return [Opcode.Delete, encodeKey(op.key)];
    case 'cas': {
      const key = encodeKey(op.key);
      const expected = op.expected as Partial<{ version: unknown; value: Value }> | undefined;
      if (typeof expected !== 'object' || expected === null) {
        throw invalid('cas needs expected: { version } or { value }');
      }
      const value = encodeValue(op.value);
      if ('version' in expected) {
        const version = expected.version;
        if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) {
          throw invalid('cas expected.version must be an integer >= 0 (0 = must not exist)');
        }
        return [Opcode.Cas, key, version, null, value];
      }
      if (!('value' in expected)) throw invalid('cas needs expected: { version } or { value }');
      return [Opcode.Cas, key, null, encodeValue(expected.value as Value), value];
    }
    case 'incr': {
      const by = op.by;
      if (!(typeof by === 'bigint' || (typeof by === 'number' && Number.isFinite(by)))) {
        throw invalid('incr by must be a finite number or a bigint');
      }
      return [Opcode.Incr, encodeKey(op.key), by];
    }
    default:
      throw invalid(`unknown operation type ${String((op as { type: unknown }).type)}`);
  }
}

function sessionArray(session: Session | undefined): unknown[] | null {
  if (session === undefined) return null;
  return [sessionId(session), session.seq, session.time];
}

/** The session's id as bytes, once its fields are checked; throws INVALID_ARGUMENT. */
function sessionId(session: Session): Uint8Array {
  const id = typeof session.id === 'string' ? Buffer.from(session.id, 'utf8') : session.id;
  if (!(id instanceof Uint8Array) || id.length === 0 || id.length > sessionIdBytesMax) {
    throw invalid(`a session id must be 1..${sessionIdBytesMax} bytes (a string or bytes)`);
  }
  if (!Number.isSafeInteger(session.seq) || session.seq < 1) {
    throw invalid('a session seq must be an integer >= 1');
  }
  if (!Number.isFinite(session.time)) throw invalid('a session time must be a finite number');
  return id;
}

function checkName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw invalid('a command name must be a non-empty string');
  }
  if (Buffer.byteLength(name, 'utf8') > commandNameBytesMax) {
    throw invalid(`a command name must be at most ${commandNameBytesMax} bytes`);
  }
  return name;
}

function checkRange(hashLow: unknown, hashHigh: unknown): void {
  const ok =
    Number.isSafeInteger(hashLow) &&
    Number.isSafeInteger(hashHigh) &&
    (hashLow as number) >= 0 &&
    (hashLow as number) < (hashHigh as number) &&
    (hashHigh as number) <= 2 ** 32;
  if (!ok) throw invalid('a shard hash range needs 0 <= hashLow < hashHigh <= 2^32');
}

/**
 * Decodes entry bytes; throws INVALID_ARGUMENT (or KEY_TOO_LARGE, VALUE_TOO_LARGE) when they are
 * not a command that encodeCommand could have written.
 */
export function decodeCommand(data: Uint8Array): DecodedCommand {
  if (data.length === 0) return { type: 'noop' };
  const put = decodePut(data);
  if (put !== undefined) return put;
  let array: unknown;
  try {
    array = entryPackr.unpack(data);
  } catch (err) {
    throw new FlotillaError('INVALID_ARGUMENT', 'entry data is not MessagePack', { cause: err });
  }
  if (!Array.isArray(array) || array[0] !== commandFormatVersion) {
    throw invalid(`entry data is not a version-${commandFormatVersion} command`);
  }
  const opcode = array[1];
  if (opcode === Opcode.Noop) return { type: 'noop' };
  if (opcode === Opcode.ShardRange) {
    checkRange(array[3], array[4]);
    return { type: 'shardRange', hashLow: array[3] as number, hashHigh: array[4] as number };
  }
  const session = decodeSession(array[2]);
  if (opcode === Opcode.Batch) {
    if (!Array.isArray(array[3])) throw invalid('batch ops must be an array');
    if (array[3].length > batchOpsMax) throw invalid(`a batch has more than ${batchOpsMax} ops`);
    const ops = array[3].map((op: unknown) => {
      if (!Array.isArray(op)) throw invalid('a batch op must be an array');
      return decodeOp(op[0], op, 1);
    });
    return { type: 'batch', ops, session };
  }
  if (opcode === Opcode.Exec) {
    const name = checkName(array[3]);
    const key = bytesField(array[4], 'exec key');
    checkValue(array[5], 0);
    return { type: 'exec', name, key, args: array[5], session };
  }
  const op = decodeOp(opcode, array, 3) as DecodedOp & { session: DecodedSession | null };
  op.session = session;
  return op;
}

function decodeOp(opcode: unknown, a: unknown[], at: number): DecodedOp {
  switch (opcode) {
    case Opcode.Put:
      return { type: 'put', key: bytesField(a[at], 'key'), stored: storedField(a[at + 1]) };
    case Opcode.Delete:
      return { type: 'delete', key: bytesField(a[at], 'key') };
    case Opcode.Cas: {
      const version = a[at + 1];
      const expectedVersion = version === null ? null : (version as number);
      if (expectedVersion !== null && !(Number.isSafeInteger(version) && expectedVersion >= 0)) {
        throw invalid('cas expected version must be an integer >= 0');
      }
      const expectedStored = a[at + 2] === null ? null : storedField(a[at + 2]);
      if ((expectedVersion === null) === (expectedStored === null)) {
        throw invalid('cas needs exactly one of expected version and expected value');
      }
      const stored = storedField(a[at + 3]);
      return {
        type: 'cas',
        key: bytesField(a[at], 'key'),
        expectedVersion,
        expectedStored,
        stored,
      };
    }
    case Opcode.Incr: {
      const by = a[at + 1];
      if (!(typeof by === 'bigint' || (typeof by === 'number' && Number.isFinite(by)))) {
        throw invalid('incr by must be a finite number or a bigint');
      }
      return { type: 'incr', key: bytesField(a[at], 'key'), by };
    }
    default:
      throw invalid(`unknown opcode ${String(opcode)}`);
  }
}

function decodeSession(field: unknown): DecodedSession | null {
  if (field === null) return null;
  if (!Array.isArray(field)) throw invalid('a session must be [id, seq, time]');
  const [id, seq, time] = field as [unknown, unknown, unknown];
  return checkSession(id, seq, time);
}

function checkSession(id: unknown, seq: unknown, time: unknown): DecodedSession {
  if (!(id instanceof Uint8Array) || id.length === 0 || id.length > sessionIdBytesMax) {
    throw invalid(`a session id must be 1..${sessionIdBytesMax} bytes`);
  }
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) {
    throw invalid('a session seq must be an integer >= 1');
  }
  if (typeof time !== 'number' || !Number.isFinite(time)) {
    throw invalid('a session time must be a finite number');
  }
  return { id, seq, time };
}

/** A key: non-empty bytes within `keyBytesMax`, as encodeKey lets through. */
function bytesField(field: unknown, what: string): Uint8Array {
  if (!(field instanceof Uint8Array) || field.length === 0) {
    throw invalid(`${what} must be non-empty bytes`);
  }
  if (field.length > keyBytesMax) {
    throw new FlotillaError('KEY_TOO_LARGE', `${what} is ${field.length} bytes`);
  }
  return field;
}

function storedField(field: unknown): Uint8Array {
  if (!(field instanceof Uint8Array) || field.length === 0) {
    throw invalid('a value must be tagged bytes');
  }
  if (field[0] !== ValueTag.Raw && field[0] !== ValueTag.Msgpack) {
    throw invalid(`a value has unknown tag ${field[0]}`);
  }
  checkValueSize(field.length - 1);
  if (field[0] === ValueTag.Msgpack) checkPayload(field.subarray(1));
  return field;
}

/**
 * A MessagePack value must decode to exactly one value of the model, as encodeValue writes it:
 * it is stored as it is and decoded much later (get, incr, exec, the change feed), where bytes
 * that do not parse would fail every replica alike, again on every retry.
 */
function checkPayload(payload: Uint8Array): void {
  let value: unknown;
  try {
    value = entryPackr.unpack(payload);
  } catch (err) {
    throw new FlotillaError('INVALID_ARGUMENT', 'a value is not MessagePack', { cause: err });
  }
  checkValue(value, 0);
}

/**
 * MessagePack bytes of `{ type: 'put', version: ` (a fixmap of 2, then the keys and the type as
 * fixstr): what msgpackr writes before a put result's version.
 */
const putResultHead = Buffer.from('82a474797065a3707574a776657273696f6e', 'hex');

/**
 * Bytes of a result, as the session table stores it and a node answers a client with it:
 * exactly `packr.pack(result)`, with a put's (the hot answer) built directly.
 */
export function encodeResult(result: CommandResult): Uint8Array {
  if (result.type !== 'put' || !isPackedUint(result.version)) return packr.pack(result);
  const head = putResultHead.length;
  const out = Buffer.allocUnsafe(head + uintBytes(result.version));
  putResultHead.copy(out, 0);
  putUint(out, head, result.version);
  return out;
}

/**
 * The put result that `encodeResult` writes, read directly; undefined for anything else (which
 * the general decoder reads).
 */
export function decodePutResult(bytes: Uint8Array): CommandResult | undefined {
  const head = putResultHead.length;
  if (bytes.length <= head || bytes[0] !== putResultHead[0]) return undefined;
  for (let i = 1; i < head; i++) if (bytes[i] !== putResultHead[i]) return undefined;
  const r = new DirectReader(bytes, head);
  const version = r.uint();
  if (version < 0 || !r.done) return undefined;
  return { type: 'put', version };
}

/** The result `encodeResult` wrote. */
export function decodeResult(bytes: Uint8Array): CommandResult {
  return decodePutResult(bytes) ?? (packr.unpack(bytes) as CommandResult);
}

/** The FlotillaError a caller should see for `result`, or undefined when it succeeded. A cas
 *  whose expectation did not hold (alone or in a batch) is an answer, not an error. */
export function resultError(result: CommandResult): FlotillaError | undefined {
  if (result.type === 'error') return new FlotillaError(result.code, result.message);
  if (result.type === 'batch' && !result.ok && result.failure.type === 'error') {
    const { code, message } = result.failure;
    return new FlotillaError(code, `batch op ${result.failedOp}: ${message}`);
  }
  return undefined;
}
