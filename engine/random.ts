/**
 * Seeded pseudo-random numbers (xoshiro128**), the one random source of the engine. Components
 * receive a RandomSource instead of calling Math.random, so that a seed replays a run exactly.
 */
import type { RandomSource } from './raft/types.js';

function splitmix32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** A deterministic generator; the same seed gives the same sequence on every platform. */
export class SeededRandom implements RandomSource {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    const mix = splitmix32(seed);
    this.a = mix();
    this.b = mix();
    this.c = mix();
    this.d = mix();
  }

  /** A uniform u32. */
  nextU32(): number {
    const result = Math.imul(
      ((Math.imul(this.b, 5) << 7) | (Math.imul(this.b, 5) >>> 25)) >>> 0,
      9,
    );
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = ((this.d << 11) | (this.d >>> 21)) >>> 0;
    this.a >>>= 0;
    this.b >>>= 0;
    this.c >>>= 0;
    return result >>> 0;
  }

  /** A uniform integer in [0, n), for 0 < n <= 2^32. */
  intBelow(n: number): number {
    return Math.floor((this.nextU32() / 2 ** 32) * n);
  }

  /** A uniform float in [0, 1). */
  float(): number {
    return this.nextU32() / 2 ** 32;
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.float() < p;
  }
}

/** A generator seeded from the operating system's entropy, for production use. */
export function entropyRandom(): SeededRandom {
  const seed = new Uint32Array(1);
  globalThis.crypto.getRandomValues(seed);
  return new SeededRandom(seed[0]!);
}
