/**
 * ClusterNode: one node of a Flotilla cluster, as `flotilla serve` runs it or an application
 * embeds it (`Flotilla.start`).
 *
 * It opens the node directory (refusing one of another cluster or node before anything is bound
 * or written), the shared segmented log, the LMDB state and a TCP transport on the node's Raft
 * address, and drives every shard whose initial replicas include this node with one NodeHost.
 * Placement comes from the config alone (initialPlacement), so every node agrees on it without
 * talking. The first replica of a shard is its preferred leader and campaigns at start; whichever
 * node leads a shard makes sure the shard owns its hash range (the `shardRange` command).
 *
 * `service` is the shard-level interface the client protocol serves; unless told otherwise the
 * node serves it to `Flotilla.connect` clients on its client address. Both ports are bound
 * before a new data directory is created, so a port in use fails the start with nothing written;
 * clients that connect while the node is still opening its log are turned away and retry.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FlotillaError } from '../engine/errors.js';
import { type LeaderChange, NodeHost, type NodeHostOptions } from '../engine/host.js';
import type { SnapshotStats, SnapshotTuning } from '../engine/host-snapshots.js';
import { tickMsDefault } from '../engine/limits.js';
import { SegmentedLog } from '../engine/log/segmented-log.js';
import { type NodeDirExpectation, nodeDirPaths, openNodeDir } from '../engine/node-dir.js';
import type { RaftRole } from '../engine/raft/ready.js';
import { entropyRandom } from '../engine/random.js';
import { encodeCommand } from '../engine/state/commands.js';
import { KvState } from '../engine/state/kv-state.js';
import {
  type TcpTlsOptions,
  TcpTransport,
  type TcpTuning,
} from '../engine/transport/tcp-transport.js';
import { defaultLogger, type Logger } from '../engine/transport/transport.js';
import {
  type ClientServer,
  type ClientServerTls,
  type ClientServerTuning,
  type ListeningClientServer,
  listenClients,
} from './client/server.js';
import {
  type ClusterConfig,
  fullAddress,
  initialPlacement,
  loadClusterConfig,
  loadSecret,
  type NodeConfig,
  parseAddress,
  secretBytesMin,
} from './cluster-config.js';
import { LocalNodeService, type NodeService, type ShardMap } from './node-service.js';
import { evenRanges, type HashRange, keyHash } from './partition.js';

/** Epoch of the shard map derived from the config (placement never changes yet). */
export const initialShardMapEpoch = 1;

/** Tunables of a cluster node; the defaults come from engine/limits.ts. */
export interface ClusterNodeTuning {
  tickMs?: number;
  checkpointMs?: number;
  compactionSlackEntries?: number;
  raft?: NodeHostOptions['raft'];
  snapshot?: Partial<SnapshotTuning>;
  transport?: Partial<TcpTuning>;
  /** Milliseconds between checks of the peer connections (default: one tick). */
  peerCheckMs?: number;
  /** Longest a request waits for its shard to elect a leader (default electionWaitMs). */
  electionWaitMs?: number;
}

/** Options of `ClusterNode.start` and `Flotilla.start`. */
export interface ClusterNodeOptions {
  /** The cluster description, or the path of its cluster.json. */
  config: ClusterConfig | string;
  /** Which node of the config this process is. */
  nodeId: number;
  /** The node's data directory (default `./data/node-<id>`). */
  dataDir?: string;
  /** The cluster secret; read from the config's secretFile when absent. */
  secret?: string | Uint8Array;
  /** Addresses to listen on instead of the config's ("host:port"), e.g. behind a NAT. */
  listen?: { raft?: string };
  /** TLS for node-to-node traffic. */
  tls?: TcpTlsOptions;
  /**
   * Serve `Flotilla.connect` clients on the node's client address (default true); false when
   * the application serves them itself (`startClientServer` over `node.service`).
   */
  serveClients?: boolean;
  /** TLS for client connections. */
  clientTls?: ClientServerTls;
  /** Tunables of the client server. */
  clientTuning?: Partial<ClientServerTuning>;
  logger?: Logger;
  tuning?: ClusterNodeTuning;
}

