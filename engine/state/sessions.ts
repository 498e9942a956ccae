/**
 * Client sessions for exactly-once commands (Raft thesis §6.3), one bounded table per shard,
 * updated in the apply transaction so that it is replicated state like the data.
 *
 * A session remembers the sequence number and result of its latest request on the shard. A
 * command carrying (id, seq):
 * - seq equal to the remembered one: a retry; the remembered result is returned, nothing applied;
 * - seq lower: the client already moved on; SESSION_EXPIRED, nothing applied;
 * - seq higher, or an unknown session: applied, and its result remembered.
 * Before judging, the shard forgets its least recently used sessions while the oldest one is idle
 * for more than `sessionExpiryEntries` entries of the shard or `sessionExpiryMs` of command time
 * (the proposer's clock carried in the command: applying never reads a local clock); after
 * remembering, it evicts the least recently used beyond `sessionsPerShardMax`. Each decision is a
 * function of the table before the command and the command's (index, time) alone, so the state
 * after entries 1..n does not depend on how they were grouped into apply batches. A retry that
 * arrives after its session was forgotten is applied again: clients must retry within the expiry,
 * and issue one request at a time per session and shard.
 *
 * Storage: LMDB keeps one record per session (layout.ts), the replicated state that snapshots
 * carry. Judging reads none of it: each shard's table is mirrored in memory (ids, seqs, indexes,
 * times; results stay on disk until a retry needs one), built from LMDB on the shard's first
 * session command and written through afterwards, so a command costs one record put plus one
 * remove per session it forgets. KvState forgets a shard's mirror whenever LMDB changes under it
 * another way (snapshot install, shard drop, an aborted apply transaction) and the next command
 * rebuilds it. Order of last use is order of the index of last use: a remembered session takes
 * the index of the entry at hand, greater than any before it, so appending on use keeps the list
 * sorted, and a rebuild sorts the records by index.
 */
import { assert } from '../assert.js';
import { FlotillaError } from '../errors.js';
import type { DecodedSession } from './commands.js';
import type { StateDbs, StateLimits } from './dbs.js';
import {
  asBuffer,
  decodeSession,
  type Scratch,
  type ShardMeta,
  shardEnd,
  shardPrefix,
  shardPrefixBytes,
} from './layout.js';

/** A remembered session as the in-memory table holds it. */
export interface SessionEntry {
  /** The session id as a latin1 string (one char per byte): the table's key. */
  readonly key: string;
  seq: number;
  /** Index of the entry that last used the session: its age. */
  index: number;
  /** Command time of that entry. */
  time: number;
  older: SessionEntry | undefined;
  newer: SessionEntry | undefined;
}

/** What the session table says about a command. */
export type SessionVerdict =
  | { kind: 'apply'; key: string; previous: SessionEntry | undefined }
  | { kind: 'duplicate'; result: Uint8Array }
  | { kind: 'stale'; lastSeq: number };

/**
 * One shard's sessions. Invariant: the list from `oldest` to `newest` holds each entry of `byId`
 * exactly once, in ascending `index`; `byId.size` equals the shard's `meta.sessionCount`.
 */
class ShardSessions {
  readonly byId = new Map<string, SessionEntry>();
  oldest: SessionEntry | undefined = undefined;
  newest: SessionEntry | undefined = undefined;
  /** Tick of the last use, to evict the least recently used mirror. */
  used = 0;

  append(entry: SessionEntry): void {
    assert(this.newest === undefined || this.newest.index < entry.index, 'ages ascend');
    entry.older = this.newest;
    entry.newer = undefined;
    if (this.newest === undefined) this.oldest = entry;
    else this.newest.newer = entry;
    this.newest = entry;
  }

  unlink(entry: SessionEntry): void {
    if (entry.older === undefined) this.oldest = entry.newer;
    else entry.older.newer = entry.newer;
    if (entry.newer === undefined) this.newest = entry.older;
    else entry.newer.older = entry.older;
    entry.older = undefined;
    entry.newer = undefined;
  }
}

/** The session tables of every shard, mirrored in memory over their LMDB records. */
export class SessionTables {
  private readonly tables = new Map<number, ShardSessions>();
  private tick = 0;

  /**
   * `tablesMax` bounds the shards mirrored at once; beyond it the least recently used mirror is
   * dropped (and rebuilt from LMDB when its shard next needs it).
   */
  constructor(
    private readonly dbs: StateDbs,
    private readonly scratch: Scratch,
    private readonly tablesMax: number,
  ) {
    assert(Number.isSafeInteger(tablesMax) && tablesMax >= 1, 'at least one table is mirrored');
  }

  /** Forgets the shard's mirror: its LMDB records changed another way, or may have. */
  forget(shard: number): void {
    this.tables.delete(shard);
  }

