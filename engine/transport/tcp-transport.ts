/**
 * The TCP transport: one authenticated connection per node pair and lane, shared by every group.
 *
 * Who dials: the node with the lower id dials the higher one, for both lanes, as soon as the peer
 * is known, and redials with jittered exponential backoff whenever a connection is lost; the
 * higher id only accepts. A deterministic rule needs no duplicate resolution. If an authenticated
 * connection arrives for a (peer, lane) that already has one (the peer restarted while the old
 * connection is half-open here), the new one replaces the old.
 *
 * Lanes: Raft messages and snapshot chunks use separate connections. A snapshot transfer can then
 * fill its own socket buffers without putting megabytes in front of a heartbeat; it is also paced
 * (at most `snapshotLaneBytesPerTurn` per event-loop turn, and nothing while its socket waits for
 * 'drain'), so it cannot monopolise the event loop either.
 *
 * Batching: `send` only queues. The flush runs once per event-loop turn in a setImmediate
 * callback, i.e. after every I/O callback of the current poll phase. Responses produced for all
 * the frames that arrived in one loop iteration therefore leave as one frame per peer. A
 * microtask flush would run after each callback and split those batches; the cost of
 * setImmediate is that a send made inside another setImmediate callback leaves one iteration
 * later, which does not wait for any timer.
 *
 * Backpressure: when `socket.write` returns false the lane stops writing until 'drain'; the
 * bounded queues keep filling and then refuse, which Raft absorbs by retrying.
 */
import {
  createServer as createNetServer,
  connect as netConnect,
  type Server,
  type Socket,
} from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  type ConnectionOptions,
  createServer as createTlsServer,
  connect as tlsConnect,
} from 'node:tls';
import { ErrorCode, FlotillaError } from '../errors.js';
import {
  clusterIdBytesMax,
  clusterSecretBytesMin,
  handshakeTimeoutMs,
  idleTimeoutMs,
  keepaliveIntervalMs,
  pendingHandshakesMax,
  reconnectBackoffMaxMs,
  reconnectBackoffMinMs,
} from '../limits.js';
import type { Message, NodeId, RandomSource } from '../raft/types.js';
import { entropyRandom } from '../random.js';
import { Backoff } from './backoff.js';
import { type Hello, Lane } from './handshake.js';
import { PeerOutbox } from './outbox.js';
import { type CloseKind, type LinkHost, TcpLink } from './tcp-link.js';
import {
  defaultLogger,
  defaultQueueTuning,
  type LinkState,
  type Logger,
  type LogLevel,
  type PeerInfo,
  type QueueTuning,
  type SnapshotChunk,
  type Transport,
  type TransportHandler,
  type TransportStats,
} from './transport.js';

/** Tunables of the TCP transport (defaults from engine/limits.ts). */
export interface TcpTuning extends QueueTuning {
  handshakeTimeoutMs: number;
  keepaliveIntervalMs: number;
  idleTimeoutMs: number;
  reconnectBackoffMinMs: number;
  reconnectBackoffMaxMs: number;
  pendingHandshakesMax: number;
}

/** The default TCP tunables. */
export const defaultTcpTuning: Readonly<TcpTuning> = {
  ...defaultQueueTuning,
  handshakeTimeoutMs,
  keepaliveIntervalMs,
  idleTimeoutMs,
  reconnectBackoffMinMs,
  reconnectBackoffMaxMs,
  pendingHandshakesMax,
};

/** TLS material. Both sides present a certificate and verify the other's against `ca`. */
export interface TcpTlsOptions {
  key: string | Buffer;
  cert: string | Buffer;
  ca: string | Buffer | Array<string | Buffer>;
  /** The dialer's check of the acceptor's certificate; defaults to Node's hostname check. */
  checkServerIdentity?: ConnectionOptions['checkServerIdentity'];
}

/** How to start a TCP transport. */
export interface TcpTransportOptions {
  nodeId: NodeId;
  clusterId: string;
  /** The shared cluster secret (at least `clusterSecretBytesMin` bytes). */
  secret: string | Uint8Array;
  listenHost: string;
  /** 0 picks a free port (see `port`). */
  listenPort: number;
  handler: TransportHandler;
  tls?: TcpTlsOptions;
  logger?: Logger;
  /** Reconnect jitter; seeded from OS entropy by default. */
  random?: RandomSource;
  tuning?: Partial<TcpTuning>;
}

/** One lane's connection slot to a peer. */
interface LaneSlot {
  /** The authenticated connection, if any. */
  open: TcpLink | null;
  /** Dialer side: the connection being set up. */
  dialing: TcpLink | null;
  redial: NodeJS.Timeout | null;
  backoff: Backoff;
  /** Consecutive failed dials, to log the first one loudly and the rest quietly. */
  failures: number;
}

