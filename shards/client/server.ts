/**
 * The client server of a node: accepts `Flotilla.connect` clients over TCP (or TLS),
 * authenticates them (protocol.ts), and serves their requests from a NodeService.
 *
 * Every resource a client can make the node hold is bounded: connections
 * (`clientConnectionsMax`, more are closed on arrival), requests in flight per connection
 * (`clientRequestsInFlightMax`, more get BUSY), and unsent response bytes: once a connection's
 * socket holds more than `clientSendBufferBytesMax`, the node stops reading that connection's
 * requests until the client has read its answers, so a slow reader slows only itself. Change
 * notifications for watchers are coalesced into a set of shard ids per connection (at most one
 * per shard) and flushed when the socket has room. A connection that does not finish the
 * handshake in time, or that sends nothing for `clientIdleTimeoutMs`, is closed. A malformed or
 * unauthenticated frame closes that connection only, with a log line.
 */
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { FlotillaError, isFlotillaError } from '../../engine/errors.js';
import {
  changesReadMax,
  clientConnectionsMax,
  clientFrameBytesMax,
  clientHandshakeFrameBytesMax,
  clientHandshakeTimeoutMs,
  clientIdleTimeoutMs,
  clientKeepaliveMs,
  clientProtocolVersion,
  clientRequestsInFlightMax,
  clientResponseBytesTarget,
  clientSendBufferBytesMax,
  clusterIdBytesMax,
  clusterSecretBytesMin,
} from '../../engine/limits.js';
import { type CommandResult, encodeResult } from '../../engine/state/commands.js';
import { FrameReader } from '../../engine/transport/frame-reader.js';
import { defaultLogger, type Logger } from '../../engine/transport/transport.js';
import { parseAddress } from '../cluster-config.js';
import type { NodeService } from '../node-service.js';
import { scanPageEntries } from '../store-api.js';
import { FrameBatcher } from './frame-batcher.js';
import {
  asWireError,
  type ClientFrame,
  ClientFrameKind,
  type ClientRequest,
  type ClientTranscript,
  changesBody,
  clientHandshakeMac,
  decodeBatchItems,
  decodeClientFrame,
  decodeClientHello,
  decodeClientProof,
  decodeRequest,
  encodeClientFrame,
  encodeClientWelcome,
  encodeErrorBody,
  encodeErrorFrame,
  macMatches,
  newClientNonce,
  PushType,
  RequestOp,
  readResultBody,
  scanPageBody,
  shardMapToWire,
  wirePackr,
} from './protocol.js';

/** TLS material of a client server; with `ca`, clients must present a certificate it signed. */
export interface ClientServerTls {
  key: string | Buffer;
  cert: string | Buffer;
  ca?: string | Buffer | Array<string | Buffer>;
}

/** Tunables of a client server (tests shorten the timers). */
export interface ClientServerTuning {
  connectionsMax: number;
  requestsInFlightMax: number;
  sendBufferBytesMax: number;
  responseBytesTarget: number;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
}

/** The defaults of every tunable, from engine/limits.ts. */
export const defaultClientServerTuning: ClientServerTuning = {
  connectionsMax: clientConnectionsMax,
  requestsInFlightMax: clientRequestsInFlightMax,
  sendBufferBytesMax: clientSendBufferBytesMax,
  responseBytesTarget: clientResponseBytesTarget,
  handshakeTimeoutMs: clientHandshakeTimeoutMs,
  idleTimeoutMs: clientIdleTimeoutMs,
};

/**
 * Faults a test injects into a real server, to reach outcomes a healthy network rarely
 * produces. `afterPropose` runs once a proposal was applied, before its answer is sent: it may
 * let the answer go (undefined), replace it with an error, or close the connection instead.
 */
export interface ClientServerFaults {
  afterPropose?(shard: number, result: CommandResult): FlotillaError | 'close' | undefined;
}

/** How to listen for clients before the service to serve exists (see listenClients). */
export type ClientListenOptions = Omit<ClientServerOptions, 'service'>;

