/**
 * The remote client, `Flotilla.connect(endpoints, { secret })`: the store API of the embedded
 * store over the client protocol, routing every request to the node that can serve it.
 *
 * Routing. The client fetches the shard map from any endpoint and keeps one connection per node
 * (many requests in flight on each). A request for a shard goes to the shard's leader as the
 * client last knew it (a leader cache seeded from the map); NOT_LEADER with a `leaderHint` sends
 * it there at once, without one it tries the shard's other replicas; STALE_EPOCH (the shard is
 * no longer on that node) refreshes the map; a connection failure tries another replica, and a
 * node that cannot be reached is skipped for a backoff. Between rounds the client waits a
 * jittered, growing delay, at most `clientLeaderPollMsMax` once every replica was tried (the
 * shard is electing a leader: the call should see the winner soon after the election). Every
 * call has a deadline (`timeoutMs`) covering all of its tries.
 *
 * Exactly-once writes. Every write carries a client session (sessions.ts): the same session id
 * and sequence number on every try, so a shard that already applied it answers a retry with
 * the remembered result instead of applying it again. A write is therefore retried even when a
 * try's outcome is unknown (its connection died after sending it, or the node answered TIMEOUT
 * with `outcome: 'unknown'`); only when the deadline passes after such a try does the caller get
 * TIMEOUT with `outcome: 'unknown'`. When no try can have been applied, the deadline error says
 * `outcome: 'not-applied'`.
 *
 * Reads are linearizable by default (served by the leader through ReadIndex); `lease` goes to
 * the leader too; `stale` goes to any replica, preferring one already connected. Watches
 * subscribe to change notifications on every node, because each replica applies every change
 * of its shards; feeds themselves are read from the leaders.
 *
 * What the client cannot do: register user commands (`defineCommand` refuses with
 * INVALID_ARGUMENT: commands are defined on the nodes; `exec` works), and follow a key to a new
 * shard in the middle of a write (a split): such a write fails with STALE_EPOCH, unapplied, and
 * the caller's retry goes to the new shard.
 */
import { FlotillaError, isFlotillaError } from '../../engine/errors.js';
import {
  changesReadMax,
  clientConnectTimeoutMs,
  clientEndpointsMax,
  clientLeaderPollMsMax,
  clientRedialBackoffMaxMs,
  clientRedialBackoffMinMs,
  clientRequestTimeoutMs,
  clientRetryBackoffMaxMs,
  clientRetryBackoffMinMs,
  clusterIdBytesMax,
  clusterSecretBytesMin,
} from '../../engine/limits.js';
import { entropyRandom, type SeededRandom } from '../../engine/random.js';
import type { Change } from '../../engine/state/change-feed.js';
import { type Command, type CommandResult, encodeCommand } from '../../engine/state/commands.js';
import type { ScanEntry, StoredValue } from '../../engine/state/kv-state.js';
import { Backoff } from '../../engine/transport/backoff.js';
import { parseAddress } from '../cluster-config.js';
import type { ShardMap } from '../node-service.js';
import { keyHash, rangeIndexOf } from '../partition.js';
import { type ShardAccess, StoreApi } from '../store-api.js';
import type { Consistency } from '../types.js';
import { ClientConnection, type ClientTls } from './connection.js';
import {
  type ClientRequest,
  changesFromWire,
  commandResultFromBody,
  RequestOp,
  readResultFromBody,
  type ScanBounds,
  scanPageFromWire,
  shardMapFromWire,
} from './protocol.js';
import { SessionPool } from './sessions.js';

export type { ClientTls };

/** Options of `Flotilla.connect`. */
export interface ConnectOptions {
  /** The cluster secret (at least `clusterSecretBytesMin` bytes). */
  secret: string | Uint8Array;
  /** When given, nodes of any other cluster are refused. */
  clusterId?: string;
  /** Deadline of each call, retries included (default `clientRequestTimeoutMs`). */
  timeoutMs?: number;
  tls?: ClientTls;
}