/** Where one shard stands on this node (for status pages and tests). */
export interface ShardStatus {
  shard: number;
  role: RaftRole;
  leader: number;
  term: number;
  commit: number;
  applied: number;
  logFirstIndex: number;
  logLastIndex: number;
}

/** Where node `id` keeps its data unless told otherwise: `./data/node-<id>`. */
export function defaultDataDir(id: number): string {
  return join('data', `node-${id}`);
}

function configError(message: string): FlotillaError {
  return new FlotillaError('CONFIG', message);
}

/** The node's entry in the config, or a CONFIG error naming the known ids. */
function nodeOf(config: ClusterConfig, nodeId: number): NodeConfig {
  const self = config.nodes.find((n) => n.id === nodeId);
  if (self !== undefined) return self;
  const ids = config.nodes.map((n) => n.id).join(', ');
  throw configError(`node ${nodeId} is not in the cluster config (its nodes are ${ids})`);
}

function secretOf(options: ClusterNodeOptions, config: ClusterConfig): Buffer {
  if (options.secret === undefined) return loadSecret(config);
  const secret =
    typeof options.secret === 'string' ? Buffer.from(options.secret) : Buffer.from(options.secret);
  if (secret.length < secretBytesMin) {
    throw configError(`the cluster secret must be at least ${secretBytesMin} bytes`);
  }
  return secret;
}

/** Binds the client port of the node (serving once attached); a port in use is CONFIG. */
async function listenNodeClients(
  options: ClusterNodeOptions,
  config: ClusterConfig,
  self: NodeConfig,
  secret: Buffer,
  logger: Logger,
): Promise<ListeningClientServer | undefined> {
  if (options.serveClients === false) return undefined;
  const address = fullAddress(self.client);
  const { host, port } = parseAddress(address, 'client', `node ${self.id}`);
  try {
    return await listenClients({
      host,
      port,
      clusterId: config.clusterId,
      secret,
      logger,
      ...(options.clientTls === undefined ? {} : { tls: options.clientTls }),
      ...(options.clientTuning === undefined ? {} : { tuning: options.clientTuning }),
    });
  } catch (err) {
    const cause = (err as { cause?: NodeJS.ErrnoException }).cause;
    if (cause?.code !== 'EADDRINUSE') throw err;
    throw new FlotillaError(
      'CONFIG',
      `node ${self.id} cannot serve clients on ${address}: the address is in use`,
      { cause: err },
    );
  }
}

/** Opens the transport on `address`, turning a failure to listen into a CONFIG error. */
async function listenRaft(
  nodeId: number,
  address: string,
  start: (host: string, port: number) => Promise<TcpTransport>,
): Promise<TcpTransport> {
  const { host, port } = parseAddress(address, 'raft', `node ${nodeId}`);
  try {
    return await start(host, port);
  } catch (err) {
    if (!(err instanceof FlotillaError) || err.code !== 'IO') throw err;
    const cause = err.cause as NodeJS.ErrnoException | undefined;
    const why = cause?.code === 'EADDRINUSE' ? 'the address is in use' : err.message;
    throw new FlotillaError(
      'CONFIG',
      `node ${nodeId} cannot listen for Raft traffic on ${address}: ${why}`,
      { cause: err },
    );
  }
}

