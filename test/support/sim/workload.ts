/**
 * The client workload: concurrent clients issuing get, put, delete, cas, incr, exec (the
 * registered `bump` command, recorded as the incr it is) and atomic batches on hash-tagged keys,
 * over a few hot and more cold keys; plus the bootstrap (each shard takes its hash range), the
 * liveness probes and the final reads of every key once the faults are healed.
 */

import type { SeededRandom } from '../../../engine/random.js';
import type {
  BatchOp,
  CasExpectation,
  CommandResult,
  OpResult,
} from '../../../engine/state/commands.js';
import { encodeCommand } from '../../../engine/state/commands.js';
import type { CasExpected, Json, KeyStep, OpOutput } from '../history.js';
import { History, SimClient, type WriteRequest } from './client.js';
import type { SimCluster } from './cluster.js';
import { bumpCommand } from './node.js';

const registers = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7'];
const hotRegisters = 2;
const counters = ['n0', 'n1', 'n2', 'n3'];
const tags = ['t0', 't1', 't2'];
const tagSuffixes = ['a', 'b', 'c'];

/** Longest pause of a client between two operations, in ms. */
const thinkMsMax = 400;

function pick<T>(r: SeededRandom, list: readonly T[]): T {
  return list[r.intBelow(list.length)]!;
}

/** The output of one batch step, as the history writes it. */
function stepOutput(r: OpResult): OpOutput {
  switch (r.type) {
    case 'put':
      return { ok: true, version: r.version };
    case 'delete':
      return { ok: true, existed: r.existed };
    case 'cas':
      return r.ok ? { ok: true, version: r.version } : { ok: false };
    case 'incr':
      return { value: Number(r.value), version: r.version };
    default:
      throw new Error(`unexpected step result ${JSON.stringify(r)}`);
  }
}

function writeVersion(r: CommandResult): number | undefined {
  switch (r.type) {
    case 'put':
    case 'incr':
      return r.version;
    case 'cas':
      return r.ok ? r.version : undefined;
    case 'batch': {
      if (!r.ok) return undefined;
      const versions = r.results.map((s) => ('version' in s ? s.version : undefined));
      return versions.find((v) => v !== undefined);
    }
    case 'exec':
      return Array.isArray(r.value) ? (r.value[1] as number) : undefined;
    default:
      return undefined;
  }
}

/** What a client last saw of a key, for its cas expectations. */
interface Observed {
  value?: Json;
  version?: number;
}

/** The workload; see the module comment. */
export class Workload {
  readonly history: History;
  readonly clients: SimClient[] = [];
  /** Keys some operation used (the final reads cover them all). */
  readonly keys = new Set<string>();
  private remaining: number;
  private running = 0;
  private valueCounter = 0;
  private readonly observed = new Map<string, Observed>();

  constructor(
    private readonly cluster: SimCluster,
    private readonly random: SeededRandom,
  ) {
    this.history = new History(() => cluster.clock.now());
    this.remaining = cluster.options.ops;
    for (let i = 1; i <= cluster.options.clients; i++) {
      this.clients.push(new SimClient(`c${i}`, cluster, this.history, random));
    }
  }

  /** Whether every client finished its share of the operations. */
  get done(): boolean {
    return this.remaining === 0 && this.running === 0;
  }

  /** Retries made by every client. */
  get retries(): number {
    return this.clients.reduce((sum, c) => sum + c.retries, 0);
  }

  /** Each shard takes its hash range (as the store does when it creates a shard). */
  async bootstrap(): Promise<boolean> {
    const client = new SimClient('boot', this.cluster, this.history, this.random);
    const results = await Promise.all(
      this.cluster.shardIds().map((shard) => {
        const s = this.cluster.options.shards;
        const low = Math.floor(((shard - 1) * 2 ** 32) / s);
        const high = Math.floor((shard * 2 ** 32) / s);
        return client.system(
          shard,
          encodeCommand({ type: 'shardRange', hashLow: low, hashHigh: high }),
        );
      }),
    );
    return results.every((ok) => ok);
  }

  /** Starts every client. */
  start(): void {
    for (const client of this.clients) {
      this.running++;
      this.runClient(client)
        .catch((err: unknown) => {
          this.cluster.checker.fail('exception', `client ${client.id}: ${String(err)}`);
        })
        .finally(() => {
          this.running--;
        });
    }
  }

  private async runClient(client: SimClient): Promise<void> {
    while (this.remaining > 0) {
      this.remaining--;
      await this.cluster.harness.sleep(this.random.intBelow(thinkMsMax + 1));
      await this.one(client);
    }
  }

  private async one(client: SimClient): Promise<void> {
    const roll = this.random.float();
    if (roll < 0.25) return this.get(client, this.anyKey());
    if (roll < 0.42) return this.put(client, this.registerOrTagged());
    if (roll < 0.47) return this.del(client, this.anyKey());
    if (roll < 0.57) return this.cas(client, this.registerOrTagged());
    if (roll < 0.67) return this.incr(client, pick(this.random, counters), false);
    if (roll < 0.74) return this.incr(client, pick(this.random, counters), true);
    if (roll < 0.86) return this.batch(client);
    return this.get(client, `{${pick(this.random, tags)}}${pick(this.random, tagSuffixes)}`);
  }

  private register(): string {
    if (this.random.chance(0.75)) return registers[this.random.intBelow(hotRegisters)]!;
    return pick(this.random, registers);
  }

  private registerOrTagged(): string {
    if (this.random.chance(0.7)) return this.register();
    return `{${pick(this.random, tags)}}${pick(this.random, tagSuffixes)}`;
  }

  private anyKey(): string {
    const roll = this.random.intBelow(3);
    if (roll === 0) return pick(this.random, counters);
    return this.registerOrTagged();
  }

