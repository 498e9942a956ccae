/**
 * Histories that are linearizable by construction, for property and scale tests: every
 * operation gets a real-time interval and a linearization point inside it, the operations run
 * one at a time in linearization-point order on a plain in-memory store (written independently of
 * the checker's model), and each records what the store answered. Timed-out operations took
 * effect at a point after their call (perhaps after their return) or never.
 */
import { SeededRandom } from '../../engine/random.js';
import {
  type CasExpected,
  canonicalJson,
  type HistoryOp,
  type Json,
  type KeyStep,
  type OpOutput,
} from '../support/history.js';

/** The shape of a generated history. */
export interface GenerateOptions {
  ops: number;
  clients: number;
  keys: number;
  /** Batches touch keys of one group of this many consecutive keys (like a shard's tag). */
  batchGroupKeys: number;
  /** Whether outputs report versions (each is then omitted at random, to leave some unbound). */
  versions: boolean;
  batchChance: number;
  unknownChance: number;
  errorChance: number;
  /** Writes mostly write fresh values, as a real test should: repeated values make more states. */
  uniqueValues: boolean;
  /** Only `incr by 1` and `get`: a counter workload, where timed-out increments are alike. */
  counter: boolean;
}

/** A sensible mix; override what a test cares about. */
export const defaultOptions: GenerateOptions = {
  ops: 40,
  clients: 4,
  keys: 3,
  batchGroupKeys: 2,
  versions: true,
  batchChance: 0.1,
  unknownChance: 0.1,
  errorChance: 0.03,
  uniqueValues: false,
  counter: false,
};

interface Entry {
  value: Json;
  version: number;
}

/** The reference store: versions are a global write counter, like a Raft index. */
class SequentialStore {
  private readonly data = new Map<string, Entry>();
  private index = 0;

  /** Runs one operation; a batch runs atomically and aborts if a cas step fails. */
  run(steps: KeyStep[], isBatch: boolean): OpOutput {
    const before = new Map(this.data);
    this.index++;
    const results: OpOutput[] = [];
    for (const step of steps) {
      const result = this.runStep(step);
      if (result === 'type-error' || (isBatch && result.ok === false)) {
        this.restore(before);
        return result === 'type-error' ? { error: 'INVALID_ARGUMENT' } : { ok: false };
      }
      results.push(result);
    }
    return isBatch ? { ok: true, results } : results[0]!;
  }

  /** The current version of `key`, if present. */
  versionOf(key: string): number | undefined {
    return this.data.get(key)?.version;
  }

  private restore(before: Map<string, Entry>): void {
    this.data.clear();
    for (const [k, v] of before) this.data.set(k, v);
  }

  private runStep(step: KeyStep): OpOutput | 'type-error' {
    const current = this.data.get(step.key);
    switch (step.op) {
      case 'get':
        return current === undefined ? {} : { value: current.value, version: current.version };
      case 'put':
        return this.write(step.key, step.value, { ok: true });
      case 'delete':
        this.data.delete(step.key);
        return { ok: true, existed: current !== undefined };
      case 'cas':
        return holds(step.expected, current)
          ? this.write(step.key, step.value, { ok: true })
          : { ok: false };
      case 'incr': {
        const base = current === undefined ? 0 : current.value;
        if (typeof base !== 'number') return 'type-error';
        const value = base + (step.by ?? 1);
        return this.write(step.key, value, { value });
      }
    }
  }

  private write(key: string, value: Json, output: OpOutput): OpOutput {
    this.data.set(key, { value, version: this.index });
    return { ...output, version: this.index };
  }
}

function holds(expected: CasExpected, current: Entry | undefined): boolean {
  if ('absent' in expected) return current === undefined;
  if (current === undefined) return false;
  if ('version' in expected) return current.version === expected.version;
  return canonicalJson(current.value) === canonicalJson(expected.value);
}

/** Small domains so that reads, cas conditions and batches collide often, or fresh values. */
function randomValue(rand: SeededRandom, unique = false): Json {
  if (unique && rand.chance(0.9)) return `u${rand.nextU32().toString(36)}`;
  const pick = rand.intBelow(10);
  if (pick < 6) return pick;
  if (pick < 8) return `s${pick}`;
  // Objects with varying field order: the checker must compare them canonically.
  return pick === 8 ? { a: 1, b: [1, 2] } : { b: [1, 2], a: 1 };
}

interface Planned {
  op: HistoryOp;
  steps: KeyStep[];
  /** Linearization point; undefined when the operation never took effect. */
  point: number | undefined;
}

