/**
 * One authenticated client connection to one node: the handshake, then many requests in flight
 * at once, each paired with its answer by request id, plus pushed change notifications and
 * keepalive pings.
 *
 * A request that was written and whose connection then dies rejects with UNAVAILABLE and
 * `outcome: 'unknown'` (the node may have applied it); one that never left rejects with
 * `outcome: 'not-applied'`. The caller (remote.ts) decides what to retry.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { ErrorCode, FlotillaError, isFlotillaError } from '../../engine/errors.js';
import {
  clientFrameBytesMax,
  clientHandshakeFrameBytesMax,
  clientIdleTimeoutMs,
  clientKeepaliveMs,
  clientProtocolVersion,
  clientRequestsInFlightMax,
} from '../../engine/limits.js';
import { FrameReader } from '../../engine/transport/frame-reader.js';
import { protocolError } from '../../engine/transport/wire.js';
import { FrameBatcher } from './frame-batcher.js';
import {
  type ClientFrame,
  ClientFrameKind,
  type ClientRequest,
  clientHandshakeMac,
  decodeBatchItems,
  decodeClientFrame,
  decodeClientWelcome,
  decodeErrorBody,
  encodeClientFrame,
  encodeClientHello,
  encodeRequestBody,
  isU32,
  macMatches,
  newClientNonce,
  PushType,
  unpackBody,
} from './protocol.js';

/** TLS options of a client: trust `ca`; present `key`/`cert` when the nodes ask for one. */
export interface ClientTls {
  ca: string | Buffer | Array<string | Buffer>;
  key?: string | Buffer;
  cert?: string | Buffer;
  /** The check of the node's certificate; defaults to Node's hostname check. */
  checkServerIdentity?: ConnectionOptions['checkServerIdentity'];
}

/** What a connection is opened with. */
export interface DialOptions {
  host: string;
  port: number;
  secret: Uint8Array;
  /** Empty: accept the cluster the secret admits us to. */
  clusterId: Uint8Array;
  tls?: ClientTls;
  /** Give up on connecting and authenticating after this. */
  timeoutMs: number;
}

interface Pending {
  resolve(value: unknown): void;
  /** Turns the answer's body into the value resolved. */
  decode(body: Uint8Array): unknown;
  reject(err: FlotillaError): void;
  /** Date.now() after which the request fails with TIMEOUT. */
  deadline: number;
}

const emptyBody = new Uint8Array(0);

/** An open, authenticated connection to one node. */
export class ClientConnection {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closedError: FlotillaError | undefined;
  private readonly pushListeners = new Set<(shards: number[]) => void>();
  private readonly closeListeners = new Set<(err: FlotillaError) => void>();
  private lastReceiveMs = Date.now();
  private readonly keepalive: NodeJS.Timeout;
  private readonly writer: FrameBatcher;
  /**
   * One timer for every request's deadline, armed for the earliest (a timer per request cost
   * as much as the rest of the request's bookkeeping together).
   */
  private deadlineTimer: NodeJS.Timeout | undefined;
  private deadlineTimerAt = Number.POSITIVE_INFINITY;

