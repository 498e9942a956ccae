/**
 * One TCP (or TLS) connection of one lane between two nodes: the handshake, frame splitting,
 * decoding and liveness bookkeeping. Anything the peer sends that does not parse, or a failed
 * handshake, closes this connection with a log line and nothing else: the node keeps running.
 */
import type { Socket } from 'node:net';
import { ErrorCode, isFlotillaError } from '../errors.js';
import { frameBytesMax, handshakeFrameBytesMax, transportProtocolVersion } from '../limits.js';
import type { NodeId } from '../raft/types.js';
import { decodeFrame, encodePingFrame, type Frame, FrameKind } from './codec.js';
import { FrameReader } from './frame-reader.js';
import {
  decodeHello,
  decodeProof,
  decodeWelcome,
  encodeHello,
  encodeProof,
  encodeWelcome,
  type Hello,
  handshakeMac,
  Lane,
  macMatches,
  newNonce,
  type Transcript,
} from './handshake.js';
import type { SnapshotChunk } from './transport.js';

/** Why a link closed; the transport counts and logs by it. */
export type CloseKind = 'auth' | 'protocol' | 'idle' | 'timeout' | 'io' | 'replaced' | 'local';

/** What a link needs from its transport. */
export interface LinkHost {
  readonly nodeId: NodeId;
  readonly clusterId: Uint8Array;
  readonly secret: Uint8Array;
  /** Acceptor side: null when `hello` may connect, else why not. */
  admit(hello: Hello): string | null;
  established(link: TcpLink): void;
  raftFrame(link: TcpLink, frame: Extract<Frame, { kind: 'raft' }>, bytes: number): void;
  chunk(link: TcpLink, chunk: SnapshotChunk, bytes: number): void;
  drained(link: TcpLink): void;
  closed(link: TcpLink, kind: CloseKind, reason: string): void;
}

/** TLS verification failures are authentication failures; other socket errors are I/O. */
function errorKind(err: Error & { code?: string }): CloseKind {
  const code = err.code ?? '';
  return /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL/.test(code) ? 'auth' : 'io';
}

/** A reason to close the link. */
type Failure = [CloseKind, string];

type LinkPhase = 'connecting' | 'await-welcome' | 'await-hello' | 'await-proof' | 'open' | 'closed';

/** A connection of one lane. */
export class TcpLink {
  readonly role: 'dialer' | 'acceptor';
  /** The peer: known up front when dialing, learned from the Hello when accepting. */
  peer: NodeId;
  lane: Lane;
  readonly openedMs: number;
  lastReceiveMs: number;
  lastSendMs: number;
  /** Set when the socket refused more bytes; cleared on 'drain'. */
  needDrain = false;
  private phase: LinkPhase;
  private readonly socket: Socket;
  private readonly host: LinkHost;
  private readonly reader = new FrameReader(handshakeFrameBytesMax);
  private readonly ownNonce: Uint8Array = newNonce();
  private transcript: Transcript | null = null;
  private readonly now: () => number;
  /** The peer's address, kept for log lines after the socket is gone. */
  readonly remote: string;

  private constructor(
    role: 'dialer' | 'acceptor',
    socket: Socket,
    host: LinkHost,
    peer: NodeId,
    lane: Lane,
    now: () => number,
    remote: string,
  ) {
    this.role = role;
    this.remote = remote;
    this.socket = socket;
    this.host = host;
    this.peer = peer;
    this.lane = lane;
    this.now = now;
    this.openedMs = now();
    this.lastReceiveMs = this.openedMs;
    this.lastSendMs = this.openedMs;
    this.phase = role === 'dialer' ? 'connecting' : 'await-hello';
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('error', (err) => this.close(errorKind(err), `socket error: ${err.message}`));
    socket.on('close', () => this.close('io', 'connection closed by peer'));
    socket.on('end', () => this.close('io', 'connection ended by peer'));
  }