/** Generates a linearizable history from `seed`. */
export function generateHistory(seed: number, options: GenerateOptions): HistoryOp[] {
  const rand = new SeededRandom(seed);
  const planned = planIntervals(rand, options);
  const store = new SequentialStore();
  const effective = planned.filter((p) => p.point !== undefined);
  effective.sort((a, b) => a.point! - b.point!);
  for (const p of effective) {
    for (const step of p.steps) chooseVersionCondition(rand, store, step);
    const output = store.run(p.steps, p.op.op === 'batch');
    if (p.op.output.unknown !== true) p.op.output = omitSomeVersions(rand, output, options);
  }
  return planned.map((p) => p.op);
}

/** A cas by version names the key's current version half the time, a stale guess otherwise. */
function chooseVersionCondition(rand: SeededRandom, store: SequentialStore, step: KeyStep): void {
  if (step.op !== 'cas' || !('version' in step.expected)) return;
  const current = store.versionOf(step.key);
  if (current !== undefined && rand.chance(0.5)) step.expected = { version: current };
}

function omitSomeVersions(rand: SeededRandom, output: OpOutput, options: GenerateOptions) {
  const strip = (o: OpOutput): OpOutput => {
    const { version, ...rest } = o;
    return options.versions && rand.chance(0.8) && version !== undefined ? o : rest;
  };
  const top = strip(output);
  return top.results === undefined ? top : { ...top, results: top.results.map(strip) };
}

function planIntervals(rand: SeededRandom, options: GenerateOptions): Planned[] {
  const clock = new Array<number>(options.clients).fill(0);
  const planned: Planned[] = [];
  for (let i = 0; i < options.ops; i++) {
    const client = rand.intBelow(options.clients);
    const call = clock[client]! + rand.intBelow(4);
    const ret = call + 1 + rand.intBelow(12);
    clock[client] = ret + rand.intBelow(3);
    const steps = randomRequest(rand, options);
    const op = (
      steps.length > 1 || rand.chance(options.batchChance / 4)
        ? { op: 'batch', ops: steps }
        : steps[0]!
    ) as HistoryOp;
    Object.assign(op, { clientId: `c${client}`, output: {}, call, return: ret });
    let point: number | undefined = call + rand.float() * (ret - call);
    if (rand.chance(options.errorChance)) {
      op.output = { error: 'UNAVAILABLE' };
      point = undefined;
    } else if (rand.chance(options.unknownChance)) {
      op.output = { unknown: true, error: 'TIMEOUT' };
      // It may land long after it returned, or never.
      point = rand.chance(0.3) ? undefined : call + rand.float() * (ret - call + 30);
    }
    planned.push({ op, steps, point });
  }
  return planned;
}

function randomRequest(rand: SeededRandom, options: GenerateOptions): KeyStep[] {
  if (!rand.chance(options.batchChance))
    return [randomStep(rand, options, `k${rand.intBelow(options.keys)}`)];
  const group = rand.intBelow(Math.ceil(options.keys / options.batchGroupKeys));
  const first = group * options.batchGroupKeys;
  const size = Math.min(options.batchGroupKeys, options.keys - first);
  const count = 2 + rand.intBelow(2);
  return Array.from({ length: count }, () =>
    randomStep(rand, options, `k${first + rand.intBelow(size)}`),
  );
}

function randomStep(rand: SeededRandom, options: GenerateOptions, key: string): KeyStep {
  if (options.counter) return rand.chance(0.4) ? { op: 'get', key } : { op: 'incr', key, by: 1 };
  const kind = rand.intBelow(10);
  if (kind < 4) return { op: 'get', key };
  if (kind < 6) return { op: 'put', key, value: randomValue(rand, options.uniqueValues) };
  if (kind < 7) return { op: 'delete', key };
  if (kind < 8) return { op: 'incr', key, by: 1 + rand.intBelow(3) };
  return {
    op: 'cas',
    key,
    expected: randomExpected(rand, options),
    value: randomValue(rand, options.uniqueValues),
  };
}

function randomExpected(rand: SeededRandom, options: GenerateOptions): CasExpected {
  const kind = rand.intBelow(options.versions ? 3 : 2);
  if (kind === 0) return { absent: true };
  if (kind === 1) return { value: randomValue(rand) };
  // A guess; chooseVersionCondition replaces it with the current version half the time.
  return { version: 1 + rand.intBelow(options.ops) };
}
