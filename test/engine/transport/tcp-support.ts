/**
 * Test support for the TCP transport: a cluster harness on 127.0.0.1 and a raw peer that speaks
 * (or mangles) the protocol by hand.
 */
import { connect, createServer, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { NodeId } from '../../../engine/raft/types.js';
import { SeededRandom } from '../../../engine/random.js';
import { decodeFrame, type Frame, FrameKind } from '../../../engine/transport/codec.js';
import { FrameReader } from '../../../engine/transport/frame-reader.js';
import {
  decodeWelcome,
  encodeHello,
  encodeProof,
  handshakeMac,
  Lane,
  newNonce,
} from '../../../engine/transport/handshake.js';
import {
  TcpTransport,
  type TcpTransportOptions,
  type TcpTuning,
} from '../../../engine/transport/tcp-transport.js';
import type {
  Logger,
  LogLevel,
  PeerInfo,
  QueueTuning,
} from '../../../engine/transport/transport.js';
import type { Cluster, Harness } from './conformance.js';
import { Recorder } from './conformance.js';

/** The cluster id and secret every test node shares unless a test says otherwise. */
export const clusterId = 'test-cluster';
export const secret = 'a test secret of enough bytes';

/** Fast timers so tests of timeouts and reconnects stay short. */
export const fastTuning: Partial<TcpTuning> = {
  reconnectBackoffMinMs: 10,
  reconnectBackoffMaxMs: 100,
};

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

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `done` until it holds; rejects after `timeoutMs`. */
export async function waitFor(done: () => boolean, what: string, timeoutMs = 10_000) {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(2);
  }
}

/** Starts a transport on 127.0.0.1 with test defaults. */
export function startNode(
  nodeId: NodeId,
  overrides: Partial<TcpTransportOptions> & Pick<TcpTransportOptions, 'handler'>,
): Promise<TcpTransport> {
  return TcpTransport.start({
    nodeId,
    clusterId,
    secret,
    listenHost: '127.0.0.1',
    listenPort: 0,
    random: new SeededRandom(nodeId),
    ...overrides,
    tuning: { ...fastTuning, ...overrides.tuning },
  });
}

/** Whether both lanes of `t` to `peer` are connected. */
export function connected(t: TcpTransport, peer: NodeId): boolean {
  const s = t.stats().peers.find((p) => p.peer === peer);
  return s?.state === 'connected' && s.snapshotState === 'connected';
}

/** The TCP harness of the conformance suite. */
export const tcpHarness: Harness = {
  async create(nodes: NodeId[], tuning: Partial<QueueTuning> = {}): Promise<Cluster> {
    const recorder = new Recorder();
    const transports = new Map<NodeId, TcpTransport>();
    const { logger } = captureLogger();
    for (const node of nodes) {
      const handler = recorder.handler(node);
      transports.set(node, await startNode(node, { handler, logger, tuning }));
    }
    const peers = (node: NodeId): PeerInfo[] =>
      nodes
        .filter((n) => n !== node)
        .map((id) => ({ id, address: `127.0.0.1:${transports.get(id)!.port}` }));
    for (const [node, t] of transports) t.setPeers(peers(node));
    await waitFor(
      () => nodes.every((a) => nodes.every((b) => a === b || connected(transports.get(a)!, b))),
      'every pair connected',
    );
    return {
      transport: (node) => transports.get(node)!,
      peers,
      recorder,
      turn: () => new Promise((resolve) => setImmediate(resolve)),
      until: (done, what) => waitFor(done, what),
      quiesce: () => sleep(100),
      close: async () => {
        for (const t of transports.values()) await t.close();
      },
    };
  },
};

/** A free port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A hand-driven peer on a raw socket. */
export class RawPeer {
  readonly socket: Socket;
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  isClosed = false;
  private readonly reader = new FrameReader(16 * 1024 * 1024);

  private constructor(socket: Socket) {
    this.socket = socket;
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.isClosed = true;
        resolve();
      }),
    );
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      for (let bytes = this.reader.next(); bytes !== null; bytes = this.reader.next()) {
        const decoded = decodeFrame(bytes);
        if (!decoded.ok) throw decoded.error;
        this.frames.push(decoded.frame);
      }
    });
  }

  /** Connects to 127.0.0.1:`port`. */
  static async connect(port: number): Promise<RawPeer> {
    const socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawPeer(socket);
  }

  /** Writes raw bytes. */
  send(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Waits for the next frame of a handshake kind and returns its body. */
  async handshakeBody(kind: FrameKind): Promise<Uint8Array> {
    await waitFor(() => this.frames.length > 0 || this.isClosed, 'a handshake frame', 5_000);
    const frame = this.frames.shift();
    if (frame === undefined || frame.kind !== 'handshake' || frame.type !== kind) {
      throw new Error(`expected handshake frame ${kind}, got ${JSON.stringify(frame?.kind)}`);
    }
    return frame.body;
  }

  /** Runs the dialer side of the handshake as node `self` towards `peer`. */
  async dialHandshake(
    self: NodeId,
    peer: NodeId,
    options: { lane?: Lane; secret?: string; cluster?: string; proof?: 'valid' | 'forged' } = {},
  ): Promise<void> {
    const lane = options.lane ?? Lane.Raft;
    const cluster = Buffer.from(options.cluster ?? clusterId);
    const nonce = newNonce();
    this.send(
      encodeHello({ version: 1, lane, dialer: self, acceptor: peer, clusterId: cluster, nonce }),
    );
    const welcome = decodeWelcome(await this.handshakeBody(FrameKind.Welcome));
    if (!welcome.ok) throw welcome.error;
    const transcript = {
      lane,
      clusterId: cluster,
      dialer: self,
      acceptor: peer,
      dialerNonce: nonce,
      acceptorNonce: welcome.value.nonce,
    };
    const key = Buffer.from(options.secret ?? secret);
    const mac = handshakeMac(key, 'dial', transcript);
    if (options.proof === 'forged') mac[0] = mac[0]! ^ 1;
    this.send(encodeProof(mac));
  }

  /** Closes the socket. */
  destroy(): void {
    this.socket.destroy();
  }
}
