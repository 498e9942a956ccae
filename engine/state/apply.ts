/**
 * Applies committed entries, inside the one write transaction that KvState.applyBatch opens.
 *
 * Determinism: the result of an entry depends only on the state before it and its bytes (plus the
 * registered user commands and the replicated limits, which must be equal on every replica). A
 * failure a command can cause becomes an error result and the entry still counts as applied;
 * anything else (an assertion, an LMDB error) is thrown and aborts the whole transaction.
 */
import { assert } from '../assert.js';
import { EntryType } from '../raft/types.js';
import type { RawChange } from './change-feed.js';
import {
  type CommandResult,
  type DecodedCommand,
  decodeCommand,
  decodeResult,
  encodeResult,
} from './commands.js';
import type { StateDbs, StateLimits } from './dbs.js';
import { runUserCommand, type UserCommand } from './exec.js';
import type { Scratch, ShardMeta } from './layout.js';
import {
  applyOp,
  errorResult,
  errorResultOf,
  type KeyCheck,
  keyCheck,
  ShardWriter,
  WriteSet,
} from './ops.js';
import type { SessionTables } from './sessions.js';

/** One committed entry of one shard. */
export interface ApplyItem {
  shard: number;
  index: number;
  term: number;
  /** The entry's data: an encoded command, or empty. It must stay unchanged until applyBatch
   *  returns (values are copied out of it, not decoded into new buffers). */
  data: Uint8Array;
  /** The entry's type; a ConfChange entry only advances the applied index. Default Normal. */
  type?: EntryType;
}

/** What an Applier needs from its KvState. */
export interface ApplyEnv {
  dbs: StateDbs;
  /** Reusable key and record buffers. */
  scratch: Scratch;
  limits: StateLimits;
  /** The session tables, written through in the same transaction. */
  sessions: SessionTables;
  keyHash: (key: Uint8Array) => number;
  commands: ReadonlyMap<string, UserCommand>;
  /** The working copy of a shard's metadata for this transaction. */
  metaOf(shard: number): ShardMeta;
  /** Takes every change the entries make, in commit order (KvState writes them in blocks). */
  record(change: RawChange): void;
}

/** Applies entries one after another within one transaction. */
export class Applier {
  private readonly record: (change: RawChange) => void;
  /** Each shard's writer and key check, reused by its entries (a shardRange drops them). */
  private readonly writers = new Map<number, { writer: ShardWriter; check: KeyCheck }>();

  constructor(private readonly env: ApplyEnv) {
    this.record = (change) => env.record(change);
  }

  /** Applies one entry and returns its result. */
  apply(item: ApplyItem): CommandResult {
    assert(Number.isInteger(item.shard) && item.shard >= 0, 'shard is a u32');
    assert(item.shard <= 0xffffffff, 'shard is a u32');
    assert(Number.isSafeInteger(item.index) && item.index > 0, 'index is a positive integer');
    const meta = this.env.metaOf(item.shard);
    if (item.index <= meta.appliedIndex) return { type: 'skipped' };
    // Invariant: a shard applies its entries contiguously once it has applied any. (The message
    // is built only on failure: a template argument would format three numbers per entry.)
    if (meta.appliedIndex !== 0 && item.index !== meta.appliedIndex + 1) {
      assert(
        false,
        `shard ${item.shard}: entry ${item.index} follows applied ${meta.appliedIndex}`,
      );
    }
    const result = this.applyData(item, meta);
    meta.appliedIndex = item.index;
    meta.appliedTerm = item.term;
    return result;
  }

  private applyData(item: ApplyItem, meta: ShardMeta): CommandResult {
    if (item.type === EntryType.ConfChange) return { type: 'noop' };
    let command: DecodedCommand;
    try {
      command = decodeCommand(item.data);
    } catch (err) {
      return errorResultOf(err);
    }
    if (command.type === 'noop') return { type: 'noop' };
    if (command.type === 'shardRange') {
      // The cached key check knows the old range.
      this.writers.delete(item.shard);
      meta.hashLow = command.hashLow;
      meta.hashHigh = command.hashHigh;
      return command;
    }
    const session = command.session;
    if (session === null) return this.run(command, item, meta);
    const { sessions, limits } = this.env;
    const verdict = sessions.judge(item.shard, meta, session, item.index, limits);
    if (verdict.kind === 'duplicate') return decodeResult(verdict.result);
    if (verdict.kind === 'stale') {
      return errorResult(
        'SESSION_EXPIRED',
        `session request ${session.seq} precedes its latest (${verdict.lastSeq}); ` +
          'its result is no longer kept',
      );
    }
    const result = this.run(command, item, meta);
    const encoded = encodeResult(result);
    sessions.remember(item.shard, meta, session, verdict, item.index, encoded, limits);
    return result;
  }

  private run(
    command: Exclude<DecodedCommand, { type: 'noop' } | { type: 'shardRange' }>,
    item: ApplyItem,
    meta: ShardMeta,
  ): CommandResult {
    let cached = this.writers.get(item.shard);
    if (cached === undefined || cached.writer.meta !== meta) {
      const { dbs, scratch } = this.env;
      const writer = new ShardWriter(dbs, scratch, item.shard, meta, item.index, this.record);
      cached = { writer, check: keyCheck(meta, this.env.keyHash) };
      this.writers.set(item.shard, cached);
    }
    const { writer, check } = cached;
    writer.index = item.index;
    switch (command.type) {
      case 'batch':
        return runBatch(writer, command.ops, item.index, check);
      case 'exec': {
        const refused = check(command.key);
        if (refused !== undefined) return refused;
        const fn = this.env.commands.get(command.name);
        if (fn === undefined) {
          return errorResult('INVALID_ARGUMENT', `no user command named "${command.name}"`);
        }
        const writesMax = this.env.limits.execWritesMax;
        return runUserCommand(fn, writer, command.key, command.args, check, writesMax);
      }
      default:
        return applyOp(writer, command, item.index, check);
    }
  }
}

function runBatch(
  writer: ShardWriter,
  ops: Extract<DecodedCommand, { type: 'batch' }>['ops'],
  index: number,
  check: KeyCheck,
): CommandResult {
  const set = new WriteSet(writer);
  const results = [];
  for (let i = 0; i < ops.length; i++) {
    const result = applyOp(set, ops[i]!, index, check);
    if (result.type === 'error' || (result.type === 'cas' && !result.ok)) {
      return { type: 'batch', ok: false, failedOp: i, failure: result };
    }
    results.push(result);
  }
  set.commit();
  return { type: 'batch', ok: true, results };
}