  private newValue(client: SimClient): string {
    return `${client.id}.${++this.valueCounter}`;
  }

  private async get(client: SimClient, key: string): Promise<void> {
    this.keys.add(key);
    const o = this.cluster.options;
    const lease = o.leaseReadRate > 0 && this.random.chance(o.leaseReadRate);
    const found = await client.read(key, lease ? 'lease' : 'linearizable', this.random.chance(0.7));
    if (found === null) return;
    this.observed.set(
      key,
      found === undefined ? {} : { value: found.value as Json, version: found.version },
    );
  }

  private write(client: SimClient, key: string, request: Omit<WriteRequest, 'shard'>) {
    this.keys.add(key);
    return client.write({ ...request, shard: this.cluster.shardOf(key) });
  }

  private async put(client: SimClient, key: string): Promise<void> {
    const value = this.newValue(client);
    const out = await this.write(client, key, {
      command: (session) => ({ type: 'put', key, value, session }),
      step: { op: 'put', key, value },
      output: (r) => stepOutput(r as OpResult),
      version: writeVersion,
    });
    if (out.version !== undefined) this.observed.set(key, { value, version: out.version });
  }

  private async del(client: SimClient, key: string): Promise<void> {
    await this.write(client, key, {
      command: (session) => ({ type: 'delete', key, session }),
      step: { op: 'delete', key },
      output: (r) => stepOutput(r as OpResult),
      version: writeVersion,
    });
  }

  /** A cas expectation from what was last seen of the key (or a guess). */
  private expectation(key: string): { store: CasExpectation; history: CasExpected } {
    const seen = this.observed.get(key);
    if (seen === undefined || seen.value === undefined) {
      return { store: { version: 0 }, history: { absent: true } };
    }
    if (this.random.chance(0.5) && seen.version !== undefined) {
      return { store: { version: seen.version }, history: { version: seen.version } };
    }
    return { store: { value: seen.value as string }, history: { value: seen.value } };
  }

  private async cas(client: SimClient, key: string): Promise<void> {
    const value = this.newValue(client);
    const expected = this.expectation(key);
    await this.write(client, key, {
      command: (session) => ({ type: 'cas', key, expected: expected.store, value, session }),
      step: { op: 'cas', key, expected: expected.history, value },
      output: (r) => stepOutput(r as OpResult),
      version: writeVersion,
    });
  }

  private async incr(client: SimClient, key: string, viaExec: boolean): Promise<void> {
    const by = 1 + this.random.intBelow(5);
    const step: KeyStep = { op: 'incr', key, by };
    if (!viaExec) {
      await this.write(client, key, {
        command: (session) => ({ type: 'incr', key, by, session }),
        step,
        output: (r) => stepOutput(r as OpResult),
        version: writeVersion,
      });
      return;
    }
    await this.write(client, key, {
      command: (session) => ({ type: 'exec', name: bumpCommand, key, args: by, session }),
      step,
      output: (r) => {
        if (r.type !== 'exec') throw new Error(`an exec answered ${JSON.stringify(r)}`);
        const [value, version] = r.value as [number, number];
        return { value, version };
      },
      version: writeVersion,
      meta: { exec: bumpCommand },
    });
  }

  private async batch(client: SimClient): Promise<void> {
    const tag = pick(this.random, tags);
    const keys = tagSuffixes.filter(() => this.random.chance(0.7)).map((s) => `{${tag}}${s}`);
    if (keys.length === 0) keys.push(`{${tag}}a`);
    const ops: BatchOp[] = [];
    const steps: KeyStep[] = [];
    for (const key of keys) {
      this.keys.add(key);
      const roll = this.random.intBelow(4);
      if (roll === 0) {
        ops.push({ type: 'delete', key });
        steps.push({ op: 'delete', key });
        continue;
      }
      const value = this.newValue(client);
      if (roll === 1) {
        const expected = this.expectation(key);
        ops.push({ type: 'cas', key, expected: expected.store, value });
        steps.push({ op: 'cas', key, expected: expected.history, value });
        continue;
      }
      ops.push({ type: 'put', key, value });
      steps.push({ op: 'put', key, value });
    }
    await this.write(client, keys[0]!, {
      command: (session) => ({ type: 'batch', ops, session }),
      step: { op: 'batch', ops: steps },
      output: (r) => {
        if (r.type !== 'batch') throw new Error(`a batch answered ${JSON.stringify(r)}`);
        return r.ok ? { ok: true, results: r.results.map(stepOutput) } : { ok: false };
      },
      version: writeVersion,
    });
  }

  /** A key of `shard` for liveness probes. */
  probeKey(shard: number): string {
    for (let i = 0; ; i++) {
      const key = `probe-${i}`;
      if (this.cluster.shardOf(key) === shard) return key;
    }
  }

  /** One write per shard through the client path; true if every shard took it. */
  async probe(): Promise<boolean> {
    const client = new SimClient('probe', this.cluster, this.history, this.random);
    const outputs = await Promise.all(
      this.cluster.shardIds().map((shard) => {
        const key = this.probeKey(shard);
        const value = `probe.${shard}`;
        return this.write(client, key, {
          command: (session) => ({ type: 'put', key, value, session }),
          step: { op: 'put', key, value },
          output: (r) => stepOutput(r as OpResult),
          version: writeVersion,
        });
      }),
    );
    return outputs.every((o) => o.ok === true);
  }

  /** A linearizable read of every key used; true if every one was answered. */
  async finalReads(): Promise<boolean> {
    const client = new SimClient('final', this.cluster, this.history, this.random);
    let ok = true;
    for (const key of [...this.keys].sort()) {
      if ((await client.read(key, 'linearizable', true)) === null) ok = false;
    }
    return ok;
  }
}