/** One running node of a cluster; see the module comment. */
export class ClusterNode {
  /** The shard-level operations of this node, for the client protocol. */
  readonly service: NodeService;
  private readonly ranges: HashRange[];
  private readonly placement: Map<number, number[]>;
  private readonly leaderListeners = new Set<(change: LeaderChange) => void>();
  /** Shards whose `shardRange` proposal is in flight or waiting for a retry. */
  private readonly rangePending = new Set<number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly disconnects = new Map<number, number>();
  private readonly tickMs: number;
  private readonly transport: TcpTransport;
  private readonly host: NodeHost;
  private readonly state: KvState;
  private readonly log: SegmentedLog;
  private readonly clients: ClientServer | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly config: ClusterConfig,
    private readonly self: NodeConfig,
    /** The node's data directory. */
    readonly dataDir: string,
    /** The address the Raft transport listens on. */
    readonly raftAddress: string,
    parts: {
      transport: TcpTransport;
      host: NodeHost;
      state: KvState;
      log: SegmentedLog;
      clients: ClientServer | undefined;
    },
    private readonly logger: Logger,
    tuning: ClusterNodeTuning,
  ) {
    this.transport = parts.transport;
    this.host = parts.host;
    this.state = parts.state;
    this.log = parts.log;
    this.clients = parts.clients;
    this.ranges = evenRanges(config.shards);
    this.placement = initialPlacement(config);
    this.tickMs = tuning.tickMs ?? tickMsDefault;
    this.service = new LocalNodeService(
      this.host,
      this.state,
      () => this.shardMap(),
      tuning.electionWaitMs,
    );
    this.host.onLeaderChange((change) => this.leaderChanged(change));
    const check = setInterval(() => this.checkPeers(), tuning.peerCheckMs ?? this.tickMs);
    check.unref();
    this.timers.add(check);
  }

  /** Starts node `options.nodeId` of the cluster; see the module comment. */
  static async start(options: ClusterNodeOptions): Promise<ClusterNode> {
    const config =
      typeof options.config === 'string' ? loadClusterConfig(options.config) : options.config;
    const self = nodeOf(config, options.nodeId);
    const secret = secretOf(options, config);
    const dataDir = options.dataDir ?? defaultDataDir(self.id);
    const expect: NodeDirExpectation = {
      clusterId: config.clusterId,
      nodeId: self.id,
      shards: config.shards,
    };
    // A directory that exists is checked before the port is bound; a new one is created only
    // once the port is ours, so that a failed start writes nothing.
    const existing = existsSync(nodeDirPaths(dataDir).identityFile);
    if (existing) openNodeDir(dataDir, expect);
    const logger = options.logger ?? defaultLogger;
    const tuning = options.tuning ?? {};
    let host: NodeHost | undefined;
    const raftAddress = fullAddress(options.listen?.raft ?? self.raft);
    const transport = await listenRaft(self.id, raftAddress, (h, port) =>
      TcpTransport.start({
        nodeId: self.id,
        clusterId: config.clusterId,
        secret,
        listenHost: h,
        listenPort: port,
        tls: options.tls,
        logger,
        tuning: tuning.transport,
        handler: {
          onMessages: (_from, msgs) => host?.receive(msgs),
          onSnapshotChunk: (from, chunk) => host?.receiveSnapshotChunk(from, chunk),
        },
      }),
    );
    let clients: ListeningClientServer | undefined;
    try {
      clients = await listenNodeClients(options, config, self, secret, logger);
    } catch (err) {
      await transport.close();
      throw err;
    }
    let log: SegmentedLog | undefined;
    let state: KvState | undefined;
    try {
      // Peers may connect while the log recovers; what they send before the host exists is
      // dropped, and Raft sends it again.
      const peers = config.nodes.filter((n) => n.id !== self.id);
      transport.setPeers(peers.map((n) => ({ id: n.id, address: fullAddress(n.raft) })));
      const { paths } = openNodeDir(dataDir, expect);
      log = await SegmentedLog.open({ dir: paths.logDir });
      state = KvState.open({ dir: paths.stateDir, keyHash });
      host = new NodeHost({
        nodeId: self.id,
        log,
        state,
        random: entropyRandom(),
        transport,
        tickMs: tuning.tickMs,
        checkpointMs: tuning.checkpointMs,
        compactionSlackEntries: tuning.compactionSlackEntries,
        raft: tuning.raft,
        snapshot: tuning.snapshot,
        logger,
      });
      const parts = { transport, host, state, log, clients };
      const node = new ClusterNode(config, self, dataDir, raftAddress, parts, logger, tuning);
      node.hostShards();
      clients?.attach(node.service);
      return node;
    } catch (err) {
      await clients?.close();
      await host?.close();
      await transport.close();
      await log?.close();
      await state?.close();
      throw err;
    }
  }

  /** This node's id. */
  get nodeId(): number {
    return this.self.id;
  }

  /** The cluster this node belongs to. */
  get clusterId(): string {
    return this.config.clusterId;
  }

  /** The address clients reach this node at (from the config). */
  get clientAddress(): string {
    return fullAddress(this.self.client);
  }

  /** The shards hosted here, ascending. */
  shards(): number[] {
    return this.host.groupIds().sort((a, b) => a - b);
  }

  /** Where `shard` stands on this node. Throws STALE_EPOCH when it is not hosted here. */
  shardStatus(shard: number): ShardStatus {
    const s = this.host.status(shard);
    return {
      shard,
      role: s.role,
      leader: s.leader,
      term: s.term,
      commit: s.commit,
      applied: this.state.appliedIndex(shard),
      logFirstIndex: this.log.firstIndex(shard),
      logLastIndex: this.log.lastIndex(shard),
    };
  }

  /**
   * A checksum of the shard's content as applied here (keys, values, versions, sessions,
   * applied index and range): replicas that applied the same entries have equal checksums.
   */
  checksum(shard: number): number {
    this.host.checkHosted(shard);
    return this.state.checksum(shard);
  }

  /** Counters of snapshot streaming. */
  snapshotStats(): SnapshotStats {
    return this.host.snapshotStats();
  }

  /** Calls `listener` when this node learns a shard's new leader; returns the unsubscribe. */
  onLeaderChange(listener: (change: LeaderChange) => void): () => void {
    this.leaderListeners.add(listener);
    return () => {
      this.leaderListeners.delete(listener);
    };
  }

  /** Stops the node: pending requests fail with CLOSED, state and log are flushed and closed. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.clients?.close();
    await this.host.close();
    await this.transport.close();
    await this.state.flush();
    await this.log.close();
    await this.state.close();
  }

  /** Hosts every shard placed on this node; preferred leaders campaign at once. */
  private hostShards(): void {
    for (const [shard, replicas] of this.placement) {
      if (!replicas.includes(this.self.id)) continue;
      this.host.addGroup({ group: shard, voters: replicas });
    }
    for (const [shard, replicas] of this.placement) {
      if (replicas[0] === this.self.id) this.host.campaign(shard);
    }
  }

  private leaderChanged(change: LeaderChange): void {
    if (change.leader === this.self.id) this.ensureRange(change.group);
    for (const listener of [...this.leaderListeners]) listener(change);
  }

  /** As the leader of `shard`, makes sure the shard owns its hash range. */
  private ensureRange(shard: number): void {
    if (this.closing !== undefined || this.rangePending.has(shard)) return;
    const range = this.ranges[shard - 1]!;
    const owned = this.state.hashRange(shard);
    if (owned.hashLow === range.start && owned.hashHigh === range.end) return;
    this.rangePending.add(shard);
    const command = encodeCommand({
      type: 'shardRange',
      hashLow: range.start,
      hashHigh: range.end,
    });
    this.host.propose(shard, command).then(
      () => this.rangePending.delete(shard),
      (err: unknown) => {
        this.rangePending.delete(shard);
        if (this.closing !== undefined || !this.host.isLeader(shard)) return;
        // Still leading (a timeout, a busy group): try again after a tick.
        this.logger('info', 'setting a shard range failed; retrying', { shard, error: err });
        const retry = setTimeout(() => {
          this.timers.delete(retry);
          if (this.host.hosts(shard) && this.host.isLeader(shard)) this.ensureRange(shard);
        }, this.tickMs);
        this.timers.add(retry);
      },
    );
  }

  /** Tells the host about peers it cannot reach and connections that were lost. */
  private checkPeers(): void {
    if (this.closing !== undefined) return;
    for (const p of this.transport.stats().peers) {
      const before = this.disconnects.get(p.peer) ?? 0;
      this.disconnects.set(p.peer, p.disconnects);
      if (p.disconnects > before) this.host.reportConnectionLost(p.peer);
      else if (p.state !== 'connected') this.host.reportUnreachable(p.peer);
    }
  }

  /** The shard map as this node knows it: placement and ranges from the config, live leaders. */
  private shardMap(): ShardMap {
    const shards = [...this.placement].map(([id, replicas]) => {
      const range = this.ranges[id - 1]!;
      return {
        id,
        hashLow: range.start,
        hashHigh: range.end,
        replicas: [...replicas],
        leader: this.host.hosts(id) ? this.host.leaderOf(id) : 0,
      };
    });
    const nodes = this.config.nodes.map((n) => ({ id: n.id, client: fullAddress(n.client) }));
    return { epoch: initialShardMapEpoch, shards, nodes };
  }
}
