/**
 * A simulated client: one request at a time, routed to the node it believes leads the key's
 * shard, retried on NOT_LEADER (following the hint), on BUSY, on a dropped proposal, on a
 * shard that moved off the node (STALE_EPOCH), on a timeout, on a node that is down or crashes mid-request — until a deadline, after which an
 * operation whose effect is unknown is recorded as such.
 *
 * Writes carry a client session (id, sequence number per shard, time): every retry of one
 * operation sends the same bytes, so the state machine applies it at most once and answers a
 * retry of an applied request with the remembered result. Each finished operation is recorded
 * in the history format of test/support/history.ts.
 */
import { FlotillaError } from '../../../engine/errors.js';
import type { SeededRandom } from '../../../engine/random.js';
import type { Command, CommandResult, Session } from '../../../engine/state/commands.js';
import { encodeCommand } from '../../../engine/state/commands.js';
import type { StoredValue } from '../../../engine/state/kv-state.js';
import type { LocalNodeService } from '../../../shards/node-service.js';
import type { Consistency } from '../../../shards/types.js';
import type { BatchStep, HistoryOp, Json, KeyStep, OpOutput } from '../history.js';
import type { SimCluster } from './cluster.js';
import { describeError } from './node.js';

/** A client gives up on an operation after this much simulated time. */
export const opDeadlineMs = 4_000;
/** A client abandons one attempt (and retries elsewhere) after this much simulated time. */
export const attemptTimeoutMs = 1_000;
/** The longest pause before a retry, in ms (see retryAfter). */
export const retryPauseMsMax = 50;

/** The history shared by every client, and its clock of strictly increasing stamps. */
export class History {
  readonly ops: HistoryOp[] = [];
  private last = 0;

  constructor(private readonly now: () => number) {}

  /** A time stamp after every earlier one (microseconds of simulated time, made unique). */
  stamp(): number {
    this.last = Math.max(this.last + 1, this.now() * 1000);
    return this.last;
  }

  /** Records a finished operation. */
  record(op: HistoryOp): void {
    this.ops.push(op);
  }
}

/** A write as a client issues it. */
export interface WriteRequest {
  shard: number;
  /** The command, given the session stamp of this operation. */
  command: (session: Session) => Command;
  /** The request as the history records it. */
  step: KeyStep | BatchStep;
  /** The history output of a result. */
  output: (result: CommandResult) => OpOutput;
  /** The log index that wrote, if the result says. */
  version: (result: CommandResult) => number | undefined;
  meta?: Json;
}

type Outcome<T> =
  | { kind: 'ok'; value: T }
  | { kind: 'error'; error: FlotillaError }
  | { kind: 'down' }
  | { kind: 'lost' }
  | { kind: 'timeout' };

/** What the client learned from a failed attempt: where to go next and after how long. */
interface Retry {
  target: number;
  waitMs: number;
  /** The attempt may have taken effect. */
  mayHaveApplied: boolean;
}

/** Errors a command's own result can carry: definite, nothing was written. */
const resultCodes = new Set([
  'INVALID_ARGUMENT',
  'KEY_TOO_LARGE',
  'VALUE_TOO_LARGE',
  'WRONG_TYPE',
  'COMMAND_FAILED',
]);

/** One simulated client; see the module comment. */
export class SimClient {
  /** Retries made (attempts beyond the first). */
  retries = 0;
  private readonly leaders = new Map<number, number>();
  private readonly seqs = new Map<number, number>();

  constructor(
    readonly id: string,
    private readonly cluster: SimCluster,
    private readonly history: History,
    private readonly random: SeededRandom,
  ) {}