/** How to start a client server. */
export interface ClientServerOptions {
  service: NodeService;
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** 0 picks a free port (see `address`). */
  port: number;
  clusterId: string;
  /** The cluster secret (at least `clusterSecretBytesMin` bytes). */
  secret: string | Uint8Array;
  tls?: ClientServerTls;
  logger?: Logger;
  tuning?: Partial<ClientServerTuning>;
  faults?: ClientServerFaults;
}

/** A running client server. */
export interface ClientServer {
  /** Where it listens (the real port when 0 was asked for). */
  readonly address: { host: string; port: number };
  /** Client connections open now (authenticated or not). */
  connectionCount(): number;
  /** Stops listening and closes every connection; answers not yet sent are dropped. */
  close(): Promise<void>;
}

/** What a connection needs from its server. */
interface ConnectionHost {
  readonly service: NodeService;
  readonly clusterId: Uint8Array;
  readonly secret: Uint8Array;
  readonly tuning: ClientServerTuning;
  readonly logger: Logger;
  readonly faults: ClientServerFaults | undefined;
  watch(conn: ServerConnection, on: boolean): void;
  closed(conn: ServerConnection): void;
}

type Phase = 'await-hello' | 'await-proof' | 'open' | 'closed';

/** Requests of one connection started in one event-loop turn before its answers are written. */
const requestsPerTurnMax = 64;

/** How long a refused connection may take to flush its refusal before it is destroyed. */
const flushLingerMs = 1_000;

const pageLimits = { scanEntriesMax: scanPageEntries, changesMax: changesReadMax };

const emptyBody = new Uint8Array(0);

/** One client connection, from the node's side. */
class ServerConnection {
  readonly openedMs = Date.now();
  lastReceiveMs = this.openedMs;
  phase: Phase = 'await-hello';
  private readonly reader = new FrameReader(clientHandshakeFrameBytesMax);
  private readonly writer: FrameBatcher;
  private readonly nonce = newClientNonce();
  private transcript: ClientTranscript | undefined;
  private inFlight = 0;
  /** Set while the socket holds more unsent bytes than allowed: requests wait unread. */
  private blocked = false;
  /** Shards with changes not yet pushed (watching connections only); at most one per shard. */
  private readonly changed = new Set<number>();
  private pushScheduled = false;
  private continueScheduled = false;
  watching = false;
  readonly remote: string;

  constructor(
    private readonly socket: Socket,
    private readonly host: ConnectionHost,
  ) {
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.writer = new FrameBatcher(socket, () => this.checkSendBuffer());
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('error', (err) => this.close(`socket error: ${err.message}`));
    socket.on('close', () => this.close('closed by the client'));
  }