/** What one call routes by. */
interface Route {
  shard: number;
  /** The key the request is about, if any (a read may follow it to another shard). */
  key?: Uint8Array;
  /** Whether the shard's leader must serve it, or any replica may. */
  mode: 'leader' | 'any';
  /** A write: the outcome of a lost try is unknown. */
  write: boolean;
}

/** One node of the cluster, as the client reaches it. */
interface NodeSlot {
  id: number;
  /** host:port, from an endpoint that answered as this node or from the shard map. */
  address: string | undefined;
  conn: ClientConnection | undefined;
  dialing: Promise<ClientConnection> | undefined;
  /** Not dialed again before this time (after a failed dial). */
  downUntilMs: number;
  backoff: Backoff;
  /** Whether a watch subscription is active (or being set up) on the connection. */
  watching: boolean;
  rewatch: NodeJS.Timeout | undefined;
  /** Stops delivering the current connection's pushes. */
  unpush: (() => void) | undefined;
}

/** Errors after which a write was certainly not applied by that try. */
const refusedCodes = new Set(['NOT_LEADER', 'STALE_EPOCH', 'BUSY', 'DROPPED']);
/** Errors a call retries (elsewhere or later); every other error is the call's answer. */
const retriedCodes = new Set([
  'NOT_LEADER',
  'STALE_EPOCH',
  'BUSY',
  'DROPPED',
  'TIMEOUT',
  'UNAVAILABLE',
  'CLOSED',
  'IO',
]);

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** ShardAccess over the client protocol; see the module comment. */
export class RemoteAccess implements ShardAccess {
  private map!: ShardMap;
  private starts = new Uint32Array(0);
  private ids: number[] = [];
  private readonly shardInfo = new Map<number, ShardMap['shards'][number]>();
  /** The node believed to lead each shard. */
  private readonly leaders = new Map<number, number>();
  private readonly nodes = new Map<number, NodeSlot>();
  /** Endpoints whose node id is known (from their handshake). */
  private readonly endpointIds = new Map<string, number>();
  private readonly sessions = new SessionPool();
  private readonly random: SeededRandom = entropyRandom();
  private readonly changeListeners = new Set<(shards: ReadonlySet<number>) => void>();
  private refreshing: Promise<void> | undefined;
  private closed = false;
  /** The cluster id the nodes reported. */
  clusterId = '';

  private constructor(
    private readonly endpoints: string[],
    private readonly secret: Uint8Array,
    private expectedClusterId: Uint8Array,
    readonly timeoutMs: number,
    private readonly tls: ClientTls | undefined,
  ) {}