  /** Issues a write until it has an answer or the deadline passes; records it. */
  async write(request: WriteRequest): Promise<OpOutput> {
    const { cluster } = this;
    const call = this.history.stamp();
    const seq = (this.seqs.get(request.shard) ?? 0) + 1;
    this.seqs.set(request.shard, seq);
    const session: Session = { id: this.id, seq, time: cluster.clock.now() };
    const data = encodeCommand(request.command(session));
    const deadline = cluster.clock.now() + opDeadlineMs;
    let target = this.firstTarget(request.shard);
    let mayHaveApplied = false;
    let output: OpOutput | undefined;
    while (output === undefined && cluster.clock.now() < deadline) {
      const outcome = await this.attempt(target, (s) => s.propose(request.shard, data));
      if (outcome.kind === 'ok') {
        this.leaders.set(request.shard, target);
        output = request.output(outcome.value);
        cluster.checker.acknowledged({
          shard: request.shard,
          session: `${this.id}#${seq}`,
          version: request.version(outcome.value),
          what: JSON.stringify(request.step),
        });
        break;
      }
      if (outcome.kind === 'error' && resultCodes.has(outcome.error.code)) {
        output = { error: outcome.error.code };
        break;
      }
      if (outcome.kind === 'error' && outcome.error.code === 'SESSION_EXPIRED') {
        cluster.checker.fail('session', `${this.id}#${seq} on s${request.shard} was refused`);
      }
      const retry = this.retryAfter(request.shard, target, outcome);
      mayHaveApplied ||= retry.mayHaveApplied;
      target = retry.target;
      await cluster.harness.sleep(retry.waitMs);
    }
    output ??= mayHaveApplied ? { unknown: true, error: 'TIMEOUT' } : { error: 'UNAVAILABLE' };
    this.finish(request.step, output, call, request.meta, target);
    return output;
  }

  /** Proposes a command without session or history (bootstrap) until it applies. */
  async system(shard: number, data: Uint8Array): Promise<boolean> {
    const { cluster } = this;
    const deadline = cluster.clock.now() + opDeadlineMs;
    let target = this.firstTarget(shard);
    while (cluster.clock.now() < deadline) {
      const outcome = await this.attempt(target, (s) => s.propose(shard, data));
      if (outcome.kind === 'ok') return true;
      const retry = this.retryAfter(shard, target, outcome);
      target = retry.target;
      await cluster.harness.sleep(retry.waitMs);
    }
    return false;
  }

  /** Reads `key` until it has an answer or the deadline passes; records it. */
  async read(
    key: string,
    consistency: Consistency,
    atLeader: boolean,
  ): Promise<StoredValue | undefined | null> {
    const { cluster } = this;
    const shard = cluster.shardOf(key);
    const call = this.history.stamp();
    const deadline = cluster.clock.now() + opDeadlineMs;
    const bytes = Buffer.from(key, 'utf8');
    let target = atLeader ? this.firstTarget(shard) : this.randomReplica(shard);
    while (cluster.clock.now() < deadline) {
      const outcome = await this.attempt(target, (s) => s.read(shard, bytes, consistency));
      if (outcome.kind === 'ok') {
        const found = outcome.value;
        const output: OpOutput =
          found === undefined ? {} : { value: found.value as Json, version: found.version };
        this.finish({ op: 'get', key }, output, call, undefined, target);
        return found;
      }
      const retry = this.retryAfter(shard, target, outcome);
      target = retry.target;
      await cluster.harness.sleep(retry.waitMs);
    }
    this.finish({ op: 'get', key }, { unknown: true, error: 'TIMEOUT' }, call, undefined, 0);
    return null;
  }

  private finish(
    step: KeyStep | BatchStep,
    output: OpOutput,
    call: number,
    meta: Json | undefined,
    node: number,
  ): void {
    const ret = this.history.stamp();
    const op = { ...step, clientId: this.id, output, call, return: ret } as HistoryOp;
    if (meta !== undefined) op.meta = meta;
    this.history.record(op);
    const at = node === 0 ? '' : `@n${node}`;
    this.cluster.trace.add(`${this.id}${at} ${describeStep(step)} -> ${JSON.stringify(output)}`);
  }

  private firstTarget(shard: number): number {
    return this.leaders.get(shard) ?? this.randomReplica(shard);
  }

  private randomReplica(shard: number): number {
    const replicas = this.cluster.replicasOf(shard);
    return replicas[this.random.intBelow(replicas.length)]!;
  }