  /**
   * Closes the connection (idempotent); in-flight answers are dropped. With `flush`, what was
   * already written still goes out before the socket ends (a refusal the client should read).
   */
  close(reason: string, level: 'debug' | 'warn' = 'debug', flush = false): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    if (flush) {
      this.writer.flush();
      this.socket.end();
      setTimeout(() => this.socket.destroy(), flushLingerMs).unref();
    } else {
      this.socket.destroy();
    }
    this.host.logger(level, 'client connection closed', { remote: this.remote, reason });
    this.host.closed(this);
  }

  /** Adds shards to push to a watching connection. */
  notify(shards: ReadonlySet<number>): void {
    if (!this.watching || this.phase !== 'open') return;
    for (const s of shards) this.changed.add(s);
    this.schedulePush();
  }

  private schedulePush(): void {
    if (this.pushScheduled || this.changed.size === 0) return;
    this.pushScheduled = true;
    setImmediate(() => {
      this.pushScheduled = false;
      // A full socket keeps the set until 'drain': it cannot grow beyond one id per shard.
      if (this.blocked || !this.watching || this.phase !== 'open') return;
      const shards = [...this.changed];
      this.changed.clear();
      this.send(ClientFrameKind.Push, 0, wirePackr.pack([PushType.ShardsChanged, shards]));
    });
  }

  /** Queues a frame for the end of this turn (see FrameBatcher). */
  private send(kind: ClientFrameKind, requestId: number, body: Uint8Array): void {
    if (this.phase === 'closed') return;
    this.writer.add(kind, requestId, body);
    if (this.writer.pendingBytes > this.host.tuning.sendBufferBytesMax) this.blocked = true;
  }

  /** Writes a whole frame now, after anything queued (handshake frames, a refusal). */
  private sendFrame(frame: Uint8Array): void {
    if (this.phase === 'closed') return;
    this.writer.flush();
    this.socket.write(frame);
  }

  /**
   * After a turn's write: a connection blocked only by answers that were still queued here
   * resumes now, since the socket will not report a 'drain' for bytes it never refused.
   */
  private checkSendBuffer(): void {
    if (this.blocked && this.socket.writableLength <= this.host.tuning.sendBufferBytesMax) {
      if (!this.socket.writableNeedDrain) this.onDrain();
    }
  }

  private onDrain(): void {
    if (!this.blocked) return;
    this.blocked = false;
    this.socket.resume();
    this.schedulePush();
    this.processFrames();
  }

  private onData(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    this.lastReceiveMs = Date.now();
    this.reader.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    this.processFrames();
  }

  private processFrames(): void {
    let started = 0;
    while (this.phase !== 'closed') {
      if (this.blocked) {
        // Stop reading until the client drains its answers (see the module comment).
        this.socket.pause();
        return;
      }
      if (started >= requestsPerTurnMax) {
        // Let the answers of this burst be written before starting more, so that the send
        // buffer check above sees them.
        this.socket.pause();
        if (!this.continueScheduled) {
          this.continueScheduled = true;
          setImmediate(() => {
            this.continueScheduled = false;
            if (this.blocked || this.phase === 'closed') return;
            this.socket.resume();
            this.processFrames();
          });
        }
        return;
      }
      let frame: ClientFrame;
      try {
        const bytes = this.reader.next();
        if (bytes === null) return;
        frame = decodeClientFrame(bytes);
      } catch (err) {
        this.fail(err);
        return;
      }
      started += frame.kind === ClientFrameKind.Batch ? frame.requestId : 1;
      this.handle(frame);
    }
  }

  /** Closes the connection for a PROTOCOL error; anything else is a bug and propagates. */
  private fail(err: unknown): void {
    if (!isFlotillaError(err, 'PROTOCOL')) throw err;
    this.close(err.message, 'warn');
  }

  private handle(frame: ClientFrame): void {
    if (this.phase === 'open') {
      if (frame.kind === ClientFrameKind.Request) this.request(frame);
      else if (frame.kind === ClientFrameKind.Batch) this.batch(frame);
      else if (frame.kind === ClientFrameKind.Ping) {
        this.send(ClientFrameKind.Ping, 0, emptyBody);
      } else this.close(`unexpected frame kind ${frame.kind} from a client`, 'warn');
    } else if (frame.kind === ClientFrameKind.Hello && this.phase === 'await-hello') {
      this.onHello(frame.body);
    } else if (frame.kind === ClientFrameKind.Proof && this.phase === 'await-proof') {
      this.onProof(frame.body);
    } else {
      this.close(`frame kind ${frame.kind} before the handshake completed`, 'warn');
    }
  }

  /** Starts every request of a Batch frame, in order. */
  private batch(frame: ClientFrame): void {
    let items: ClientFrame[];
    try {
      items = decodeBatchItems(frame);
    } catch (err) {
      this.fail(err);
      return;
    }
    for (const item of items) {
      if (this.phase === 'closed') return;
      if (item.kind !== ClientFrameKind.Request) {
        this.close(`frame kind ${item.kind} in a client's batch`, 'warn');
        return;
      }
      this.request(item);
    }
  }

  /** Refuses the client: an AUTH_FAILED answer it can show, then the end of the connection. */
  private refuse(reason: string, told: string): void {
    this.sendFrame(encodeErrorFrame(0, new FlotillaError('AUTH_FAILED', told)));
    this.close(`refused: ${reason}`, 'warn', true);
  }

  private onHello(body: Uint8Array): void {
    let hello: ReturnType<typeof decodeClientHello>;
    try {
      hello = decodeClientHello(body);
    } catch (err) {
      this.fail(err);
      return;
    }
    const own = this.host.clusterId;
    if (hello.clusterId.length > 0 && !Buffer.from(hello.clusterId).equals(own)) {
      this.refuse(
        `client expects cluster ${JSON.stringify(Buffer.from(hello.clusterId).toString())}`,
        'this node belongs to another cluster: check the endpoints and clusterId',
      );
      return;
    }
    const nodeId = this.host.service.nodeId;
    this.transcript = { nodeId, clusterId: own, clientNonce: hello.nonce, nodeNonce: this.nonce };
    this.phase = 'await-proof';
    const mac = clientHandshakeMac(this.host.secret, 'node', this.transcript);
    this.sendFrame(
      encodeClientWelcome({
        version: clientProtocolVersion,
        nodeId,
        clusterId: own,
        nonce: this.nonce,
        mac,
      }),
    );
  }

  private onProof(body: Uint8Array): void {
    let mac: Uint8Array;
    try {
      mac = decodeClientProof(body);
    } catch (err) {
      this.fail(err);
      return;
    }
    const expected = clientHandshakeMac(this.host.secret, 'client', this.transcript!);
    if (!macMatches(mac, expected)) {
      this.refuse('the client failed to prove the secret', 'wrong cluster secret');
      return;
    }
    this.phase = 'open';
    this.transcript = undefined;
    this.reader.setFrameBytesMax(clientFrameBytesMax);
    this.sendFrame(encodeClientFrame(ClientFrameKind.Ready, 0, emptyBody));
  }

  private request(frame: ClientFrame): void {
    const id = frame.requestId;
    let req: ClientRequest;
    try {
      req = decodeRequest(frame.body, pageLimits);
    } catch (err) {
      if (isFlotillaError(err, 'PROTOCOL')) this.fail(err);
      else this.send(ClientFrameKind.Error, id, encodeErrorBody(asWireError(err)));
      return;
    }
    if (this.inFlight >= this.host.tuning.requestsInFlightMax) {
      const busy = new FlotillaError(
        'BUSY',
        `${this.inFlight} requests of this connection are in flight; back off and retry`,
      );
      this.send(ClientFrameKind.Error, id, encodeErrorBody(busy));
      return;
    }
    this.inFlight++;
    let answer: Promise<Uint8Array | 'close'>;
    try {
      answer = this.serve(req);
    } catch (err) {
      // A service may refuse at once (a shard not hosted here): answered like any refusal.
      answer = Promise.reject(err);
    }
    answer.then(
      (body) => this.answered(id, body),
      (err: unknown) => this.refused(id, err),
    );
  }

  private answered(id: number, body: Uint8Array | 'close'): void {
    this.inFlight--;
    if (body === 'close') this.close('fault injection: connection closed after a propose');
    else this.send(ClientFrameKind.Response, id, body);
  }

  private refused(id: number, err: unknown): void {
    this.inFlight--;
    if (!isFlotillaError(err)) {
      this.host.logger('error', 'serving a client request failed', { error: err });
    }
    this.send(ClientFrameKind.Error, id, encodeErrorBody(asWireError(err)));
  }

  /**
   * Serves one request; resolves with the response body. Writes and reads, the hot path, chain
   * on the service's own promise (no async frame of their own).
   */
  private serve(req: ClientRequest): Promise<Uint8Array | 'close'> {
    const service = this.host.service;
    switch (req.op) {
      case RequestOp.Propose: {
        const shard = req.shard;
        const faults = this.host.faults;
        return service.propose(shard, req.command).then((result) => {
          const fault = faults?.afterPropose?.(shard, result);
          if (fault === 'close') return 'close';
          if (fault !== undefined) throw fault;
          return encodeResult(result);
        });
      }
      case RequestOp.Read:
        return service.read(req.shard, req.key, req.consistency).then(readResultBody);
      default:
        return this.serveOther(req);
    }
  }

  /** Serves a request other than a write or a read. */
  private async serveOther(req: ClientRequest): Promise<Uint8Array | 'close'> {
    const service = this.host.service;
    switch (req.op) {
      case RequestOp.ShardMap:
        return wirePackr.pack(shardMapToWire(service.shardMap()));
      case RequestOp.Propose:
      case RequestOp.Read:
        return this.serve(req);
      case RequestOp.ScanPage: {
        const { limit, reverse, consistency } = req;
        const entries = await service.scan(req.shard, req.bounds, { limit, reverse, consistency });
        return scanPageBody(entries, this.host.tuning.responseBytesTarget);
      }
      case RequestOp.Changes: {
        const changes = service.changes(req.shard, req.afterIndex, req.limit);
        return changesBody(changes, this.host.tuning.responseBytesTarget);
      }
      case RequestOp.AppliedIndex:
        return wirePackr.pack(service.appliedIndex(req.shard));
      case RequestOp.Watch:
      case RequestOp.Unwatch:
        this.watching = req.op === RequestOp.Watch;
        if (!this.watching) this.changed.clear();
        this.host.watch(this, this.watching);
        return wirePackr.pack(true);
      case RequestOp.Status:
        return wirePackr.pack(service.status());
    }
  }
}