  /** Validates the options, connects to an endpoint and fetches the shard map. */
  static async connect(endpoints: unknown, options: ConnectOptions): Promise<RemoteAccess> {
    const list = checkEndpoints(endpoints);
    if (options === null || typeof options !== 'object') {
      throw new FlotillaError('INVALID_ARGUMENT', 'Flotilla.connect needs options { secret }');
    }
    const secret =
      typeof options.secret === 'string' ? Buffer.from(options.secret, 'utf8') : options.secret;
    if (!(secret instanceof Uint8Array) || secret.length < clusterSecretBytesMin) {
      throw new FlotillaError(
        'INVALID_ARGUMENT',
        `secret must be the cluster secret (at least ${clusterSecretBytesMin} bytes)`,
      );
    }
    const clusterId = Buffer.from(options.clusterId ?? '', 'utf8');
    if (typeof (options.clusterId ?? '') !== 'string' || clusterId.length > clusterIdBytesMax) {
      throw new FlotillaError('INVALID_ARGUMENT', `clusterId must be a string of at most 64 bytes`);
    }
    const timeoutMs = options.timeoutMs ?? clientRequestTimeoutMs;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new FlotillaError('INVALID_ARGUMENT', 'timeoutMs must be a positive number');
    }
    const access = new RemoteAccess(list, secret, clusterId, timeoutMs, options.tls);
    await access.fetchMap(Date.now() + timeoutMs);
    return access;
  }

  // ---- The shard map -------------------------------------------------------------------------

  shardIds(): number[] {
    return this.ids;
  }

  shardOf(key: Uint8Array): number {
    return this.map.shards[rangeIndexOf(this.starts, keyHash(key))]!.id;
  }

  /** The shard map as the client knows it, with leaders from its cache. */
  shardMap(): ShardMap {
    return {
      epoch: this.map.epoch,
      nodes: this.map.nodes.map((n) => ({ ...n })),
      shards: this.map.shards.map((s) => ({
        ...s,
        replicas: [...s.replicas],
        leader: this.leaders.get(s.id) ?? 0,
      })),
    };
  }

  private install(map: ShardMap): void {
    this.map = map;
    this.starts = Uint32Array.from(map.shards, (s) => s.hashLow);
    this.ids = map.shards.map((s) => s.id);
    this.shardInfo.clear();
    for (const s of map.shards) {
      this.shardInfo.set(s.id, s);
      if (s.leader !== 0 && !this.leaders.has(s.id)) this.leaders.set(s.id, s.leader);
    }
    for (const n of map.nodes) {
      const slot = this.slot(n.id);
      // An in-process node has no address ('') and is reached through an endpoint.
      if (slot.address === undefined && isAddress(n.client)) slot.address = n.client;
    }
  }

  /** Fetches the map from any endpoint (at connect time): the first that answers wins. */
  private async fetchMap(deadline: number): Promise<void> {
    const backoff = new Backoff(clientRetryBackoffMinMs, clientRetryBackoffMaxMs, this.random);
    let last: FlotillaError | undefined;
    for (;;) {
      const first = this.random.intBelow(this.endpoints.length);
      for (let i = 0; i < this.endpoints.length; i++) {
        const address = this.endpoints[(first + i) % this.endpoints.length]!;
        try {
          const conn = await this.dialAddress(address, deadline);
          const wire = await conn.request({ op: RequestOp.ShardMap }, deadline - Date.now());
          this.install(shardMapFromWire(wire));
          return;
        } catch (err) {
          if (!isFlotillaError(err) || !retriedCodes.has(err.code)) throw err;
          last = err;
        }
        if (Date.now() >= deadline) break;
      }
      if (Date.now() + 1 >= deadline) break;
      await sleep(Math.min(backoff.next(), deadline - Date.now()));
    }
    throw new FlotillaError(
      'UNAVAILABLE',
      `no endpoint of ${this.endpoints.join(', ')} answered with the shard map: ` +
        `${last?.message ?? 'no time left'}`,
      last === undefined ? {} : { cause: last },
    );
  }

  /** Refreshes the map from a node (one refresh at a time); keeps it unless newer or equal. */
  private refreshMap(deadline: number): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const open = [...this.nodes.values()].find((s) => s.conn !== undefined && !s.conn.isClosed);
        if (open?.conn === undefined) {
          await this.fetchMap(deadline);
          return;
        }
        const wire = await open.conn.request({ op: RequestOp.ShardMap }, deadline - Date.now());
        const map = shardMapFromWire(wire);
        if (map.epoch >= this.map.epoch) this.install(map);
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  // ---- Connections ---------------------------------------------------------------------------

  private slot(id: number): NodeSlot {
    let slot = this.nodes.get(id);
    if (slot === undefined) {
      slot = {
        id,
        address: undefined,
        conn: undefined,
        dialing: undefined,
        downUntilMs: 0,
        backoff: new Backoff(clientRedialBackoffMinMs, clientRedialBackoffMaxMs, this.random),
        watching: false,
        rewatch: undefined,
        unpush: undefined,
      };
      this.nodes.set(id, slot);
    }
    return slot;
  }

  /** Opens a connection to `address` and files it under the node that answered. */
  private async dialAddress(address: string, deadline: number): Promise<ClientConnection> {
    const known = this.endpointIds.get(address);
    const existing = known === undefined ? undefined : this.nodes.get(known)?.conn;
    if (existing !== undefined && !existing.isClosed) return existing;
    const { host, port } = parseAddress(address, 'endpoint');
    const conn = await ClientConnection.open({
      host,
      port,
      secret: this.secret,
      clusterId: this.expectedClusterId,
      timeoutMs: Math.max(1, Math.min(clientConnectTimeoutMs, deadline - Date.now())),
      ...(this.tls === undefined ? {} : { tls: this.tls }),
    });
    if (this.closed) {
      conn.close();
      throw new FlotillaError('CLOSED', 'the client is closed');
    }
    this.clusterId = conn.clusterId;
    // Without a cluster id of its own, the client keeps to the first cluster it meets.
    if (this.expectedClusterId.length === 0) {
      this.expectedClusterId = Buffer.from(conn.clusterId, 'utf8');
    }
    this.endpointIds.set(address, conn.nodeId);
    const slot = this.slot(conn.nodeId);
    slot.address = address;
    if (slot.conn !== undefined && !slot.conn.isClosed) {
      conn.close();
      return slot.conn;
    }
    this.adopt(slot, conn);
    return conn;
  }

  private adopt(slot: NodeSlot, conn: ClientConnection): void {
    slot.conn = conn;
    slot.backoff.reset();
    slot.downUntilMs = 0;
    conn.onClose(() => {
      if (slot.conn === conn) slot.conn = undefined;
      if (slot.watching) {
        slot.watching = false;
        this.scheduleWatch(slot);
      }
    });
    if (this.changeListeners.size > 0) this.scheduleWatch(slot, 0);
  }

  /** The open connection to node `id`, if there is one (the hot path: no promise). */
  private openConnection(id: number): ClientConnection | undefined {
    const conn = this.nodes.get(id)?.conn;
    return conn !== undefined && !conn.isClosed ? conn : undefined;
  }

  /** The open connection to node `id`, dialing it when needed. */
  private async connectionTo(id: number, deadline: number): Promise<ClientConnection> {
    const slot = this.slot(id);
    if (slot.conn !== undefined && !slot.conn.isClosed) return slot.conn;
    if (slot.dialing !== undefined) return slot.dialing;
    if (slot.address === undefined) await this.identifyEndpoints(deadline);
    const address = slot.address;
    if (address === undefined) {
      throw new FlotillaError('UNAVAILABLE', `no address is known for node ${id}`, {
        outcome: 'not-applied',
      });
    }
    if (Date.now() < slot.downUntilMs) {
      throw new FlotillaError('UNAVAILABLE', `node ${id} (${address}) is unreachable for now`, {
        outcome: 'not-applied',
      });
    }
    slot.dialing = this.dialAddress(address, deadline)
      .then((conn) => {
        if (conn.nodeId !== id) {
          throw new FlotillaError('UNAVAILABLE', `${address} answered as node ${conn.nodeId}`, {
            outcome: 'not-applied',
          });
        }
        return conn;
      })
      .catch((err: unknown) => {
        slot.downUntilMs = Date.now() + slot.backoff.next();
        throw err;
      })
      .finally(() => {
        slot.dialing = undefined;
      });
    return slot.dialing;
  }

  /** Dials the endpoints not yet known as a node, learning their ids. */
  private async identifyEndpoints(deadline: number): Promise<void> {
    for (const address of this.endpoints) {
      if (this.endpointIds.has(address)) continue;
      try {
        await this.dialAddress(address, deadline);
      } catch (err) {
        if (!isFlotillaError(err) || !retriedCodes.has(err.code)) throw err;
      }
    }
  }

  // ---- Routing -------------------------------------------------------------------------------

  private isDown(id: number): boolean {
    const slot = this.nodes.get(id);
    return slot !== undefined && Date.now() < slot.downUntilMs && slot.conn === undefined;
  }

  /** The next node to try for `route`, or undefined when every candidate was tried. */
  private pick(route: Route, tried: ReadonlySet<number>): number | undefined {
    const info = this.shardInfo.get(route.shard);
    if (info === undefined) {
      throw new FlotillaError('STALE_EPOCH', `shard ${route.shard} is no longer in the map`);
    }
    const usable = (id: number) => !tried.has(id) && !this.isDown(id);
    if (route.mode === 'leader') {
      const leader = this.leaders.get(route.shard);
      if (leader !== undefined && usable(leader)) return leader;
    } else {
      const connected = info.replicas.find((id) => usable(id) && this.nodes.get(id)?.conn);
      if (connected !== undefined) return connected;
    }
    return info.replicas.find(usable);
  }

  /**
   * Runs `attempt` against the node that should serve `route`, retrying per the module comment
   * until it succeeds, fails with an answer, or the deadline passes.
   */
  private call<T>(
    route: Route,
    deadline: number,
    attempt: (conn: ClientConnection, shard: number, timeoutMs: number) => Promise<T>,
  ): Promise<T> {
    // The hot path: the believed leader is connected. One try, and no retry state unless it
    // fails (then `retrying` carries on as if it had made that try itself).
    const node = route.mode === 'leader' ? this.leaders.get(route.shard) : undefined;
    const conn = node === undefined ? undefined : this.openConnection(node);
    if (conn === undefined || node === undefined) return this.retrying(route, deadline, attempt);
    return attempt(conn, route.shard, Math.max(1, deadline - Date.now())).catch((err: unknown) =>
      this.retrying(route, deadline, attempt, { node, err }),
    );
  }

  /** `call` with retries; `first` is a try that already failed. */
  private async retrying<T>(
    route: Route,
    deadline: number,
    attempt: (conn: ClientConnection, shard: number, timeoutMs: number) => Promise<T>,
    first?: { node: number; err: unknown },
  ): Promise<T> {
    const backoff = new Backoff(clientRetryBackoffMinMs, clientRetryBackoffMaxMs, this.random);
    const tried = new Set<number>();
    let maybeApplied = false;
    let last: FlotillaError | undefined;
    if (first !== undefined) {
      const { node, err } = first;
      if (!isFlotillaError(err) || !retriedCodes.has(err.code)) throw err;
      this.checkOpen();
      tried.add(node);
      last = err;
      maybeApplied = this.mayHaveApplied(route, err);
      await this.recover(route, node, err, tried, backoff, deadline, maybeApplied);
    }
    for (;;) {
      this.checkOpen();
      if (Date.now() >= deadline) throw deadlineError(route, maybeApplied, last, this.timeoutMs);
      const node = this.pick(route, tried);
      if (node === undefined) {
        // Every replica was tried: none leads the shard now (an election), or none answered.
        tried.clear();
        const pause = Math.min(backoff.next(), clientLeaderPollMsMax);
        await sleep(Math.min(pause, deadline - Date.now()));
        continue;
      }
      tried.add(node);
      try {
        const conn = this.openConnection(node) ?? (await this.connectionTo(node, deadline));
        const result = await attempt(conn, route.shard, Math.max(1, deadline - Date.now()));
        // Only a leader applies writes; a follower may serve a linearizable read itself.
        if (route.write) this.leaders.set(route.shard, node);
        return result;
      } catch (err) {
        if (!isFlotillaError(err) || !retriedCodes.has(err.code)) throw err;
        this.checkOpen();
        last = err;
        if (this.mayHaveApplied(route, err)) maybeApplied = true;
        await this.recover(route, node, err, tried, backoff, deadline, maybeApplied);
      }
    }
  }

  /** Whether a failed try of `route` may have been applied nonetheless. */
  private mayHaveApplied(route: Route, err: FlotillaError): boolean {
    return route.write && !refusedCodes.has(err.code) && err.details.outcome !== 'not-applied';
  }

  /** Adjusts routing after a try of `route` on `node` failed with `err`. */
  private async recover(
    route: Route,
    node: number,
    err: FlotillaError,
    tried: Set<number>,
    backoff: Backoff,
    deadline: number,
    maybeApplied: boolean,
  ): Promise<void> {
    switch (err.code) {
      case 'NOT_LEADER': {
        const hint = err.details.leaderHint ?? 0;
        if (hint !== 0 && hint !== node && !tried.has(hint)) this.leaders.set(route.shard, hint);
        else if (this.leaders.get(route.shard) === node) this.leaders.delete(route.shard);
        return;
      }
      case 'STALE_EPOCH': {
        this.leaders.delete(route.shard);
        await this.refreshMap(deadline).catch((e: unknown) => {
          if (!isFlotillaError(e) || !retriedCodes.has(e.code)) throw e;
        });
        this.follow(route, maybeApplied);
        tried.clear();
        await sleep(Math.min(backoff.next(), deadline - Date.now()));
        return;
      }
      case 'BUSY':
      case 'TIMEOUT':
      case 'DROPPED':
        // The node is alive and may serve the next try: back off, then ask it again.
        tried.delete(node);
        await sleep(Math.min(backoff.next(), deadline - Date.now()));
        return;
      default:
        // The node failed or went away: try another replica now.
        if (this.leaders.get(route.shard) === node) this.leaders.delete(route.shard);
    }
  }

  /** After a map refresh: follows a keyed read to its key's shard; a write must stay put. */
  private follow(route: Route, maybeApplied: boolean): void {
    if (route.key === undefined) return;
    const shard = this.shardOf(route.key);
    if (shard === route.shard) return;
    if (!route.write) {
      route.shard = shard;
      return;
    }
    if (maybeApplied) {
      throw new FlotillaError(
        'TIMEOUT',
        `the key moved to shard ${shard} while a write to shard ${route.shard} was in doubt; ` +
          'it may or may not have been applied',
        { outcome: 'unknown' },
      );
    }
    throw new FlotillaError(
      'STALE_EPOCH',
      `the key moved from shard ${route.shard} to shard ${shard}; the write was not applied: retry`,
    );
  }

  private checkOpen(): void {
    if (this.closed) throw new FlotillaError('CLOSED', 'the client is closed');
  }

  // ---- ShardAccess ---------------------------------------------------------------------------

  async propose(shard: number, command: Command): Promise<CommandResult> {
    this.checkOpen();
    const deadline = Date.now() + this.timeoutMs;
    const held = this.sessions.acquire(shard, this.timeoutMs);
    const session = held instanceof Promise ? await held : held;
    try {
      const bytes = encodeCommand(command, { id: session.id, seq: session.seq, time: Date.now() });
      const route: Route = { shard, mode: 'leader', write: true };
      const key = commandKey(command);
      if (key !== undefined) route.key = key;
      return await this.call(route, deadline, (conn, s, timeoutMs) =>
        conn.request({ op: RequestOp.Propose, shard: s, command: bytes }, timeoutMs, (body) =>
          commandResultFromBody(body, command.type),
        ),
      );
    } finally {
      this.sessions.release(session);
    }
  }

  read(shard: number, key: Uint8Array, consistency: Consistency): Promise<StoredValue | undefined> {
    this.checkOpen();
    const route: Route = {
      shard,
      key,
      mode: consistency === 'stale' ? 'any' : 'leader',
      write: false,
    };
    return this.call(route, Date.now() + this.timeoutMs, (conn, s, timeoutMs) =>
      conn.request(
        { op: RequestOp.Read, shard: s, key, consistency },
        timeoutMs,
        readResultFromBody,
      ),
    );
  }

  async scanPage(
    shard: number,
    bounds: ScanBounds,
    options: { limit: number; reverse: boolean; consistency: Consistency },
  ): Promise<ScanEntry[]> {
    this.checkOpen();
    const { reverse, consistency } = options;
    const route: Route = { shard, mode: consistency === 'stale' ? 'any' : 'leader', write: false };
    const out: ScanEntry[] = [];
    let { start, end } = bounds;
    // A node cuts a page at a byte budget: ask again from where it stopped.
    while (out.length < options.limit) {
      const req: ClientRequest = {
        op: RequestOp.ScanPage,
        shard,
        bounds: withBounds(start, end),
        limit: options.limit - out.length,
        reverse,
        consistency,
      };
      const page = await this.call(route, Date.now() + this.timeoutMs, async (conn, _s, ms) =>
        scanPageFromWire(await conn.request(req, ms)),
      );
      out.push(...page.entries);
      if (!page.more) break;
      const last = page.entries.at(-1)!.key;
      if (reverse) end = last;
      else start = Buffer.concat([last, Buffer.of(0)]);
    }
    return out;
  }

  async changes(shard: number, afterIndex: number, limit: number): Promise<Change[]> {
    this.checkOpen();
    const route: Route = { shard, mode: 'leader', write: false };
    const out: Change[] = [];
    const max = Math.min(limit, changesReadMax);
    let after = afterIndex;
    // A node cuts a page at a byte budget, between log entries: ask again after the last one.
    while (out.length < max) {
      const req: ClientRequest = {
        op: RequestOp.Changes,
        shard,
        afterIndex: after,
        limit: max - out.length,
      };
      const page = await this.call(route, Date.now() + this.timeoutMs, async (conn, s, ms) =>
        changesFromWire(await conn.request(req, ms), s),
      );
      out.push(...page.changes);
      if (!page.more) break;
      after = page.changes.at(-1)!.index;
    }
    return out;
  }

  appliedIndex(shard: number): Promise<number> {
    this.checkOpen();
    const route: Route = { shard, mode: 'leader', write: false };
    return this.call(route, Date.now() + this.timeoutMs, async (conn, s, ms) => {
      const index = await conn.request({ op: RequestOp.AppliedIndex, shard: s }, ms);
      if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0) {
        throw new FlotillaError('PROTOCOL', `node ${conn.nodeId} sent a malformed applied index`);
      }
      return index;
    });
  }

  defineCommand(): void {
    throw new FlotillaError(
      'INVALID_ARGUMENT',
      'a remote client cannot define commands: define them on every node (they run there); ' +
        'exec works from here',
    );
  }

  async status(): Promise<Record<string, unknown>> {
    this.checkOpen();
    const deadline = Date.now() + this.timeoutMs;
    const nodes = await Promise.all(
      this.map.nodes.map(async (n) => {
        try {
          const conn = await this.connectionTo(n.id, deadline);
          const status = await conn.request({ op: RequestOp.Status }, deadline - Date.now());
          return { id: n.id, address: this.nodes.get(n.id)?.address, status };
        } catch (err) {
          if (!isFlotillaError(err)) throw err;
          return { id: n.id, address: this.nodes.get(n.id)?.address, error: err.message };
        }
      }),
    );
    return { clusterId: this.clusterId, epoch: this.map.epoch, shards: this.ids.length, nodes };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sessions.close();
    this.changeListeners.clear();
    for (const slot of this.nodes.values()) {
      if (slot.rewatch !== undefined) clearTimeout(slot.rewatch);
      slot.conn?.close();
    }
  }

  // ---- Watch ---------------------------------------------------------------------------------

  onChanges(listener: (shards: ReadonlySet<number>) => void): () => void {
    this.checkOpen();
    this.changeListeners.add(listener);
    if (this.changeListeners.size === 1) {
      for (const n of this.map.nodes) this.scheduleWatch(this.slot(n.id), 0);
    }
    return () => {
      this.changeListeners.delete(listener);
      if (this.changeListeners.size === 0) this.unwatchAll();
    };
  }

  private emit(shards: ReadonlySet<number>): void {
    for (const listener of this.changeListeners) listener(shards);
  }

  /** Subscribes to node `slot`'s notifications after `delayMs` (default: its redial backoff). */
  private scheduleWatch(slot: NodeSlot, delayMs?: number): void {
    if (this.closed || this.changeListeners.size === 0 || slot.watching) return;
    if (slot.rewatch !== undefined) return;
    slot.rewatch = setTimeout(() => {
      slot.rewatch = undefined;
      this.watchNode(slot);
    }, delayMs ?? slot.backoff.next());
    slot.rewatch.unref();
  }

  private watchNode(slot: NodeSlot): void {
    if (this.closed || this.changeListeners.size === 0 || slot.watching) return;
    slot.watching = true;
    const deadline = Date.now() + this.timeoutMs;
    const subscribe = async () => {
      const conn = await this.connectionTo(slot.id, deadline);
      slot.unpush?.();
      slot.unpush = conn.onPush((shards) => this.emit(new Set(shards)));
      await conn.request({ op: RequestOp.Watch }, deadline - Date.now());
      // Changes applied before the subscription took effect were not pushed: look for them.
      this.emit(new Set(this.ids));
    };
    subscribe().catch((err: unknown) => {
      if (!isFlotillaError(err)) throw err;
      slot.watching = false;
      // The node is unreachable: its changes reach watchers through the other replicas'
      // notifications meanwhile, and the subscription is retried after a backoff.
      this.scheduleWatch(slot);
    });
  }

  private unwatchAll(): void {
    for (const slot of this.nodes.values()) {
      if (slot.rewatch !== undefined) clearTimeout(slot.rewatch);
      slot.rewatch = undefined;
      if (!slot.watching) continue;
      slot.watching = false;
      slot.unpush?.();
      slot.unpush = undefined;
      const conn = slot.conn;
      if (conn === undefined || conn.isClosed) continue;
      conn.request({ op: RequestOp.Unwatch }, this.timeoutMs).catch((err: unknown) => {
        // A connection that failed took its subscription with it: nothing is left to undo.
        if (!isFlotillaError(err)) throw err;
      });
    }
  }
}