  private otherReplica(shard: number, not: number): number {
    const replicas = this.cluster.replicasOf(shard);
    const others = replicas.filter((id) => id !== not);
    // The shard may have moved off `not` meanwhile: any replica will do.
    const pool = others.length > 0 ? others : replicas;
    return pool[this.random.intBelow(pool.length)]!;
  }

  /** Where to go after a failed attempt at `target`, and whether it may have applied. */
  private retryAfter<T>(shard: number, target: number, outcome: Outcome<T>): Retry {
    this.retries++;
    const elsewhere = (waitMs: number, mayHaveApplied: boolean): Retry => {
      this.leaders.delete(shard);
      return { target: this.otherReplica(shard, target), waitMs, mayHaveApplied };
    };
    switch (outcome.kind) {
      case 'down':
        return elsewhere(10, false);
      case 'lost':
      case 'timeout':
        return elsewhere(10, true);
      case 'ok':
        throw new Error('an answer is not retried');
      case 'error':
        break;
    }
    const err = outcome.error;
    switch (err.code) {
      case 'NOT_LEADER': {
        const hint = err.details.leaderHint ?? 0;
        if (hint !== 0 && hint !== target && this.cluster.replicasOf(shard).includes(hint)) {
          this.leaders.set(shard, hint);
          return { target: hint, waitMs: 2, mayHaveApplied: false };
        }
        return elsewhere(30, false);
      }
      case 'BUSY':
        return { target, waitMs: retryPauseMsMax, mayHaveApplied: false };
      case 'DROPPED':
        return elsewhere(10, false);
      case 'TIMEOUT':
        return elsewhere(10, err.details.outcome !== 'not-applied');
      case 'CLOSED':
      case 'STALE_EPOCH':
        // STALE_EPOCH: the shard moved off the node (a proposal there may have committed).
        return elsewhere(10, err.details.outcome === 'unknown');
      default:
        this.cluster.checker.fail(
          'engine-fault',
          `${this.id}: n${target} answered s${shard} with ${describeError(err)}`,
        );
        return elsewhere(10, true);
    }
  }

  /** A typed error is an answer; anything else thrown is a bug, recorded as such. */
  private errorOutcome<T>(node: number, err: unknown): Outcome<T> {
    if (err instanceof FlotillaError) return { kind: 'error', error: err };
    this.cluster.checker.fail('exception', `n${node} threw at ${this.id}: ${describeError(err)}`);
    return { kind: 'timeout' };
  }

  /**
   * One attempt at `node`: its answer, or 'down' (not running), 'lost' (it crashed before
   * answering) or 'timeout' (no answer within attemptTimeoutMs).
   */
  private attempt<T>(node: number, call: (s: LocalNodeService) => Promise<T>): Promise<Outcome<T>> {
    const sim = this.cluster.node(node);
    const service = sim.service;
    if (service === undefined) return Promise.resolve({ kind: 'down' });
    return new Promise((resolve) => {
      let done = false;
      const finish = (outcome: Outcome<T>) => {
        if (done) return;
        done = true;
        timer.cancel();
        unsubscribe();
        resolve(outcome);
      };
      const timer = this.cluster.harness.after(attemptTimeoutMs, () => finish({ kind: 'timeout' }));
      const unsubscribe = sim.onNextCrash(() => finish({ kind: 'lost' }));
      let pending: Promise<T>;
      try {
        pending = call(service);
      } catch (err) {
        finish(this.errorOutcome(node, err));
        return;
      }
      pending.then(
        (value) => finish({ kind: 'ok', value }),
        (err: unknown) => finish(this.errorOutcome(node, err)),
      );
    });
  }
}

function describeStep(step: KeyStep | BatchStep): string {
  if (step.op === 'batch') return `batch[${step.ops.map(describeStep).join('; ')}]`;
  const parts: string[] = [step.op, step.key];
  if ('value' in step) parts.push(`=${JSON.stringify(step.value)}`);
  if ('expected' in step) parts.push(`if ${JSON.stringify(step.expected)}`);
  if ('by' in step && step.by !== undefined) parts.push(`by ${step.by}`);
  return parts.join(' ');
}
