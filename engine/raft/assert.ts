/**
 * Assertions for the Raft core. engine/raft imports nothing from the rest of the engine, so it
 * carries its own tiny copy of engine/assert.ts: same meaning, stays on in production, one
 * condition per call so a failure names one fact.
 */

/** A broken invariant of the Raft core: a bug, or input that violates the documented contract. */
export class RaftAssertionError extends Error {
  constructor(message: string) {
    super(`raft assertion failed: ${message}`);
    this.name = 'RaftAssertionError';
  }
}

/** Throws RaftAssertionError when `condition` is false. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new RaftAssertionError(message);
}