  private constructor(
    private readonly socket: Socket,
    private readonly reader: FrameReader,
    /** The node this connection reached (from its handshake). */
    readonly nodeId: number,
    /** The cluster the node belongs to (from its handshake). */
    readonly clusterId: string,
    readonly address: string,
  ) {
    reader.setFrameBytesMax(clientFrameBytesMax);
    this.writer = new FrameBatcher(socket);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(unavailable(`connection error: ${err.message}`)));
    socket.on('close', () => this.fail(unavailable('the node closed the connection')));
    this.keepalive = setInterval(() => this.tick(), clientKeepaliveMs);
    this.keepalive.unref();
  }

  /** Connects to a node and completes the handshake; rejects with AUTH_FAILED or UNAVAILABLE. */
  static open(options: DialOptions): Promise<ClientConnection> {
    return new Promise((resolve, reject) => {
      new Handshake(options, resolve, reject).start();
    });
  }

  /** Whether the connection is closed (every later request fails). */
  get isClosed(): boolean {
    return this.closedError !== undefined;
  }

  /** Requests in flight. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Calls `listener` with the shards a node says have new changes (after a watch request). */
  onPush(listener: (shards: number[]) => void): () => void {
    this.pushListeners.add(listener);
    return () => {
      this.pushListeners.delete(listener);
    };
  }

  /** Calls `listener` once when the connection closes. */
  onClose(listener: (err: FlotillaError) => void): void {
    this.closeListeners.add(listener);
  }

  /**
   * Sends `req`; resolves with the response body as `decode` reads it (by default, the
   * MessagePack value). Rejects with the node's error, with
   * BUSY when too many requests are in flight, with TIMEOUT (outcome unknown) after
   * `timeoutMs`, or with UNAVAILABLE when the connection fails.
   */
  request<T = unknown>(
    req: ClientRequest,
    timeoutMs: number,
    decode: (body: Uint8Array) => T = unpackBody as (body: Uint8Array) => T,
  ): Promise<T> {
    if (this.closedError !== undefined) {
      return Promise.reject(unavailable(this.closedError.message, 'not-applied'));
    }
    if (this.pending.size >= clientRequestsInFlightMax) {
      return Promise.reject(
        new FlotillaError('BUSY', `${this.pending.size} requests in flight to node ${this.nodeId}`),
      );
    }
    const id = this.allocateId();
    const body = encodeRequestBody(req);
    const deadline = Date.now() + timeoutMs;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, {
        resolve: resolve as (value: unknown) => void,
        decode,
        reject,
        deadline,
      });
      if (deadline < this.deadlineTimerAt) this.armDeadlines(deadline);
      this.writer.add(ClientFrameKind.Request, id, body);
    });
  }

  private armDeadlines(at: number): void {
    clearTimeout(this.deadlineTimer);
    this.deadlineTimerAt = at;
    this.deadlineTimer = setTimeout(() => this.expire(), Math.max(0, at - Date.now()));
  }

  /** Fails the requests past their deadline; re-arms for the earliest one left. */
  private expire(): void {
    this.deadlineTimer = undefined;
    this.deadlineTimerAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [id, p] of this.pending) {
      if (p.deadline > now) {
        next = Math.min(next, p.deadline);
        continue;
      }
      this.pending.delete(id);
      p.reject(
        new FlotillaError('TIMEOUT', `node ${this.nodeId} did not answer in time`, {
          outcome: 'unknown',
        }),
      );
    }
    if (next !== Number.POSITIVE_INFINITY) this.armDeadlines(next);
  }

  /** Closes the connection; requests in flight reject with CLOSED. */
  close(): void {
    this.fail(new FlotillaError('CLOSED', 'the client is closed'));
  }

  private allocateId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = id === 0xffffffff ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    }
  }

  private tick(): void {
    if (Date.now() - this.lastReceiveMs > clientIdleTimeoutMs) {
      this.fail(unavailable(`node ${this.nodeId} stopped answering (no keepalive)`));
      return;
    }
    this.writer.add(ClientFrameKind.Ping, 0, emptyBody);
  }

  private onData(chunk: Buffer): void {
    if (this.closedError !== undefined) return;
    this.lastReceiveMs = Date.now();
    this.reader.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    try {
      for (;;) {
        if (this.closedError !== undefined) return;
        const bytes = this.reader.next();
        if (bytes === null) return;
        this.handle(decodeClientFrame(bytes));
      }
    } catch (err) {
      if (!isFlotillaError(err, ErrorCode.PROTOCOL)) throw err;
      this.fail(new FlotillaError('PROTOCOL', `node ${this.nodeId}: ${err.message}`));
    }
  }

  private handle(frame: ClientFrame): void {
    switch (frame.kind) {
      case ClientFrameKind.Response:
      case ClientFrameKind.Error: {
        const p = this.pending.get(frame.requestId);
        // An answer after its request timed out: nobody waits for it any more.
        if (p === undefined) return;
        this.pending.delete(frame.requestId);
        try {
          if (frame.kind === ClientFrameKind.Error) p.reject(decodeErrorBody(frame.body));
          else p.resolve(p.decode(frame.body));
        } catch (err) {
          // A malformed answer fails its request, then (rethrown) the whole connection.
          if (isFlotillaError(err)) p.reject(err);
          throw err;
        }
        return;
      }
      case ClientFrameKind.Push:
        this.push(unpackBody(frame.body));
        return;
      case ClientFrameKind.Batch:
        for (const item of decodeBatchItems(frame)) {
          if (item.kind === ClientFrameKind.Request) {
            throw protocolError('a request from a node');
          }
          this.handle(item);
        }
        return;
      case ClientFrameKind.Ping:
        return;
      default:
        throw protocolError(`unexpected frame kind ${frame.kind} from a node`);
    }
  }

  private push(value: unknown): void {
    if (!Array.isArray(value) || value[0] !== PushType.ShardsChanged) {
      throw protocolError('unknown push');
    }
    const shards = value[1];
    if (!Array.isArray(shards) || !shards.every(isU32)) throw protocolError('push shard list');
    for (const listener of this.pushListeners) listener(shards);
  }

  private fail(err: FlotillaError): void {
    if (this.closedError !== undefined) return;
    this.closedError = err;
    clearInterval(this.keepalive);
    clearTimeout(this.deadlineTimer);
    this.socket.destroy();
    // Requests written but unanswered may have been applied by the node.
    const lost =
      err.code === 'CLOSED' ? err : unavailable(`${err.message} (request in flight)`, 'unknown');
    for (const p of this.pending.values()) p.reject(lost);
    this.pending.clear();
    for (const listener of this.closeListeners) listener(err);
    this.closeListeners.clear();
    this.pushListeners.clear();
  }

  /** Builds the connection once the handshake succeeded (Handshake's exit). */
  static adopt(
    socket: Socket,
    reader: FrameReader,
    nodeId: number,
    clusterId: string,
    address: string,
  ): ClientConnection {
    return new ClientConnection(socket, reader, nodeId, clusterId, address);
  }
}