function withBounds(start: Uint8Array | undefined, end: Uint8Array | undefined): ScanBounds {
  const bounds: ScanBounds = {};
  if (start !== undefined) bounds.start = start;
  if (end !== undefined) bounds.end = end;
  return bounds;
}

/** The key a command is routed by (a batch's keys share one shard). */
function commandKey(command: Command): Uint8Array | undefined {
  if (command.type === 'batch') return keyOf(command.ops[0]?.key);
  if (command.type === 'noop' || command.type === 'shardRange') return undefined;
  return keyOf(command.key);
}

function keyOf(key: string | Uint8Array | undefined): Uint8Array | undefined {
  return typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
}

function deadlineError(
  route: Route,
  maybeApplied: boolean,
  last: FlotillaError | undefined,
  timeoutMs: number,
): FlotillaError {
  const why = last === undefined ? '' : ` (last: ${last.code}: ${last.message})`;
  const details = last === undefined ? {} : { cause: last };
  if (route.write && maybeApplied) {
    return new FlotillaError(
      'TIMEOUT',
      `shard ${route.shard}: no answer within ${timeoutMs} ms; the write may or may not have ` +
        `been applied${why}`,
      { ...details, outcome: 'unknown', group: route.shard },
    );
  }
  return new FlotillaError(
    'TIMEOUT',
    `shard ${route.shard}: not served within ${timeoutMs} ms${route.write ? '; not applied' : ''}` +
      why,
    { ...details, outcome: 'not-applied', group: route.shard },
  );
}

