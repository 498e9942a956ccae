/**
 * Client sessions for exactly-once commands (Raft thesis §6.3), one bounded table per shard,
 * updated in the apply transaction so that it is replicated state like the data.
 *
 * A session remembers the sequence number and result of its latest request on the shard. A
 * command carrying (id, seq):
 * - seq equal to the remembered one: a retry; the remembered result is returned, nothing applied;
 * - seq lower: the client already moved on; SESSION_EXPIRED, nothing applied;
 * - seq higher, or an unknown session: applied, and its result remembered.
 * A session is forgotten once idle for more than `sessionExpiryEntries` entries of the shard or
 * `sessionExpiryMs` of command time (the proposer's clock carried in the command: applying never
 * reads a local clock), and the least recently used one is evicted beyond
 * `sessionsPerShardMax`. A retry that arrives after its session was forgotten is applied again:
 * clients must retry within the expiry, and issue one request at a time per session and shard.
 */
import type { DecodedSession } from './commands.js';
import type { StateDbs, StateLimits } from './dbs.js';
import {
  ageHeaderBytes,
  ageKey,
  decodeSession,
  encodeAge,
  encodeSession,
  prefixedKey,
  readU64,
  type SessionRecord,
  type ShardMeta,
  shardEnd,
  shardPrefix,
} from './layout.js';

/** What the session table says about a command. */
export type SessionVerdict =
  | { kind: 'apply'; previous: SessionRecord | undefined }
  | { kind: 'duplicate'; result: Uint8Array }
  | { kind: 'stale'; lastSeq: number };

/**
 * Forgets expired sessions of the shard as of (index, time), then judges `session`.
 */
export function judgeSession(
  dbs: StateDbs,
  shard: number,
  meta: ShardMeta,
  session: DecodedSession,
  index: number,
  limits: StateLimits,
): SessionVerdict {
  expireSessions(dbs, shard, meta, index, session.time, limits);
  const bytes = dbs.sessions.getBinary(prefixedKey(shard, session.id));
  const previous = bytes === undefined ? undefined : decodeSession(bytes);
  if (previous === undefined) return { kind: 'apply', previous };
  if (session.seq === previous.seq) return { kind: 'duplicate', result: previous.result };
  if (session.seq < previous.seq) return { kind: 'stale', lastSeq: previous.seq };
  return { kind: 'apply', previous };
}

/** Remembers the result of an applied session command, evicting beyond the bound. */
export function rememberSession(
  dbs: StateDbs,
  shard: number,
  meta: ShardMeta,
  session: DecodedSession,
  previous: SessionRecord | undefined,
  record: SessionRecord,
  limits: StateLimits,
): void {
  if (previous === undefined) meta.sessionCount += 1;
  else dbs.ages.removeSync(ageKey(shard, previous.index));
  dbs.sessions.putSync(prefixedKey(shard, session.id), encodeSession(record));
  dbs.ages.putSync(ageKey(shard, record.index), encodeAge(record.time, session.id));
  if (meta.sessionCount > limits.sessionsPerShardMax) {
    dropOldestSessions(dbs, shard, meta, () => meta.sessionCount > limits.sessionsPerShardMax);
  }
}

function expireSessions(
  dbs: StateDbs,
  shard: number,
  meta: ShardMeta,
  index: number,
  time: number,
  limits: StateLimits,
): void {
  if (meta.sessionCount === 0) return;
  dropOldestSessions(dbs, shard, meta, (oldest) => {
    return (
      index - oldest.index > limits.sessionExpiryEntries ||
      time - oldest.time > limits.sessionExpiryMs
    );
  });
}

/** Drops the shard's least recently used sessions while `shouldDrop` says so. */
function dropOldestSessions(
  dbs: StateDbs,
  shard: number,
  meta: ShardMeta,
  shouldDrop: (oldest: { index: number; time: number }) => boolean,
): void {
  const doomed: { age: Buffer; id: Buffer }[] = [];
  for (const { key, value } of dbs.ages.getRange({
    start: shardPrefix(shard),
    end: shardEnd(shard),
  })) {
    const oldest = { index: readU64(key, 4), time: value.readDoubleBE(0) };
    if (!shouldDrop(oldest)) break;
    doomed.push({ age: key, id: value.subarray(ageHeaderBytes) });
    meta.sessionCount -= 1;
    if (meta.sessionCount === 0) break;
  }
  for (const { age, id } of doomed) {
    dbs.ages.removeSync(age);
    dbs.sessions.removeSync(prefixedKey(shard, id));
  }
}
