/**
 * The client sessions of one remote client, for exactly-once writes (Raft thesis §6.3).
 *
 * A shard remembers, per session, only the result of the session's latest request, so a
 * session may have one request outstanding per shard at a time (engine/state/sessions.ts). A
 * client therefore keeps a small pool of sessions per shard: a write takes a free session of its
 * shard, numbers itself with the session's next sequence number, keeps that number across
 * every retry, and frees the session when its call ends (success, error or deadline). Writes
 * beyond the pool wait, in order, for a free session.
 *
 * Session ids are the client's random 16-byte id followed by a two-byte slot number, so slot k
 * is the same session on every shard (each shard keeps its own table and sequence).
 */
import { randomBytes } from 'node:crypto';
import { assert } from '../../engine/assert.js';
import { FlotillaError } from '../../engine/errors.js';
import { clientSessionsPerShardMax, clientSessionWaitersMax } from '../../engine/limits.js';

/** Bytes of a client's random id. */
export const clientIdBytes = 16;

/** One session of one shard, held by one write at a time. */
export interface SessionSlot {
  readonly id: Uint8Array;
  /** The sequence number the holder uses (on every retry of its write). */
  readonly seq: number;
}

/** A held session, with what releasing it needs (no lookup on the write path). */
class Held implements SessionSlot {
  released = false;

  constructor(
    readonly id: Uint8Array,
    readonly seq: number,
    readonly pool: SessionPool,
    readonly shard: number,
    readonly slot: Slot,
  ) {}
}

interface Slot {
  id: Uint8Array;
  /** The last sequence number used on this shard; the next write uses one more. */
  lastSeq: number;
}

interface Waiter {
  resolve(slot: Slot): void;
  reject(err: FlotillaError): void;
  timer: NodeJS.Timeout;
}

interface ShardSessions {
  created: number;
  free: Slot[];
  waiters: Waiter[];
}

/** The session pool of one client; see the module comment. */
export class SessionPool {
  /** The client's random id, the prefix of every session id. */
  readonly clientId: Uint8Array = new Uint8Array(randomBytes(clientIdBytes));
  private readonly shards = new Map<number, ShardSessions>();
  /** Sessions held now. */
  private held = 0;
  private closed = false;

  constructor(
    private readonly sessionsPerShard = clientSessionsPerShardMax,
    private readonly waitersMax = clientSessionWaitersMax,
  ) {
    assert(sessionsPerShard >= 1 && sessionsPerShard <= 0xffff, 'sessions per shard in range');
  }

  /** Writes holding a session now. */
  get heldCount(): number {
    return this.held;
  }

  /**
   * A session of `shard` for one write, waiting up to `timeoutMs` for one to be free; rejects
   * with BUSY when too many writes wait, TIMEOUT when none frees in time, CLOSED after close.
   */
  acquire(shard: number, timeoutMs: number): SessionSlot | Promise<SessionSlot> {
    if (this.closed) throw new FlotillaError('CLOSED', 'the client is closed');
    const sessions = this.sessionsOf(shard);
    const free = sessions.free.pop() ?? this.create(sessions);
    if (free !== undefined) return this.hold(shard, free);
    if (sessions.waiters.length >= this.waitersMax) {
      throw new FlotillaError(
        'BUSY',
        `${sessions.waiters.length} writes to shard ${shard} wait for a session; back off`,
      );
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve: (slot) => resolve(this.hold(shard, slot)),
        reject,
        timer: setTimeout(() => {
          sessions.waiters.splice(sessions.waiters.indexOf(waiter), 1);
          reject(
            new FlotillaError('TIMEOUT', `no session of shard ${shard} became free in time`, {
              outcome: 'not-applied',
            }),
          );
        }, timeoutMs),
      };
      sessions.waiters.push(waiter);
    });
  }

  /** Frees a session once its write's call has ended, handing it to the next waiting write. */
  release(session: SessionSlot): void {
    assert(session instanceof Held, 'a released session is a held one');
    assert(session.pool === this, "a released session is this pool's");
    assert(!session.released, 'a released session is held');
    session.released = true;
    this.held--;
    const sessions = this.sessionsOf(session.shard);
    const waiter = sessions.waiters.shift();
    if (waiter !== undefined) {
      clearTimeout(waiter.timer);
      waiter.resolve(session.slot);
    } else {
      sessions.free.push(session.slot);
    }
  }

  /** Rejects every waiting write with CLOSED; later acquires throw CLOSED. */
  close(): void {
    this.closed = true;
    for (const sessions of this.shards.values()) {
      for (const w of sessions.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new FlotillaError('CLOSED', 'the client is closed'));
      }
    }
  }

  private sessionsOf(shard: number): ShardSessions {
    let sessions = this.shards.get(shard);
    if (sessions === undefined) {
      sessions = { created: 0, free: [], waiters: [] };
      this.shards.set(shard, sessions);
    }
    return sessions;
  }

  private create(sessions: ShardSessions): Slot | undefined {
    if (sessions.created >= this.sessionsPerShard) return undefined;
    const number = sessions.created++;
    const id = new Uint8Array(clientIdBytes + 2);
    id.set(this.clientId, 0);
    id[clientIdBytes] = number >>> 8;
    id[clientIdBytes + 1] = number & 0xff;
    return { id, lastSeq: 0 };
  }

  private hold(shard: number, slot: Slot): SessionSlot {
    // Every call takes a new number, even when its predecessor's outcome stayed unknown: a late
    // copy of the predecessor then finds a newer number remembered and is refused, unapplied.
    slot.lastSeq += 1;
    this.held++;
    return new Held(slot.id, slot.lastSeq, this, shard, slot);
  }
}
