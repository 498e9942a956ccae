/**
 * NodeService: what one node offers to the store API above it — shard-level operations on the
 * shards it hosts. The embedded store calls it in-process; a cluster node serves it to remote
 * clients (the client protocol), which route each request to the shard's leader.
 *
 * Every method refuses with a typed FlotillaError: NOT_LEADER (with `leaderHint`) when another
 * node leads the shard, STALE_EPOCH when the shard is not (or no longer) hosted here, BUSY under
 * backpressure, TIMEOUT (with `outcome`), CLOSED.
 */
import { FlotillaError } from '../engine/errors.js';
import type { NodeHost } from '../engine/host.js';
import { electionWaitersMax, electionWaitMs } from '../engine/limits.js';
import type { Change } from '../engine/state/change-feed.js';
import type { CommandResult } from '../engine/state/commands.js';
import type { KvState, ScanEntry, StoredValue } from '../engine/state/kv-state.js';
import type { Consistency, ScanRange } from './types.js';

/** One shard as the shard map describes it. */
export interface ShardInfo {
  id: number;
  /** The shard owns keys whose hash h has hashLow <= h < hashHigh. */
  hashLow: number;
  hashHigh: number;
  /** Voting replicas (node ids). */
  replicas: number[];
  /** The leader this node knows of, 0 if none. */
  leader: number;
}

/** A node of the cluster, as clients reach it. */
export interface NodeAddress {
  id: number;
  /** host:port of its client endpoint ('' for an in-process node). */
  client: string;
}

/** The shard map as one node knows it. */
export interface ShardMap {
  /** Bumped whenever a shard's range or replicas change. */
  epoch: number;
  shards: ShardInfo[];
  nodes: NodeAddress[];
}

/** Options of a scan page. */
export interface ScanPageOptions {
  limit: number;
  reverse: boolean;
  consistency: Consistency;
}

/** The shard-level operations of one node; see the module comment. */
export interface NodeService {
  readonly nodeId: number;
  /** The shard map as this node knows it. */
  shardMap(): ShardMap;
  /** Proposes an encoded command (engine/state/commands.ts) to `shard`; resolves once applied. */
  propose(shard: number, command: Uint8Array): Promise<CommandResult>;
  /** Reads one key of `shard` at the given consistency. */
  read(shard: number, key: Uint8Array, consistency: Consistency): Promise<StoredValue | undefined>;
  /** Up to `limit` keys of `shard` in `range`, in key order, from one consistent read. */
  scan(shard: number, range: ScanRange, options: ScanPageOptions): Promise<ScanEntry[]>;
  /** Changes of `shard` after `afterIndex`, in commit order (COMPACTED when too old). */
  changes(shard: number, afterIndex: number, limit: number): Change[];
  /** The index a change feed of `shard` starts from when no cursor is given. */
  appliedIndex(shard: number): number;
  /** Calls `listener` with the shards that have new changes; returns the unsubscribe function. */
  onChanges(listener: (shards: ReadonlySet<number>) => void): () => void;
  /** Facts about the node for status pages. */
  status(): Record<string, unknown>;
}

/**
 * Requests held while their shard elects a leader. A replica that knows no leader (it is a
 * candidate, or its leader stepped down) holds a request until the shard has one, then serves it
 * or redirects it to the winner: the caller does not have to guess when the election ends.
 * Bounded in number (`electionWaitersMax`) and in time (`electionWaitMs`).
 */
class ElectionWaits {
  private readonly waiting = new Map<number, (() => void)[]>();
  private count = 0;
  private listening = false;

  constructor(
    private readonly host: NodeHost,
    private readonly waitMs: number,
  ) {}