function isAddress(text: string): boolean {
  try {
    parseAddress(text, 'client');
    return true;
  } catch {
    // Not "host:port": the node is reachable only through an endpoint that names it.
    return false;
  }
}

function checkEndpoints(endpoints: unknown): string[] {
  if (!Array.isArray(endpoints) || endpoints.length === 0) {
    throw new FlotillaError(
      'INVALID_ARGUMENT',
      'Flotilla.connect needs a non-empty array of "host:port" endpoints',
    );
  }
  if (endpoints.length > clientEndpointsMax) {
    throw new FlotillaError('INVALID_ARGUMENT', `at most ${clientEndpointsMax} endpoints`);
  }
  for (const e of endpoints) {
    try {
      parseAddress(e, 'endpoint');
    } catch (err) {
      throw new FlotillaError('INVALID_ARGUMENT', (err as Error).message);
    }
  }
  return [...new Set(endpoints as string[])];
}

/** A store reached over the network: the embedded store's API; see the module comment. */
export class RemoteStore extends StoreApi {
  private constructor(private readonly remote: RemoteAccess) {
    super(remote);
  }

  /** Connects to the cluster behind `endpoints` ("host:port" of the nodes' client ports). */
  static async connect(endpoints: string[], options: ConnectOptions): Promise<RemoteStore> {
    return new RemoteStore(await RemoteAccess.connect(endpoints, options));
  }

  /** The cluster id the nodes reported. */
  get clusterId(): string {
    return this.remote.clusterId;
  }

  /** The shard map as this client knows it, with the leaders it has learned. */
  shardMap(): ShardMap {
    this.checkOpen();
    return this.remote.shardMap();
  }
}