/** Starts serving clients; resolves once it listens. */
export function startClientServer(options: ClientServerOptions): Promise<ClientServer> {
  return listenClients(options).then((listening) => {
    listening.attach(options.service);
    return listening;
  });
}

/** A client server that listens but refuses connections until a service is attached. */
export interface ListeningClientServer extends ClientServer {
  /** Serves `service` to the connections accepted from now on. */
  attach(service: NodeService): void;
}

/**
 * Binds the client port before the node behind it exists, so that a node can find its port
 * taken before it writes anything; connections are refused until `attach`.
 */
export async function listenClients(options: ClientListenOptions): Promise<ListeningClientServer> {
  const secret =
    typeof options.secret === 'string' ? Buffer.from(options.secret, 'utf8') : options.secret;
  if (!(secret instanceof Uint8Array) || secret.length < clusterSecretBytesMin) {
    throw new FlotillaError(
      'CONFIG',
      `the cluster secret must be at least ${clusterSecretBytesMin} bytes`,
    );
  }
  const clusterId = Buffer.from(options.clusterId, 'utf8');
  if (clusterId.length === 0 || clusterId.length > clusterIdBytesMax) {
    throw new FlotillaError('CONFIG', `the cluster id must be 1..${clusterIdBytesMax} bytes`);
  }
  const hub = new ConnectionHub(options, clusterId, secret);
  const server = await hub.listen(options.host ?? '127.0.0.1', options.port);
  return { ...server, attach: (service) => hub.attach(service) };
}

