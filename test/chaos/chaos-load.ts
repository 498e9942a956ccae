/**
 * The client side of a chaos run: a few `Flotilla.connect` clients doing get/put/incr/cas on a
 * small set of hot keys, plus puts to keys each client alone writes (for the lost-write check);
 * some clients use a short deadline, so that partitions produce unknown outcomes.
 * Every operation is recorded in the checker's history format (test/support/history.ts) with
 * call and return times in microseconds.
 */
import { performance } from 'node:perf_hooks';
import { isFlotillaError } from '../../engine/errors.js';
import { SeededRandom } from '../../engine/random.js';
import type { RemoteStore } from '../../shards/client/remote.js';
import type { HistoryOp, Json, KeyStep, OpOutput } from '../support/history.js';

/** Hot keys every client reads and writes. */
const hotKeys = ['h0', 'h1', 'h2', 'h3', 'h4', 'h5'];
/** Keys per client that only that client writes. */
const ownKeysPerClient = 4;

/** Microseconds since the process started: the history's clock. */
function nowUs(): number {
  return Math.floor(performance.now() * 1000);
}

/** What the load counted. */
export interface LoadCounts {
  ops: number;
  acked: number;
  unknown: number;
  errors: number;
  /** Error codes seen, with how often. */
  codes: Map<string, number>;
}

/** The client key `own-<client>-<n>` written only by that client. */
export function ownKey(client: number, n: number): string {
  return `own-${client}-${n}`;
}

/** Records operations and counts outcomes. */
export class HistoryRecorder {
  readonly ops: HistoryOp[] = [];
  readonly counts: LoadCounts = { ops: 0, acked: 0, unknown: 0, errors: 0, codes: new Map() };

  /** Runs `run` as operation `step` of `clientId` and records it; returns its output. */
  async record(clientId: string, step: KeyStep, run: () => Promise<OpOutput>): Promise<OpOutput> {
    const call = nowUs();
    let output: OpOutput;
    try {
      output = await run();
      this.counts.acked++;
    } catch (err) {
      output = this.failed(step, err);
    }
    const ret = Math.max(nowUs(), call + 1);
    this.counts.ops++;
    this.ops.push({ ...step, clientId, output, call, return: ret });
    return output;
  }

  /**
   * A failed operation: a definite failure when the client says nothing was applied or it was a
   * read; otherwise (outcome unknown, or not stated) the write may have applied.
   */
  private failed(step: KeyStep, err: unknown): OpOutput {
    if (!isFlotillaError(err)) throw err;
    this.counts.codes.set(err.code, (this.counts.codes.get(err.code) ?? 0) + 1);
    if (step.op === 'get' || err.details.outcome === 'not-applied') {
      this.counts.errors++;
      return { error: err.code };
    }
    this.counts.unknown++;
    return { unknown: true, error: err.code };
  }
}

/**
 * One client's loop: random operations, one at a time, until `stopped()`. A client whose store
 * has a short deadline ends many calls with an unknown outcome while a partition lasts.
 */
export async function clientLoop(
  db: RemoteStore,
  client: number,
  seed: number,
  recorder: HistoryRecorder,
  stopped: () => boolean,
): Promise<void> {
  const random = new SeededRandom(seed);
  const id = `c${client}`;
  let serial = 0;
  const seen = new Map<string, { value: Json; version: number }>();
  while (!stopped()) {
    serial++;
    const roll = random.float();
    const value = client * 1_000_000 + serial;
    if (roll < 0.2) {
      const key = ownKey(client, random.intBelow(ownKeysPerClient));
      await recorder.record(id, { op: 'put', key, value }, async () => {
        return { ok: true, version: await db.put(key, value) };
      });
      continue;
    }
    const key = hotKeys[random.intBelow(hotKeys.length)]!;
    if (roll < 0.45) {
      await recorder.record(id, { op: 'get', key }, async () => {
        const entry = await db.getEntry(key);
        if (entry === undefined) {
          seen.delete(key);
          return {};
        }
        const found = { value: entry.value as Json, version: entry.version };
        seen.set(key, found);
        return found;
      });
    } else if (roll < 0.65) {
      await recorder.record(id, { op: 'put', key, value }, async () => {
        return { ok: true, version: await db.put(key, value) };
      });
    } else if (roll < 0.82) {
      await recorder.record(id, { op: 'incr', key }, async () => {
        return { value: Number(await db.incr(key)) };
      });
    } else {
      await casStep(db, id, key, value, seen.get(key), random, recorder);
    }
  }
}

/** A cas on `key` conditioned on what this client last read there (by value or by version). */
async function casStep(
  db: RemoteStore,
  id: string,
  key: string,
  value: number,
  last: { value: Json; version: number } | undefined,
  random: SeededRandom,
  recorder: HistoryRecorder,
): Promise<void> {
  const byVersion = last !== undefined && random.chance(0.5);
  const expected = byVersion ? { version: last.version } : { value: (last?.value ?? 0) as number };
  await recorder.record(id, { op: 'cas', key, expected, value }, async () => {
    return { ok: await db.cas(key, expected, value) };
  });
}

/** The keys the lost-write check reads, per client. */
export function ownKeys(clients: number): string[] {
  const keys: string[] = [];
  for (let c = 0; c < clients; c++) {
    for (let n = 0; n < ownKeysPerClient; n++) keys.push(ownKey(c, n));
  }
  return keys;
}

/**
 * Acknowledged writes that a final read does not show. A key written only by one client must
 * hold its last acknowledged put's value, or the value of a put whose outcome is unknown: such
 * a put may take effect at any time after its call, even after later puts (a try still on its
 * way when the caller gave up), as the history format defines it.
 */
export function lostWrites(ops: readonly HistoryOp[], finals: Map<string, Json | undefined>) {
  const lost: string[] = [];
  let checked = 0;
  for (const [key, final] of finals) {
    const puts = ops.filter((o) => o.op === 'put' && o.key === key && o.clientId !== 'final');
    let lastAcked = -1;
    puts.forEach((o, i) => {
      if (o.output.ok === true) lastAcked = i;
    });
    if (lastAcked < 0) continue;
    checked++;
    const allowed = new Set<Json | undefined>();
    puts.forEach((o, i) => {
      if (o.op !== 'put') return;
      if (i === lastAcked || o.output.unknown === true) allowed.add(o.value);
    });
    if (!allowed.has(final)) {
      const want = [...allowed].map((v) => JSON.stringify(v)).join(' or ');
      lost.push(`${key}: read ${JSON.stringify(final)}, expected ${want}`);
    }
  }
  return { checked, lost };
}