  /** Forgets expired sessions of the shard as of (index, session.time), then judges `session`. */
  judge(
    shard: number,
    meta: ShardMeta,
    session: DecodedSession,
    index: number,
    limits: StateLimits,
  ): SessionVerdict {
    const table = this.tableOf(shard, meta);
    this.expire(shard, meta, table, index, session.time, limits);
    const key = asBuffer(session.id).toString('latin1');
    const known = table.byId.get(key);
    if (known === undefined) return { kind: 'apply', key, previous: undefined };
    if (session.seq === known.seq) {
      return { kind: 'duplicate', result: this.resultOf(shard, session.id) };
    }
    if (session.seq < known.seq) return { kind: 'stale', lastSeq: known.seq };
    return { kind: 'apply', key, previous: known };
  }

  /** Remembers the result of a session command applied at `index`, evicting beyond the bound. */
  remember(
    shard: number,
    meta: ShardMeta,
    session: DecodedSession,
    verdict: Extract<SessionVerdict, { kind: 'apply' }>,
    index: number,
    result: Uint8Array,
    limits: StateLimits,
  ): void {
    const table = this.tableOf(shard, meta);
    const { key, previous } = verdict;
    assert(table.byId.get(key) === previous, 'the table is the one the command was judged by');
    let entry = previous;
    if (entry === undefined) {
      entry = { key, seq: 0, index: 0, time: 0, older: undefined, newer: undefined };
      table.byId.set(key, entry);
      meta.sessionCount += 1;
    } else {
      table.unlink(entry);
    }
    entry.seq = session.seq;
    entry.index = index;
    entry.time = session.time;
    table.append(entry);
    const record = this.scratch.sessionRecord(session.seq, index, session.time, result);
    this.dbs.sessions.putSync(this.scratch.key(shard, session.id), record);
    while (meta.sessionCount > limits.sessionsPerShardMax) this.drop(shard, meta, table);
  }

  private expire(
    shard: number,
    meta: ShardMeta,
    table: ShardSessions,
    index: number,
    time: number,
    limits: StateLimits,
  ): void {
    for (let oldest = table.oldest; oldest !== undefined; oldest = table.oldest) {
      const idle =
        index - oldest.index > limits.sessionExpiryEntries ||
        time - oldest.time > limits.sessionExpiryMs;
      if (!idle) return;
      this.drop(shard, meta, table);
    }
  }

  /** Drops the shard's least recently used session. */
  private drop(shard: number, meta: ShardMeta, table: ShardSessions): void {
    const oldest = table.oldest;
    assert(oldest !== undefined, 'a session to drop');
    table.unlink(oldest);
    table.byId.delete(oldest.key);
    meta.sessionCount -= 1;
    const id = Buffer.from(oldest.key, 'latin1');
    this.dbs.sessions.removeSync(this.scratch.key(shard, id));
  }

  private resultOf(shard: number, id: Uint8Array): Uint8Array {
    const bytes = this.dbs.sessions.getBinary(this.scratch.key(shard, id));
    const record = bytes === undefined ? undefined : decodeSession(bytes);
    assert(record !== undefined, 'a mirrored session has its record');
    return record.result;
  }

  private tableOf(shard: number, meta: ShardMeta): ShardSessions {
    let table = this.tables.get(shard);
    if (table === undefined) {
      if (this.tables.size >= this.tablesMax) this.evictTable();
      table = this.load(shard, meta);
      this.tables.set(shard, table);
    }
    table.used = ++this.tick;
    return table;
  }

  /** Drops the least recently used mirror: a scan, but only when a mirror is (re)built. */
  private evictTable(): void {
    let victim: number | undefined;
    let usedMin = Number.POSITIVE_INFINITY;
    for (const [shard, table] of this.tables) {
      if (table.used < usedMin) {
        usedMin = table.used;
        victim = shard;
      }
    }
    assert(victim !== undefined, 'a mirror to evict');
    this.tables.delete(victim);
  }

  /** Builds the shard's mirror from its LMDB records, as the current transaction sees them. */
  private load(shard: number, meta: ShardMeta): ShardSessions {
    const entries: SessionEntry[] = [];
    const range = { start: shardPrefix(shard), end: shardEnd(shard) };
    for (const { key, value } of this.dbs.sessions.getRange(range)) {
      const record = decodeSession(value);
      if (record === undefined) throw corruptSessions(shard, 'a session record is too short');
      entries.push({
        key: key.toString('latin1', shardPrefixBytes),
        seq: record.seq,
        index: record.index,
        time: record.time,
        older: undefined,
        newer: undefined,
      });
    }
    if (entries.length !== meta.sessionCount) {
      throw corruptSessions(shard, `${entries.length} records, ${meta.sessionCount} counted`);
    }
    // Stable: records come in id order, which breaks ties (impossible in a sound table).
    entries.sort((a, b) => a.index - b.index);
    const table = new ShardSessions();
    let last = 0;
    for (const entry of entries) {
      if (entry.index <= last) throw corruptSessions(shard, `two sessions at index ${last}`);
      last = entry.index;
      table.byId.set(entry.key, entry);
      table.append(entry);
    }
    return table;
  }
}

function corruptSessions(shard: number, what: string): FlotillaError {
  return new FlotillaError('CORRUPT_STATE', `the session table of shard ${shard}: ${what}`);
}