/** A connection failure; `outcome` says whether a request on it may have been applied. */
function unavailable(message: string, outcome?: 'unknown' | 'not-applied'): FlotillaError {
  return new FlotillaError(
    'UNAVAILABLE',
    message,
    outcome === undefined ? {} : { outcome, reason: 'connection' },
  );
}

/** The client side of the handshake, from dialing to Ready (see protocol.ts). */
class Handshake {
  private readonly nonce = newClientNonce();
  private readonly reader = new FrameReader(clientHandshakeFrameBytesMax);
  private socket: Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private welcome: ReturnType<typeof decodeClientWelcome> | undefined;
  private done = false;
  private readonly address: string;

  constructor(
    private readonly options: DialOptions,
    private readonly resolve: (conn: ClientConnection) => void,
    private readonly reject: (err: FlotillaError) => void,
  ) {
    this.address = `${options.host}:${options.port}`;
  }

  start(): void {
    const { host, port, tls } = this.options;
    const socket = tls
      ? tlsConnect({
          host,
          port,
          ca: tls.ca,
          ...(tls.key === undefined ? {} : { key: tls.key }),
          ...(tls.cert === undefined ? {} : { cert: tls.cert }),
          ...(tls.checkServerIdentity ? { checkServerIdentity: tls.checkServerIdentity } : {}),
        })
      : netConnect({ host, port });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      socket.write(
        encodeClientHello({
          version: clientProtocolVersion,
          clusterId: this.options.clusterId,
          nonce: this.nonce,
        }),
      );
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: Error & { code?: string }) => {
      const code = err.code ?? '';
      const auth = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL/.test(code);
      this.finish(
        auth
          ? new FlotillaError('AUTH_FAILED', `${this.address}: TLS failed: ${err.message}`)
          : unavailable(`cannot reach ${this.address}: ${err.message}`, 'not-applied'),
      );
    });
    // Nothing was sent yet but the handshake: whatever fails here, no request was applied.
    socket.on('close', () =>
      this.finish(unavailable(`${this.address} closed the connection`, 'not-applied')),
    );
    this.timer = setTimeout(
      () => this.finish(unavailable(`${this.address}: connecting timed out`, 'not-applied')),
      this.options.timeoutMs,
    );
  }

  private onData(chunk: Buffer): void {
    if (this.done) return;
    this.reader.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    try {
      for (;;) {
        if (this.done) return;
        const bytes = this.reader.next();
        if (bytes === null) return;
        this.handle(decodeClientFrame(bytes));
      }
    } catch (err) {
      if (!isFlotillaError(err, ErrorCode.PROTOCOL)) throw err;
      this.finish(new FlotillaError('PROTOCOL', `${this.address}: ${err.message}`));
    }
  }

  private handle(frame: ClientFrame): void {
    if (frame.kind === ClientFrameKind.Error) {
      const err = decodeErrorBody(frame.body);
      this.finish(new FlotillaError(err.code, `${this.address}: ${err.message}`, err.details));
    } else if (frame.kind === ClientFrameKind.Welcome && this.welcome === undefined) {
      this.onWelcome(frame.body);
    } else if (frame.kind === ClientFrameKind.Ready && this.welcome !== undefined) {
      this.ready();
    } else {
      throw protocolError(`unexpected frame kind ${frame.kind} in the handshake`);
    }
  }

  private onWelcome(body: Uint8Array): void {
    const welcome = decodeClientWelcome(body);
    const expected = this.options.clusterId;
    if (expected.length > 0 && !Buffer.from(welcome.clusterId).equals(expected)) {
      this.finish(
        new FlotillaError(
          'AUTH_FAILED',
          `${this.address} belongs to cluster ` +
            `${JSON.stringify(Buffer.from(welcome.clusterId).toString())}, not ` +
            `${JSON.stringify(Buffer.from(expected).toString())}`,
        ),
      );
      return;
    }
    const transcript = {
      nodeId: welcome.nodeId,
      clusterId: welcome.clusterId,
      clientNonce: this.nonce,
      nodeNonce: welcome.nonce,
    };
    const secret = this.options.secret;
    if (!macMatches(welcome.mac, clientHandshakeMac(secret, 'node', transcript))) {
      this.finish(
        new FlotillaError('AUTH_FAILED', `${this.address} failed to prove the cluster secret`),
      );
      return;
    }
    this.welcome = welcome;
    const proof = clientHandshakeMac(secret, 'client', transcript);
    this.socket!.write(encodeClientFrame(ClientFrameKind.Proof, 0, proof));
  }

  private ready(): void {
    const socket = this.socket!;
    const welcome = this.welcome!;
    this.done = true;
    clearTimeout(this.timer);
    socket.removeAllListeners('data');
    socket.removeAllListeners('error');
    socket.removeAllListeners('close');
    const clusterId = Buffer.from(welcome.clusterId).toString('utf8');
    this.resolve(
      ClientConnection.adopt(socket, this.reader, welcome.nodeId, clusterId, this.address),
    );
  }

  private finish(err: FlotillaError): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.socket?.destroy();
    this.reject(err);
  }
}