interface PeerState {
  id: NodeId;
  host: string;
  port: number;
  outbox: PeerOutbox;
  lanes: [LaneSlot, LaneSlot];
}

function configError(message: string): FlotillaError {
  return new FlotillaError(ErrorCode.CONFIG, message);
}

/** Parses `host:port` (`[v6]:port` for IPv6). */
export function parseAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const rawHost = colon > 0 ? address.slice(0, colon) : '';
  const host = rawHost.startsWith('[') && rawHost.endsWith(']') ? rawHost.slice(1, -1) : rawHost;
  const port = Number(address.slice(colon + 1));
  if (host === '' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw configError(`peer address "${address}" is not host:port`);
  }
  return { host, port };
}

function checkOptions(o: TcpTransportOptions): { clusterId: Buffer; secret: Buffer } {
  if (!Number.isInteger(o.nodeId) || o.nodeId < 1 || o.nodeId > 0xffffffff) {
    throw configError(`node id ${o.nodeId} is not a u32 > 0`);
  }
  const clusterId = Buffer.from(o.clusterId, 'utf8');
  if (clusterId.length === 0 || clusterId.length > clusterIdBytesMax) {
    throw configError(`cluster id must be 1..${clusterIdBytesMax} bytes of UTF-8`);
  }
  const secret =
    typeof o.secret === 'string' ? Buffer.from(o.secret, 'utf8') : Buffer.from(o.secret);
  if (secret.length < clusterSecretBytesMin) {
    throw configError(`cluster secret must be at least ${clusterSecretBytesMin} bytes`);
  }
  checkTuning({ ...defaultTcpTuning, ...o.tuning });
  return { clusterId, secret };
}

function checkTuning(t: TcpTuning): void {
  for (const [name, value] of Object.entries(t)) {
    if (!Number.isFinite(value) || value <= 0) throw configError(`${name} must be positive`);
  }
  if (t.idleTimeoutMs < 2 * t.keepaliveIntervalMs) {
    throw configError('idleTimeoutMs must be at least twice keepaliveIntervalMs');
  }
  if (t.reconnectBackoffMinMs > t.reconnectBackoffMaxMs) {
    throw configError('reconnectBackoffMinMs must not exceed reconnectBackoffMaxMs');
  }
}

/** The TCP implementation of {@link Transport}. */
export class TcpTransport implements Transport {
  readonly nodeId: NodeId;
  private readonly tuning: TcpTuning;
  private readonly handler: TransportHandler;
  private readonly log: Logger;
  private readonly random: RandomSource;
  private readonly tls: TcpTlsOptions | undefined;
  private readonly server: Server;
  private readonly linkHost: LinkHost;
  private readonly peers = new Map<NodeId, PeerState>();
  /** Accepted connections still in the handshake. Bounded by `pendingHandshakesMax`. */
  private readonly pending = new Set<TcpLink>();
  /** Every accepted socket, so close() can end those still in a TLS handshake too. */
  private readonly sockets = new Set<Socket>();
  private readonly dirty = new Set<PeerState>();
  private flushScheduled = false;
  private readonly timer: NodeJS.Timeout;
  private closing: Promise<void> | null = null;
  private droppedNoPeer = 0;
  private protocolErrors = 0;
  private authFailures = 0;

  private constructor(options: TcpTransportOptions, server: Server) {
    const { clusterId, secret } = checkOptions(options);
    this.nodeId = options.nodeId;
    this.tuning = { ...defaultTcpTuning, ...options.tuning };
    this.handler = options.handler;
    this.log = options.logger ?? defaultLogger;
    this.random = options.random ?? entropyRandom();
    this.tls = options.tls;
    this.server = server;
    this.linkHost = this.makeLinkHost(clusterId, secret);
    server.on('error', (err) => this.log('error', 'transport server error', { error: err }));
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    const t = this.tuning;
    const period = Math.max(5, Math.min(t.keepaliveIntervalMs, t.handshakeTimeoutMs) / 4);
    this.timer = setInterval(() => this.tick(), period);
    this.timer.unref();
  }

