/**
 * Jittered exponential backoff for reconnects. The ceiling doubles per failed attempt, from
 * `minMs` up to `maxMs`; the delay is drawn uniformly from [ceiling / 2, ceiling) ("equal
 * jitter"), so peers that lost each other at the same moment do not redial in lockstep, yet a
 * delay never collapses to zero.
 */
import { assert } from '../assert.js';
import type { RandomSource } from '../raft/types.js';

/** Reconnect delays for one connection slot. */
export class Backoff {
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly random: RandomSource;
  /** Failed attempts since the last success. */
  private attempt = 0;

  constructor(minMs: number, maxMs: number, random: RandomSource) {
    assert(minMs > 0, 'backoff minimum is positive');
    assert(minMs <= maxMs, 'backoff range is ordered');
    this.minMs = minMs;
    this.maxMs = maxMs;
    this.random = random;
  }

  /** Failed attempts since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The delay before the next attempt; each call counts one more failure. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    const half = ceiling / 2;
    return Math.floor(half + this.random.intBelow(Math.max(1, Math.ceil(half))));
  }

  /** Back to the shortest delay, after a connection succeeded. */
  reset(): void {
    this.attempt = 0;
  }
}