/** The connections of one server and what they share (the watch subscription, timers). */
class ConnectionHub implements ConnectionHost {
  /** Undefined until attached: connections arriving before are refused (clients retry). */
  private attached: NodeService | undefined;
  readonly tuning: ClientServerTuning;
  readonly logger: Logger;
  readonly faults: ClientServerFaults | undefined;
  private readonly connections = new Set<ServerConnection>();
  private readonly watchers = new Set<ServerConnection>();
  private unsubscribe: (() => void) | undefined;
  private readonly server: Server;
  private sweeper: NodeJS.Timeout | undefined;
  private refusedConnections = 0;

  constructor(
    options: ClientListenOptions & { service?: NodeService },
    readonly clusterId: Uint8Array,
    readonly secret: Uint8Array,
  ) {
    this.attached = options.service;
    this.tuning = { ...defaultClientServerTuning, ...options.tuning };
    this.logger = options.logger ?? defaultLogger;
    this.faults = options.faults;
    const onSocket = (socket: Socket) => this.accept(socket);
    const tls = options.tls;
    this.server = tls
      ? createTlsServer(
          {
            key: tls.key,
            cert: tls.cert,
            ...(tls.ca === undefined ? {} : { ca: tls.ca, requestCert: true }),
            rejectUnauthorized: tls.ca !== undefined,
          },
          onSocket,
        )
      : createTcpServer(onSocket);
    this.server.on('tlsClientError', (err: Error) => {
      this.logger('warn', 'client TLS handshake failed', { error: err });
    });
  }

  get service(): NodeService {
    const service = this.attached;
    if (service === undefined) throw new Error('a connection exists only once a service serves');
    return service;
  }