  /** Wraps a socket that is dialing `peer`; `connectEvent` is 'connect' or 'secureConnect'. */
  static dial(
    socket: Socket,
    host: LinkHost,
    peer: NodeId,
    lane: Lane,
    connectEvent: 'connect' | 'secureConnect',
    now: () => number,
    remote: string,
  ): TcpLink {
    const link = new TcpLink('dialer', socket, host, peer, lane, now, remote);
    socket.once(connectEvent, () => link.sendHello());
    return link;
  }

  /** Wraps an accepted socket; the peer and lane become known with its Hello. */
  static accept(socket: Socket, host: LinkHost, now: () => number): TcpLink {
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    return new TcpLink('acceptor', socket, host, 0, Lane.Raft, now, remote);
  }

  /** Whether the handshake completed and the link is not closed. */
  get isOpen(): boolean {
    return this.phase === 'open';
  }

  /** Whether the link is closed. */
  get isClosed(): boolean {
    return this.phase === 'closed';
  }

  /** Writes a frame; false when the socket wants the writer to wait for 'drain'. */
  write(frame: Uint8Array): boolean {
    if (this.phase === 'closed') return false;
    this.lastSendMs = this.now();
    const ok = this.socket.write(frame);
    if (!ok) this.needDrain = true;
    return ok;
  }

  /** Sends a keepalive frame. */
  ping(): void {
    this.write(encodePingFrame());
  }

