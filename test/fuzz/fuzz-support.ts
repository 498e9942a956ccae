/**
 * Knobs shared by the fuzz suites: how many runs, from which seed, how long a test may take, and
 * a probe of the memory one decode call allocates.
 *
 * By default every property runs a fixed number of times from a fixed seed (derived from its
 * name), so `npm test` is deterministic. `FUZZ_RUNS=<n>` is the long mode: each property runs
 * about n times (divided by its cost for the ones that go through LMDB or sockets), from a fresh
 * seed, with no test timeout. A failure prints fast-check's seed and path; replay it with
 * `FUZZ_SEED=<seed> FUZZ_PATH=<path> npx vitest run test/fuzz -t '<test name>'`.
 */
import { randomInt } from 'node:crypto';
import type fc from 'fast-check';
import { crc32c } from '../../wasm/index.js';

function envInt(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined || text === '') return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new Error(`${name} must be an integer, got "${text}"`);
  return value;
}

const longRuns = envInt('FUZZ_RUNS');
const fixedSeed = envInt('FUZZ_SEED');
const replayPath = process.env.FUZZ_PATH;

/** True in the long mode (`FUZZ_RUNS` set). */
export const fuzzLong = longRuns !== undefined;

/** Timeout of one fuzz test: the suite default normally, none worth the name in long mode. */
export const fuzzTimeoutMs = fuzzLong ? 7 * 24 * 3600 * 1000 : 60_000;

/**
 * Runs of a property: `defaultRuns` normally; in long mode `FUZZ_RUNS / cost` (never fewer than
 * the default), where `cost` says how many pure-decoder runs one run of this property is worth.
 */
export function fuzzRuns(defaultRuns: number, cost = 1): number {
  if (longRuns === undefined) return defaultRuns;
  return Math.max(defaultRuns, Math.ceil(longRuns / cost));
}

/** fast-check parameters of the property `name` (seed, path and run count from the env). */
export function fuzzParams<T>(name: string, defaultRuns: number, cost = 1): fc.Parameters<T> {
  const seed = fixedSeed ?? (fuzzLong ? randomInt(2 ** 31) : crc32c(Buffer.from(name)) | 0);
  const params: fc.Parameters<T> = { numRuns: fuzzRuns(defaultRuns, cost), seed };
  if (replayPath !== undefined && replayPath !== '') params.path = replayPath;
  return params;
}

/** Heap plus ArrayBuffer bytes in use. */
function bytesInUse(): number {
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

/**
 * Runs `fn` and reports how much the bytes in use grew meanwhile. A decoder that allocated for a
 * forged length shows up here unless a garbage collection ran inside that very call, which a
 * call that allocates little makes unlikely; so a small bound over many runs is a sound check.
 */
export function growthDuring<T>(fn: () => T): { result: T; bytes: number } {
  const before = bytesInUse();
  const result = fn();
  return { result, bytes: bytesInUse() - before };
}

/**
 * Growth one decode call may show besides what is proportional to its input: room for the
 * engine's own noise (a fresh allocation page, code compiled on first use), far below what
 * trusting a forged length would take (frames and records may announce up to 16 MiB or 4 GiB).
 */
export const decodeOverheadBytes = 2 * 1024 * 1024;