  /** Starts listening; resolves once the port is bound. */
  static async start(options: TcpTransportOptions): Promise<TcpTransport> {
    checkOptions(options);
    let transport: TcpTransport | null = null;
    const onSocket = (socket: Socket) => {
      if (transport === null) socket.destroy();
      else transport.accept(socket);
    };
    const server = options.tls
      ? createTlsServer(
          {
            key: options.tls.key,
            cert: options.tls.cert,
            ca: options.tls.ca,
            requestCert: true,
            rejectUnauthorized: true,
            handshakeTimeout: options.tuning?.handshakeTimeoutMs ?? handshakeTimeoutMs,
          },
          onSocket,
        )
      : createNetServer(onSocket);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(new FlotillaError(ErrorCode.IO, `cannot listen: ${err.message}`, { cause: err })),
      );
      server.listen(options.listenPort, options.listenHost, () => resolve());
    });
    transport = new TcpTransport(options, server);
    const created = transport;
    server.on('tlsClientError', (err: Error, socket: Socket) => {
      created.authFailures++;
      created.log('warn', 'TLS handshake failed', { remote: socket.remoteAddress, error: err });
    });
    return transport;
  }

  /** The bound listening port. */
  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address !== null ? address.port : 0;
  }

  /** Replaces the peer set. Throws CONFIG for a malformed address, duplicate or self. */
  setPeers(peers: readonly PeerInfo[]): void {
    if (this.closing !== null) return;
    const wanted = new Map<NodeId, { host: string; port: number }>();
    for (const p of peers) {
      if (!Number.isInteger(p.id) || p.id < 1 || p.id > 0xffffffff || p.id === this.nodeId) {
        throw configError(`peer id ${p.id} is not another node's id`);
      }
      if (wanted.has(p.id)) throw configError(`peer ${p.id} listed twice`);
      wanted.set(p.id, parseAddress(p.address));
    }
    for (const [id, state] of this.peers) if (!wanted.has(id)) this.removePeer(state);
    for (const [id, address] of wanted) {
      const state = this.peers.get(id);
      if (state === undefined) this.addPeer(id, address.host, address.port);
      else if (state.host !== address.host || state.port !== address.port) {
        state.host = address.host;
        state.port = address.port;
        for (const slot of state.lanes) {
          slot.dialing?.close('local', 'peer address changed');
          slot.open?.close('local', 'peer address changed');
        }
      }
    }
  }

  /** Queues `msgs` for `to`; false (dropped, counted) when `to` is unknown or its queue full. */
  send(to: NodeId, msgs: Message[]): boolean {
    if (this.closing !== null) return false;
    const peer = this.peers.get(to);
    if (peer === undefined) {
      this.droppedNoPeer += msgs.length;
      return false;
    }
    if (msgs.length === 0) return true;
    const refusal = peer.outbox.offerMessages(this.nodeId, msgs);
    if (refusal === 'oversized') {
      this.log('warn', 'message larger than a frame dropped', { peer: to, messages: msgs.length });
    }
    if (refusal !== null) return false;
    if (peer.lanes[Lane.Raft].open !== null) this.scheduleFlush(peer);
    return true;
  }

  /** Queues a chunk on the snapshot lane; false (dropped, counted) when it cannot. */
  sendSnapshotChunk(to: NodeId, chunk: SnapshotChunk): boolean {
    if (this.closing !== null) return false;
    const peer = this.peers.get(to);
    if (peer === undefined) {
      this.droppedNoPeer++;
      return false;
    }
    if (!peer.outbox.offerChunk(this.nodeId, chunk)) return false;
    if (peer.lanes[Lane.Snapshot].open !== null) this.scheduleFlush(peer);
    return true;
  }

  /** Counters and connection state per peer. */
  stats(): TransportStats {
    const peers = [...this.peers.values()].map((p) =>
      p.outbox.stats(this.laneState(p.lanes[Lane.Raft]), this.laneState(p.lanes[Lane.Snapshot])),
    );
    return {
      peers,
      droppedNoPeer: this.droppedNoPeer,
      protocolErrors: this.protocolErrors,
      authFailures: this.authFailures,
    };
  }

  /** Closes the listener and every connection; drops and counts what was queued. */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    clearInterval(this.timer);
    const peers = [...this.peers.values()];
    this.closing = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const peer of peers) {
      peer.outbox.dropAll();
      for (const slot of peer.lanes) this.closeSlot(slot, 'transport closed');
    }
    for (const link of [...this.pending]) link.close('local', 'transport closed');
    for (const socket of this.sockets) socket.destroy();
    return this.closing;
  }

  // ---- Peers and dialing -----------------------------------------------------------------------

  private newSlot(): LaneSlot {
    const t = this.tuning;
    const backoff = new Backoff(t.reconnectBackoffMinMs, t.reconnectBackoffMaxMs, this.random);
    return { open: null, dialing: null, redial: null, backoff, failures: 0 };
  }

  private addPeer(id: NodeId, host: string, port: number): void {
    const outbox = new PeerOutbox(id, this.tuning);
    const peer: PeerState = { id, host, port, outbox, lanes: [this.newSlot(), this.newSlot()] };
    this.peers.set(id, peer);
    if (this.dials(id)) {
      this.dial(peer, Lane.Raft);
      this.dial(peer, Lane.Snapshot);
    }
  }

  private removePeer(peer: PeerState): void {
    // Deleted first, so that the closes below do not schedule a redial.
    this.peers.delete(peer.id);
    this.dirty.delete(peer);
    const dropped = peer.outbox.dropAll();
    this.droppedNoPeer += dropped.messages + dropped.chunks;
    for (const slot of peer.lanes) this.closeSlot(slot, 'peer removed');
  }

  private closeSlot(slot: LaneSlot, reason: string): void {
    if (slot.redial !== null) clearTimeout(slot.redial);
    slot.redial = null;
    slot.dialing?.close('local', reason);
    slot.open?.close('local', reason);
  }

  /** The lower id dials. */
  private dials(peer: NodeId): boolean {
    return this.nodeId < peer;
  }

  private dial(peer: PeerState, lane: Lane): void {
    const slot = peer.lanes[lane];
    if (this.closing !== null || slot.dialing !== null || slot.open !== null) return;
    const tls = this.tls;
    const socket = tls
      ? tlsConnect({
          host: peer.host,
          port: peer.port,
          key: tls.key,
          cert: tls.cert,
          ca: tls.ca,
          ...(tls.checkServerIdentity ? { checkServerIdentity: tls.checkServerIdentity } : {}),
        })
      : netConnect({ host: peer.host, port: peer.port });
    const event = tls ? 'secureConnect' : 'connect';
    const remote = `${peer.host}:${peer.port}`;
    const now = () => performance.now();
    slot.dialing = TcpLink.dial(socket, this.linkHost, peer.id, lane, event, now, remote);
  }

  private scheduleRedial(peer: PeerState, lane: Lane): void {
    const slot = peer.lanes[lane];
    if (slot.redial !== null || this.closing !== null) return;
    slot.redial = setTimeout(() => {
      slot.redial = null;
      if (this.peers.get(peer.id) === peer) this.dial(peer, lane);
    }, slot.backoff.next());
    slot.redial.unref();
  }

  private accept(socket: Socket): void {
    if (this.closing !== null) {
      socket.destroy();
      return;
    }
    if (this.pending.size >= this.tuning.pendingHandshakesMax) {
      this.log('warn', 'too many unauthenticated connections; refusing one', {
        remote: `${socket.remoteAddress}:${socket.remotePort}`,
      });
      socket.destroy();
      return;
    }
    this.pending.add(TcpLink.accept(socket, this.linkHost, () => performance.now()));
  }

  private laneState(slot: LaneSlot): LinkState {
    if (slot.open !== null) return 'connected';
    if (slot.dialing !== null || slot.redial !== null) return 'connecting';
    return 'disconnected';
  }

  // ---- Link events -----------------------------------------------------------------------------

  private makeLinkHost(clusterId: Buffer, secret: Buffer): LinkHost {
    return {
      nodeId: this.nodeId,
      clusterId,
      secret,
      admit: (hello) => this.admit(hello),
      established: (link) => this.established(link),
      raftFrame: (link, frame, bytes) => {
        const peer = this.peers.get(link.peer);
        if (peer === undefined || this.closing !== null) return;
        const c = peer.outbox.counters;
        c.receivedFrames++;
        c.receivedBytes += bytes;
        c.receivedMessages += frame.messages.length;
        this.handler.onMessages(peer.id, frame.messages);
      },
      chunk: (link, chunk, bytes) => {
        const peer = this.peers.get(link.peer);
        if (peer === undefined || this.closing !== null) return;
        peer.outbox.counters.receivedChunks++;
        peer.outbox.counters.receivedBytes += bytes;
        this.handler.onSnapshotChunk(peer.id, chunk);
      },
      drained: (link) => {
        const peer = this.peers.get(link.peer);
        if (peer !== undefined) this.scheduleFlush(peer);
      },
      closed: (link, kind, reason) => this.linkClosed(link, kind, reason),
    };
  }

  private admit(hello: Hello): string | null {
    if (this.closing !== null) return 'transport closing';
    if (!this.peers.has(hello.dialer)) return `node ${hello.dialer} is not a peer of this node`;
    if (this.dials(hello.dialer)) {
      return `node ${hello.dialer} dialed node ${this.nodeId}, but the lower id dials`;
    }
    return null;
  }

  private established(link: TcpLink): void {
    this.pending.delete(link);
    const peer = this.peers.get(link.peer);
    if (peer === undefined || this.closing !== null) {
      link.close('local', 'peer removed during the handshake');
      return;
    }
    const slot = peer.lanes[link.lane];
    if (slot.dialing === link) slot.dialing = null;
    const previous = slot.open;
    slot.open = link;
    slot.backoff.reset();
    slot.failures = 0;
    peer.outbox.counters.connects++;
    previous?.close('replaced', 'replaced by a newer connection');
    this.log('info', 'peer connected', { peer: peer.id, lane: link.lane, remote: link.remote });
    this.scheduleFlush(peer);
  }

  private linkClosed(link: TcpLink, kind: CloseKind, reason: string): void {
    this.pending.delete(link);
    if (kind === 'auth') this.authFailures++;
    if (kind === 'protocol') this.protocolErrors++;
    const peer = link.peer === 0 ? undefined : this.peers.get(link.peer);
    const slot = peer?.lanes[link.lane];
    let level: LogLevel = kind === 'local' ? 'debug' : kind === 'replaced' ? 'info' : 'warn';
    if (slot !== undefined && peer !== undefined) {
      // An accepted connection that never authenticated only claimed to be this peer: it counts
      // in authFailures or protocolErrors, never against the peer (anyone could claim it).
      const ours = slot.open === link || slot.dialing === link;
      if (slot.open === link) slot.open = null;
      if (slot.dialing === link) {
        slot.dialing = null;
        slot.failures++;
        if (kind === 'io' && slot.failures > 1) level = 'debug';
      }
      if (ours && kind !== 'replaced') peer.outbox.counters.disconnects++;
    }
    this.log(level, `connection closed: ${reason}`, {
      peer: link.peer,
      lane: link.lane,
      role: link.role,
      kind,
      remote: link.remote,
    });
    const idle = slot !== undefined && slot.open === null && slot.dialing === null;
    if (peer !== undefined && idle && this.dials(peer.id)) this.scheduleRedial(peer, link.lane);
  }

  // ---- Flushing and liveness -------------------------------------------------------------------

  private scheduleFlush(peer: PeerState): void {
    this.dirty.add(peer);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushDirty();
    });
  }

  /**
   * Writes what is queued for every peer now instead of in the flush already scheduled. The
   * host calls it at the end of its turn (a setImmediate callback too): the turn's messages then
   * share a frame with those queued before it, instead of leaving one loop iteration later in
   * another frame.
   */
  flush(): void {
    if (this.dirty.size > 0) this.flushDirty();
  }

  private flushDirty(): void {
    const peers = [...this.dirty];
    this.dirty.clear();
    for (const peer of peers) {
      if (this.peers.get(peer.id) !== peer) continue;
      this.flushRaft(peer);
      this.flushSnapshots(peer);
    }
  }

  private flushRaft(peer: PeerState): void {
    const link = peer.lanes[Lane.Raft].open;
    if (link === null) return;
    while (!link.needDrain && peer.outbox.hasMessages()) {
      link.write(peer.outbox.takeRaftFrame(this.nodeId));
    }
  }

  private flushSnapshots(peer: PeerState): void {
    const link = peer.lanes[Lane.Snapshot].open;
    if (link === null) return;
    let budget = this.tuning.snapshotLaneBytesPerTurn;
    while (!link.needDrain && budget > 0 && peer.outbox.hasChunks()) {
      const frame = peer.outbox.takeChunkFrame();
      budget -= frame.length;
      link.write(frame);
    }
    // Out of budget with the socket still willing: continue next turn ('drain' covers the rest).
    if (!link.needDrain && peer.outbox.hasChunks()) this.scheduleFlush(peer);
  }

  private tick(): void {
    const now = performance.now();
    const t = this.tuning;
    const handshaking = [...this.pending];
    for (const peer of this.peers.values()) {
      for (const slot of peer.lanes) {
        if (slot.dialing !== null) handshaking.push(slot.dialing);
        const link = slot.open;
        if (link === null) continue;
        if (now - link.lastReceiveMs >= t.idleTimeoutMs) {
          link.close('idle', `no frame for ${t.idleTimeoutMs} ms`);
        } else if (now - link.lastSendMs >= t.keepaliveIntervalMs && !link.needDrain) {
          link.ping();
        }
      }
    }
    for (const link of handshaking) {
      if (now - link.openedMs >= t.handshakeTimeoutMs) {
        link.close('timeout', `handshake not done within ${t.handshakeTimeoutMs} ms`);
      }
    }
  }
}