  /** Starts serving `service` on the connections accepted from now on. */
  attach(service: NodeService): void {
    this.attached = service;
  }

  listen(host: string, port: number): Promise<ClientServer> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error & { code?: string }) => {
        reject(
          new FlotillaError('CONFIG', `cannot serve clients on ${host}:${port}: ${err.message}`, {
            cause: err,
          }),
        );
      };
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) =>
          this.logger('error', 'client server error', { error: err }),
        );
        const bound = this.server.address();
        const actual = typeof bound === 'object' && bound !== null ? bound.port : port;
        const { handshakeTimeoutMs, idleTimeoutMs } = this.tuning;
        // Sweep often enough that a timeout is enforced within half of itself.
        const sweepMs = Math.max(
          10,
          Math.min(clientKeepaliveMs, handshakeTimeoutMs / 2, idleTimeoutMs / 2),
        );
        this.sweeper = setInterval(() => this.sweep(), sweepMs);
        this.sweeper.unref();
        resolve({
          address: { host, port: actual },
          connectionCount: () => this.connections.size,
          close: () => this.close(),
        });
      });
    });
  }

  private accept(socket: Socket): void {
    if (this.attached === undefined) {
      // The node is still starting: the client sees the connection close and retries.
      socket.destroy();
      return;
    }
    if (this.connections.size >= this.tuning.connectionsMax) {
      this.refusedConnections++;
      if (this.refusedConnections === 1 || this.refusedConnections % 1000 === 0) {
        this.logger('warn', 'client connection refused: too many connections', {
          limit: this.tuning.connectionsMax,
          refused: this.refusedConnections,
        });
      }
      socket.destroy();
      return;
    }
    this.connections.add(new ServerConnection(socket, this));
  }

  /** Closes connections that are stuck in the handshake or silent for too long. */
  private sweep(): void {
    const now = Date.now();
    for (const conn of this.connections) {
      if (conn.phase !== 'open' && now - conn.openedMs > this.tuning.handshakeTimeoutMs) {
        conn.close('handshake timed out', 'warn');
      } else if (now - conn.lastReceiveMs > this.tuning.idleTimeoutMs) {
        conn.close('idle: nothing received within the idle timeout');
      }
    }
  }

  watch(conn: ServerConnection, on: boolean): void {
    if (on) this.watchers.add(conn);
    else this.watchers.delete(conn);
    if (this.watchers.size > 0 && this.unsubscribe === undefined) {
      // One listener on the node for every watching connection: the node's listeners are few.
      try {
        this.unsubscribe = this.service.onChanges((shards) => {
          for (const w of this.watchers) w.notify(shards);
        });
      } catch (err) {
        this.watchers.delete(conn);
        conn.watching = false;
        throw err;
      }
    } else if (this.watchers.size === 0 && this.unsubscribe !== undefined) {
      this.unsubscribe();
      this.unsubscribe = undefined;
    }
  }

  closed(conn: ServerConnection): void {
    this.connections.delete(conn);
    if (this.watchers.has(conn)) this.watch(conn, false);
  }

  private async close(): Promise<void> {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const conn of [...this.connections]) conn.close('the node is shutting down');
    await stopped;
  }
}

/** What a cluster node offers for serving clients (ClusterNode has these members). */
export interface ServableNode {
  readonly service: NodeService;
  readonly clusterId: string;
  /** "host:port" from the node's entry in cluster.json. */
  readonly clientAddress: string;
}

/**
 * Starts a client server for a node on the node's configured client address, for a node started
 * with `serveClients: false` (e.g. to serve a wrapped service). A port in use is a CONFIG error
 * naming the address.
 */
export function serveNodeClients(
  node: ServableNode,
  options: Omit<ClientServerOptions, 'service' | 'host' | 'port' | 'clusterId'>,
): Promise<ClientServer> {
  const { host, port } = parseAddress(node.clientAddress, 'client', `node ${node.service.nodeId}`);
  return startClientServer({
    ...options,
    service: node.service,
    host,
    port,
    clusterId: node.clusterId,
  });
}
