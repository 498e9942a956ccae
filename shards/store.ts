/**
 * The embedded store: one node, many hash-partitioned shards, replication factor 1, no network —
 * through exactly the Raft, log and apply path a cluster uses.
 */
import { FlotillaError } from '../engine/errors.js';
import { NodeHost } from '../engine/host.js';
import { shardsMax } from '../engine/limits.js';
import { SegmentedLog } from '../engine/log/segmented-log.js';
import { openNodeDir } from '../engine/node-dir.js';
import { entropyRandom } from '../engine/random.js';
import { type Command, type CommandResult, encodeCommand } from '../engine/state/commands.js';
import type { UserCommand } from '../engine/state/exec.js';
import { KvState, type ScanEntry, type StoredValue } from '../engine/state/kv-state.js';
import { LocalNodeService, type NodeService, type ShardMap } from './node-service.js';
import { evenRanges, type HashRange, keyHash, rangeIndexOf } from './partition.js';
import { type ShardAccess, StoreApi } from './store-api.js';
import type { Consistency } from './types.js';

/** Options of `Flotilla.open`. */
export interface OpenOptions {
  /** The store's directory (created if missing). */
  dir: string;
  /** Shards to cut the hash space into when the store is created (default 16). */
  shards?: number;
}

/** The node id of an embedded store: it is the only voter of every shard. */
const embeddedNodeId = 1;

/** ShardAccess over the in-process node of an embedded store. */
class LocalAccess implements ShardAccess {
  private readonly starts: Uint32Array;
  private readonly ids: number[];
  readonly service: LocalNodeService;

  constructor(
    readonly host: NodeHost,
    readonly state: KvState,
    readonly log: SegmentedLog,
    readonly ranges: HashRange[],
    readonly dir: string,
  ) {
    this.starts = Uint32Array.from(ranges, (r) => r.start);
    this.ids = ranges.map((_, i) => i + 1);
    this.service = new LocalNodeService(host, state, () => this.shardMap());
  }

  private shardMap(): ShardMap {
    return {
      epoch: 1,
      nodes: [{ id: embeddedNodeId, client: '' }],
      shards: this.ranges.map((r, i) => ({
        id: i + 1,
        hashLow: r.start,
        hashHigh: r.end,
        replicas: [embeddedNodeId],
        leader: this.host.leaderOf(i + 1),
      })),
    };
  }

  shardIds(): number[] {
    return this.ids;
  }

  shardOf(key: Uint8Array): number {
    return rangeIndexOf(this.starts, keyHash(key)) + 1;
  }

  propose(shard: number, command: Command): Promise<CommandResult> {
    return this.host.propose(shard, encodeCommand(command));
  }

  read(shard: number, key: Uint8Array, consistency: Consistency): Promise<StoredValue | undefined> {
    return this.service.read(shard, key, consistency);
  }

  readNow(key: Uint8Array | string, consistency: Consistency): StoredValue | undefined | null {
    return this.state.getRouted(key, consistency === 'stale' ? this.routeStale : this.routeLocal);
  }

  /** The shard of a key when a linearizable (or lease) read of it may be served now, else -1. */
  private readonly routeLocal = (bytes: Uint8Array): number => {
    const shard = this.shardOf(bytes);
    return this.host.canReadLocally(shard) ? shard : -1;
  };

  /** The shard of a key for a stale read, which any hosted replica serves at once. */
  private readonly routeStale = (bytes: Uint8Array): number => {
    const shard = this.shardOf(bytes);
    this.host.checkHosted(shard);
    return shard;
  };

  scanPage(
    shard: number,
    bounds: { start?: Uint8Array; end?: Uint8Array },
    options: { limit: number; reverse: boolean; consistency: Consistency },
  ): Promise<ScanEntry[]> {
    return this.service.scan(shard, bounds, options);
  }

  changes(shard: number, afterIndex: number, limit: number) {
    return this.service.changes(shard, afterIndex, limit);
  }

  appliedIndex(shard: number): number {
    return this.service.appliedIndex(shard);
  }

  onChanges(listener: (shards: ReadonlySet<number>) => void): () => void {
    return this.service.onChanges(listener);
  }

  defineCommand(name: string, fn: UserCommand): void {
    this.state.defineCommand(name, fn);
  }

  async status(): Promise<Record<string, unknown>> {
    return { dir: this.dir, ...this.service.status(), log: this.log.stats() };
  }

  async close(): Promise<void> {
    await this.host.close();
    await this.state.flush();
    await this.log.close();
    await this.state.close();
  }

  /** Waits for every shard to elect this node and to own its hash range. */
  async initShards(): Promise<void> {
    const pending: Promise<unknown>[] = [];
    for (const [i, range] of this.ranges.entries()) {
      const shard = i + 1;
      const owned = this.state.hashRange(shard);
      if (owned.hashLow === range.start && owned.hashHigh === range.end) {
        pending.push(this.host.whenLocalReadsReady(shard));
        continue;
      }
      const command = encodeCommand({
        type: 'shardRange',
        hashLow: range.start,
        hashHigh: range.end,
      });
      pending.push(this.host.whenLeader(shard).then(() => this.host.propose(shard, command)));
    }
    await Promise.all(pending);
  }
}

/** An open embedded store: the store API over one in-process node. */
export class EmbeddedStore extends StoreApi {
  private constructor(private readonly local: LocalAccess) {
    super(local);
  }

  /** The number of shards the hash space is cut into. */
  get shardCount(): number {
    return this.local.ranges.length;
  }

  /** The store's directory. */
  get dir(): string {
    return this.local.dir;
  }

  /** The node-level service behind this store: what a client server serves to remote clients. */
  get nodeService(): NodeService {
    return this.local.service;
  }

  /** Opens (or creates) the store in `options.dir`. */
  static async open(options: OpenOptions): Promise<EmbeddedStore> {
    if (options === null || typeof options !== 'object' || typeof options.dir !== 'string') {
      throw new FlotillaError('INVALID_ARGUMENT', 'Flotilla.open needs { dir: string }');
    }
    const shards = options.shards;
    if (shards !== undefined && (!Number.isInteger(shards) || shards < 1 || shards > shardsMax)) {
      throw new FlotillaError(
        'INVALID_ARGUMENT',
        `shards must be an integer from 1 to ${shardsMax}`,
      );
    }
    const nodeDir = openNodeDir(options.dir, { nodeId: embeddedNodeId, shards });
    const log = await SegmentedLog.open({ dir: nodeDir.paths.logDir });
    let state: KvState;
    try {
      state = KvState.open({ dir: nodeDir.paths.stateDir, keyHash });
    } catch (err) {
      await log.close();
      throw err;
    }
    const host = new NodeHost({ nodeId: embeddedNodeId, log, state, random: entropyRandom() });
    const ranges = evenRanges(nodeDir.identity.shards);
    const local = new LocalAccess(host, state, log, ranges, options.dir);
    const store = new EmbeddedStore(local);
    try {
      for (let shard = 1; shard <= ranges.length; shard++) {
        host.addGroup({ group: shard, voters: [embeddedNodeId] });
      }
      await local.initShards();
      host.checkHealthy();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }
}
