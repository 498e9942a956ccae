/**
 * Every failure a caller can see is a FlotillaError with a stable `code`. Codes are part of the
 * public API: never rename one, only add.
 */
export const ErrorCode = {
  /** The request reached a replica that is not the shard's leader; `leaderHint` may say who is. */
  NOT_LEADER: 'NOT_LEADER',
  /** The request was routed with an out-of-date shard map; refresh and retry. */
  STALE_EPOCH: 'STALE_EPOCH',
  /** The deadline passed; `outcome` says whether the operation may have been applied. */
  TIMEOUT: 'TIMEOUT',
  /** Not enough replicas are reachable to serve the request. */
  UNAVAILABLE: 'UNAVAILABLE',
  /** A bounded queue or budget is full; back off and retry. */
  BUSY: 'BUSY',
  /** A caller passed an argument that can never succeed. */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** A key is longer than `keyBytesMax`. */
  KEY_TOO_LARGE: 'KEY_TOO_LARGE',
  /** A value is longer than `valueBytesMax`. */
  VALUE_TOO_LARGE: 'VALUE_TOO_LARGE',
  /** The binary log failed verification somewhere other than its torn tail. */
  CORRUPT_LOG: 'CORRUPT_LOG',
  /** Stored state (LMDB, node.json, a snapshot) failed verification. */
  CORRUPT_STATE: 'CORRUPT_STATE',
  /** A file or directory was written by an incompatible format version. */
  VERSION_MISMATCH: 'VERSION_MISMATCH',
  /** The store, node or group has been closed. */
  CLOSED: 'CLOSED',
  /** A peer or client failed the cluster handshake. */
  AUTH_FAILED: 'AUTH_FAILED',
  /** A peer sent bytes that do not parse as the protocol. */
  PROTOCOL: 'PROTOCOL',
  /** A proposal was dropped before it committed; `reason` says why. */
  DROPPED: 'DROPPED',
  /** Configuration (cluster.json, options) is malformed or inconsistent. */
  CONFIG: 'CONFIG',
  /** An operating-system I/O call failed. */
  IO: 'IO',
  /** The stored value has the wrong type for the operation (e.g. incr on a non-number). */
  WRONG_TYPE: 'WRONG_TYPE',
  /** A user command (exec) threw; `reason` carries its message. Nothing it wrote was kept. */
  COMMAND_FAILED: 'COMMAND_FAILED',
  /** The client session no longer remembers this request's result; start a new session. */
  SESSION_EXPIRED: 'SESSION_EXPIRED',
  /** A change-feed cursor is older than the retained changes; re-read the state and resume. */
  COMPACTED: 'COMPACTED',
} as const;

/** A stable error code; see {@link ErrorCode}. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Extra, code-specific facts carried by an error. */
export interface ErrorDetails {
  /** For NOT_LEADER: the node believed to lead the group, 0 if unknown. */
  leaderHint?: number;
  /** For TIMEOUT: whether the operation may have taken effect. */
  outcome?: 'unknown' | 'not-applied';
  /** For CORRUPT_LOG and CORRUPT_STATE: the file, byte offset and group involved. */
  file?: string;
  offset?: number;
  group?: number;
  /** For DROPPED: why the proposal did not commit. */
  reason?: string;
  /** The underlying error, when one operating-system or library error caused this one. */
  cause?: unknown;
}

/** The one error type a Flotilla caller ever has to handle. */
export class FlotillaError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'FlotillaError';
    this.code = code;
    this.details = details;
  }
}

/** True when `err` is a FlotillaError, optionally of the given code. */
export function isFlotillaError(err: unknown, code?: ErrorCode): err is FlotillaError {
  return err instanceof FlotillaError && (code === undefined || err.code === code);
}
