/**
 * Test support for the client protocol: a real single-node store (NodeHost, SegmentedLog and
 * KvState in a temp dir) served by a real client server on 127.0.0.1, and clients connected to
 * it over real sockets.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientFrameBytesMax, clientProtocolVersion } from '../../../engine/limits.js';
import { FrameReader } from '../../../engine/transport/frame-reader.js';
import type { Logger, LogLevel } from '../../../engine/transport/transport.js';
import {
  type ClientFrame,
  ClientFrameKind,
  clientHandshakeMac,
  decodeBatchItems,
  decodeClientFrame,
  decodeClientHello,
  decodeClientWelcome,
  encodeClientFrame,
  encodeClientHello,
  encodeClientWelcome,
  newClientNonce,
} from '../../../shards/client/protocol.js';
import type { ConnectOptions, RemoteStore } from '../../../shards/client/remote.js';
import {
  type ClientServer,
  type ClientServerOptions,
  startClientServer,
} from '../../../shards/client/server.js';
import { Flotilla } from '../../../shards/index.js';
import type { EmbeddedStore } from '../../../shards/store.js';

/** The cluster id and secret the tests share. */
export const clusterId = 'client-test';
export const secret = 'a client test secret of enough bytes';

/** One captured log line. */
export interface LogLine {
  level: LogLevel;
  msg: string;
  fields: Record<string, unknown> | undefined;
}

/** A logger that keeps its lines for assertions. */
export function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  return { logger: (level, msg, fields) => lines.push({ level, msg, fields }), lines };
}

/** A served single-node store and everything to clean up after it. */
export interface Served {
  store: EmbeddedStore;
  server: ClientServer;
  endpoint: string;
  lines: LogLine[];
  connect(options?: Partial<ConnectOptions>): Promise<RemoteStore>;
  close(): Promise<void>;
}

/** Opens a store in a temp dir and serves it to clients. */
export async function serveStore(
  shards = 8,
  options: Partial<ClientServerOptions> = {},
): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-client-'));
  const store = await Flotilla.open({ dir, shards });
  const { logger, lines } = captureLogger();
  const server = await startClientServer({
    service: store.nodeService,
    port: 0,
    clusterId,
    secret,
    logger,
    ...options,
  });
  const endpoint = `127.0.0.1:${server.address.port}`;
  const clients: RemoteStore[] = [];
  return {
    store,
    server,
    endpoint,
    lines,
    async connect(connectOptions = {}) {
      const client = await Flotilla.connect([endpoint], { secret, clusterId, ...connectOptions });
      clients.push(client);
      return client;
    },
    async close() {
      for (const c of clients) await c.close();
      await server.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The error code of a call (or 'ok'). */
export async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
    return 'ok';
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? code : `untyped: ${String(err)}`;
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A client that speaks (or mangles) the protocol by hand over a real socket. */
export class RawClient {
  readonly frames: ClientFrame[] = [];
  /** Batch frames received (their items are in `frames`). */
  batches = 0;
  private readonly reader = new FrameReader(clientFrameBytesMax);
  closed = false;
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.reader.push(new Uint8Array(chunk));
      for (let f = this.reader.next(); f !== null; f = this.reader.next()) {
        const frame = decodeClientFrame(f);
        // A node batches a turn's answers: the tests look at them one by one.
        if (frame.kind === ClientFrameKind.Batch) {
          this.batches++;
          this.frames.push(...decodeBatchItems(frame));
        } else this.frames.push(frame);
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {
      this.closed = true;
      this.wake();
    });
  }

  /** Connects to 127.0.0.1:`port`. */
  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = netConnect({ host: '127.0.0.1', port }, () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Connects and completes the handshake with `secret` and `cluster`. */
  static async authenticated(port: number, key = secret, cluster = clusterId): Promise<RawClient> {
    const raw = await RawClient.connect(port);
    const nonce = newClientNonce();
    raw.write(
      encodeClientHello({ version: clientProtocolVersion, clusterId: Buffer.from(cluster), nonce }),
    );
    const welcome = decodeClientWelcome((await raw.next()).body);
    const transcript = {
      nodeId: welcome.nodeId,
      clusterId: welcome.clusterId,
      clientNonce: nonce,
      nodeNonce: welcome.nonce,
    };
    const proof = clientHandshakeMac(Buffer.from(key), 'client', transcript);
    raw.write(encodeClientFrame(ClientFrameKind.Proof, 0, proof));
    const ready = await raw.next();
    if (ready.kind !== ClientFrameKind.Ready) throw new Error(`no Ready: kind ${ready.kind}`);
    return raw;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** The next frame received; throws if the connection closes first. */
  async next(): Promise<ClientFrame> {
    for (;;) {
      const frame = this.frames.shift();
      if (frame !== undefined) return frame;
      if (this.closed) throw new Error('connection closed');
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Resolves once the node has closed the connection. */
  async whenClosed(): Promise<void> {
    while (!this.closed) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * A node that completes the handshake correctly and then answers every request with `answer`
 * (bytes of a Response body): a node with a bug, as a client must survive it.
 */
export async function startBrokenNode(
  answer: Uint8Array,
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    const reader = new FrameReader(clientFrameBytesMax);
    const nonce = newClientNonce();
    let clientNonce: Uint8Array | undefined;
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      reader.push(new Uint8Array(chunk));
      for (let bytes = reader.next(); bytes !== null; bytes = reader.next()) {
        const frame = decodeClientFrame(bytes);
        const transcript = () => ({
          nodeId: 1,
          clusterId: Buffer.from(clusterId),
          clientNonce: clientNonce!,
          nodeNonce: nonce,
        });
        if (frame.kind === ClientFrameKind.Hello) {
          clientNonce = decodeClientHello(frame.body).nonce;
          const mac = clientHandshakeMac(Buffer.from(secret), 'node', transcript());
          socket.write(
            encodeClientWelcome({
              version: clientProtocolVersion,
              nodeId: 1,
              clusterId: Buffer.from(clusterId),
              nonce,
              mac,
            }),
          );
        } else if (frame.kind === ClientFrameKind.Proof) {
          socket.write(encodeClientFrame(ClientFrameKind.Ready, 0, new Uint8Array(0)));
        } else if (frame.kind === ClientFrameKind.Request) {
          socket.write(encodeClientFrame(ClientFrameKind.Response, frame.requestId, answer));
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