  /** A promise that settles once `shard` has a leader (or after the wait), else undefined. */
  wait(shard: number): Promise<void> | undefined {
    if (!this.host.hosts(shard) || this.host.leaderOf(shard) !== 0) return undefined;
    if (this.count >= electionWaitersMax) return undefined;
    if (!this.listening) {
      this.listening = true;
      this.host.onLeaderChange((c) => {
        if (c.leader !== 0) this.wake(c.group);
      });
    }
    return new Promise((resolve) => {
      const list = this.waiting.get(shard) ?? [];
      this.waiting.set(shard, list);
      this.count++;
      const done = () => {
        clearTimeout(timer);
        this.count--;
        resolve();
      };
      const timer = setTimeout(() => {
        const at = list.indexOf(done);
        if (at >= 0) list.splice(at, 1);
        if (list.length === 0 && this.waiting.get(shard) === list) this.waiting.delete(shard);
        done();
      }, this.waitMs);
      timer.unref();
      list.push(done);
    });
  }

  private wake(shard: number): void {
    const list = this.waiting.get(shard);
    if (list === undefined) return;
    this.waiting.delete(shard);
    for (const done of list) done();
  }
}

/** NodeService over this process's host and state. */
export class LocalNodeService implements NodeService {
  private readonly elections: ElectionWaits;

  constructor(
    private readonly host: NodeHost,
    private readonly state: KvState,
    private readonly map: () => ShardMap,
    /** Longest a request waits for its shard's election (see ElectionWaits). */
    electionWait = electionWaitMs,
  ) {
    this.elections = new ElectionWaits(host, electionWait);
  }

  get nodeId(): number {
    return this.host.nodeId;
  }

  shardMap(): ShardMap {
    return this.map();
  }

  propose(shard: number, command: Uint8Array): Promise<CommandResult> {
    const election = this.elections.wait(shard);
    if (election === undefined) return this.host.propose(shard, command);
    return election.then(() => this.host.propose(shard, command));
  }

  /** Waits until `shard` may be read here at `consistency`. */
  private barrier(shard: number, consistency: Consistency): Promise<void> | undefined {
    if (consistency === 'stale') {
      this.host.checkHosted(shard);
      return undefined;
    }
    if (consistency !== 'linearizable' && consistency !== 'lease') {
      throw new FlotillaError('INVALID_ARGUMENT', `unknown consistency '${String(consistency)}'`);
    }
    if (this.host.canReadLocally(shard)) return undefined;
    return this.host.readBarrier(shard, consistency === 'lease' ? 'lease' : 'safe');
  }

  read(shard: number, key: Uint8Array, consistency: Consistency): Promise<StoredValue | undefined> {
    const election = consistency === 'stale' ? undefined : this.elections.wait(shard);
    if (election !== undefined) return election.then(() => this.readNow(shard, key, consistency));
    return this.readNow(shard, key, consistency);
  }

  private readNow(
    shard: number,
    key: Uint8Array,
    consistency: Consistency,
  ): Promise<StoredValue | undefined> {
    try {
      const wait = this.barrier(shard, consistency);
      if (wait === undefined) return Promise.resolve(this.state.get(shard, key));
      return wait.then(() => this.state.get(shard, key));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async scan(shard: number, range: ScanRange, options: ScanPageOptions): Promise<ScanEntry[]> {
    await this.barrier(shard, options.consistency);
    return [...this.state.scan(shard, range, { limit: options.limit, reverse: options.reverse })];
  }

  changes(shard: number, afterIndex: number, limit: number): Change[] {
    this.host.checkHosted(shard);
    return this.state.changes(shard, afterIndex, limit);
  }

  appliedIndex(shard: number): number {
    this.host.checkHosted(shard);
    return this.state.appliedIndex(shard);
  }

  onChanges(listener: (shards: ReadonlySet<number>) => void): () => void {
    return this.state.onChanges((changes) => {
      const shards = new Set<number>();
      for (const c of changes) shards.add(c.shard);
      listener(shards);
    });
  }

  status(): Record<string, unknown> {
    const map = this.map();
    let keys = 0;
    let leading = 0;
    for (const s of map.shards) {
      if (!this.host.hosts(s.id)) continue;
      keys += this.state.count(s.id);
      if (this.host.isLeader(s.id)) leading++;
    }
    return { node: this.nodeId, epoch: map.epoch, shards: map.shards.length, leading, keys };
  }
}