  /** Closes the connection (idempotent) and tells the transport once. */
  close(kind: CloseKind, reason: string): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.socket.destroy();
    this.host.closed(this, kind, reason);
  }

  private sendHello(): void {
    if (this.phase !== 'connecting') return;
    this.phase = 'await-welcome';
    this.write(
      encodeHello({
        version: transportProtocolVersion,
        lane: this.lane,
        dialer: this.host.nodeId,
        acceptor: this.peer,
        clusterId: this.host.clusterId,
        nonce: this.ownNonce,
      }),
    );
  }

  private onDrain(): void {
    this.needDrain = false;
    if (this.phase === 'open') this.host.drained(this);
  }

  private onData(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    this.lastReceiveMs = this.now();
    // Plain Uint8Array views, so that decoded data look the same as on the in-memory twin.
    this.reader.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    // A handler may close this link while frames are still buffered.
    while (!this.isClosed) {
      const frame = this.nextFrame();
      if (frame === null) return;
      this.handle(frame.frame, frame.bytes);
    }
  }

  /** The next decoded frame, or null when more bytes are needed or the link was closed. */
  private nextFrame(): { frame: Frame; bytes: number } | null {
    let bytes: Uint8Array | null;
    try {
      bytes = this.reader.next();
    } catch (err) {
      if (!isFlotillaError(err, ErrorCode.PROTOCOL)) throw err;
      this.close('protocol', err.message);
      return null;
    }
    if (bytes === null) return null;
    const decoded = decodeFrame(bytes);
    if (!decoded.ok) {
      this.close('protocol', decoded.error.message);
      return null;
    }
    return { frame: decoded.frame, bytes: bytes.length };
  }

  private handle(frame: Frame, bytes: number): void {
    const failure =
      frame.kind === 'handshake' ? this.handleHandshake(frame.type, frame.body) : this.check(frame);
    if (failure !== null) {
      this.close(failure[0], failure[1]);
    } else if (frame.kind === 'raft') {
      this.host.raftFrame(this, frame, bytes);
    } else if (frame.kind === 'snapshot') {
      this.host.chunk(this, frame.chunk, bytes);
    }
  }

  /** Whether a post-handshake frame may arrive here now. */
  private check(frame: Exclude<Frame, { kind: 'handshake' }>): Failure | null {
    if (this.phase !== 'open') return ['protocol', `${frame.kind} before the handshake completed`];
    if (frame.kind === 'ping') return null;
    const [from, to] =
      frame.kind === 'raft' ? [frame.from, frame.to] : [frame.chunk.from, frame.chunk.to];
    const lane = frame.kind === 'raft' ? Lane.Raft : Lane.Snapshot;
    if (this.lane !== lane) return ['protocol', `${frame.kind} frame on lane ${this.lane}`];
    if (from !== this.peer || to !== this.host.nodeId) {
      return ['protocol', `${frame.kind} frame addressed ${from}->${to}`];
    }
    return null;
  }

  private handleHandshake(kind: FrameKind, body: Uint8Array): Failure | null {
    if (kind === FrameKind.Hello && this.phase === 'await-hello') return this.onHello(body);
    if (kind === FrameKind.Welcome && this.phase === 'await-welcome') return this.onWelcome(body);
    if (kind === FrameKind.Proof && this.phase === 'await-proof') return this.onProof(body);
    return ['protocol', `unexpected handshake frame ${kind} in phase ${this.phase}`];
  }

  private onHello(body: Uint8Array): Failure | null {
    const decoded = decodeHello(body);
    if (!decoded.ok) return ['protocol', decoded.error.message];
    const hello = decoded.value;
    if (!Buffer.from(hello.clusterId).equals(this.host.clusterId)) {
      const id = JSON.stringify(Buffer.from(hello.clusterId).toString('utf8'));
      return ['auth', `wrong cluster id ${id}`];
    }
    if (hello.acceptor !== this.host.nodeId) {
      return ['auth', `dialed node ${hello.acceptor}, this is node ${this.host.nodeId}`];
    }
    this.peer = hello.dialer;
    this.lane = hello.lane;
    const refusal = this.host.admit(hello);
    if (refusal !== null) return ['auth', refusal];
    this.transcript = {
      lane: hello.lane,
      clusterId: this.host.clusterId,
      dialer: hello.dialer,
      acceptor: this.host.nodeId,
      dialerNonce: hello.nonce,
      acceptorNonce: this.ownNonce,
    };
    this.phase = 'await-proof';
    this.write(
      encodeWelcome({
        version: transportProtocolVersion,
        acceptor: this.host.nodeId,
        dialer: hello.dialer,
        nonce: this.ownNonce,
        mac: handshakeMac(this.host.secret, 'accept', this.transcript),
      }),
    );
    return null;
  }

  private onWelcome(body: Uint8Array): Failure | null {
    const decoded = decodeWelcome(body);
    if (!decoded.ok) return ['protocol', decoded.error.message];
    const welcome = decoded.value;
    if (welcome.acceptor !== this.peer || welcome.dialer !== this.host.nodeId) {
      return ['auth', `answered as node ${welcome.acceptor} to ${welcome.dialer}`];
    }
    const transcript: Transcript = {
      lane: this.lane,
      clusterId: this.host.clusterId,
      dialer: this.host.nodeId,
      acceptor: this.peer,
      dialerNonce: this.ownNonce,
      acceptorNonce: welcome.nonce,
    };
    const expected = handshakeMac(this.host.secret, 'accept', transcript);
    if (!macMatches(welcome.mac, expected)) return ['auth', 'peer failed to prove the secret'];
    this.write(encodeProof(handshakeMac(this.host.secret, 'dial', transcript)));
    this.open();
    return null;
  }

  private onProof(body: Uint8Array): Failure | null {
    const decoded = decodeProof(body);
    if (!decoded.ok) return ['protocol', decoded.error.message];
    const transcript = this.transcript;
    if (transcript === null) return ['protocol', 'proof without a hello'];
    if (!macMatches(decoded.value, handshakeMac(this.host.secret, 'dial', transcript))) {
      return ['auth', 'peer failed to prove the secret'];
    }
    this.open();
    return null;
  }

  private open(): void {
    this.phase = 'open';
    this.transcript = null;
    this.reader.setFrameBytesMax(frameBytesMax);
    if (this.lane === Lane.Raft) this.socket.setNoDelay(true);
    this.host.established(this);
  }
}
