/**
 * A TCP proxy that can partition one network link on purpose, for chaos runs with real
 * processes: a node dials the proxy instead of its peer, and the controller decides, per
 * direction, what happens to the bytes.
 *
 * - `up`: bytes pass (with backpressure: a side that cannot keep up pauses the other).
 * - `blackhole`: bytes are accepted and dropped; the connection stays open, so only the nodes'
 *   own keepalive and idle timeouts can notice — the silent partition.
 * - `cut`: the loud partition: connections are reset (RST) and new ones are accepted and reset
 *   at once. A TCP connection needs both directions, so a cut in either direction resets it.
 *
 * A connection that dropped bytes in a direction is reset when that direction is `up` again:
 * a byte stream with a hole in it is no TCP stream, and resuming it would hand a node a torn
 * frame that no real network could produce. The nodes redial.
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';

/** What one direction of a proxied link does with bytes. */
export type LinkMode = 'up' | 'blackhole' | 'cut';

/** What a proxy did, cumulatively. */
export interface LinkProxyCounters {
  /** Connections accepted and joined to the upstream. */
  accepted: number;
  /** Connections reset on arrival because the link was cut. */
  refused: number;
  /** Established connections reset by a cut or after a blackhole healed. */
  reset: number;
  /** Bytes dropped by a blackhole. */
  droppedBytes: number;
  /** Bytes passed on. */
  forwardedBytes: number;
  /** Socket errors seen (resets by a peer, a refused upstream): each closed its connection. */
  socketErrors: number;
}

/** Counters that have counted nothing yet. */
export function zeroCounters(): LinkProxyCounters {
  return { accepted: 0, refused: 0, reset: 0, droppedBytes: 0, forwardedBytes: 0, socketErrors: 0 };
}

/** One proxied connection: the dialer's socket and ours to the upstream. */
interface Pair {
  downstream: Socket;
  upstream: Socket;
  /** Whether bytes were dropped going upstream (forward) / coming back (backward). */
  droppedForward: boolean;
  droppedBackward: boolean;
}

/** A proxy listening on loopback for one upstream "host:port"; see the module comment. */
export class LinkProxy {
  /** The bytes the dialer sends to the upstream. */
  private forward: LinkMode = 'up';
  /** The bytes the upstream sends back to the dialer. */
  private backward: LinkMode = 'up';
  private readonly pairs = new Set<Pair>();
  readonly counters: LinkProxyCounters = zeroCounters();

  private constructor(
    private readonly server: Server,
    /** The port the proxy listens on (127.0.0.1). */
    readonly port: number,
    private readonly upstreamHost: string,
    private readonly upstreamPort: number,
  ) {
    server.on('connection', (socket) => this.accept(socket));
  }

  /** Starts a proxy on 127.0.0.1 (`port`, default any free one) for `upstream`. */
  static async start(upstream: { host: string; port: number }, port = 0): Promise<LinkProxy> {
    const server = createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port was bound');
    return new LinkProxy(server, address.port, upstream.host, upstream.port);
  }

  /** The address dialers use. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Live proxied connections. */
  get connections(): number {
    return this.pairs.size;
  }

  /** The modes of the two directions (dialer to upstream, upstream to dialer). */
  modes(): { forward: LinkMode; backward: LinkMode } {
    return { forward: this.forward, backward: this.backward };
  }

  /**
   * Sets both directions. A cut resets every connection; a direction that is up again resets
   * the connections that dropped bytes in it.
   */
  setModes(forward: LinkMode, backward: LinkMode): void {
    this.forward = forward;
    this.backward = backward;
    const cut = forward === 'cut' || backward === 'cut';
    for (const pair of [...this.pairs]) {
      const torn =
        (pair.droppedForward && forward === 'up') || (pair.droppedBackward && backward === 'up');
      if (cut || torn) this.reset(pair);
    }
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    for (const pair of [...this.pairs]) this.drop(pair);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(downstream: Socket): void {
    if (this.forward === 'cut' || this.backward === 'cut') {
      this.counters.refused++;
      downstream.on('error', () => this.counters.socketErrors++);
      downstream.resetAndDestroy();
      return;
    }
    downstream.setNoDelay(true);
    // Nothing is read from the dialer until the upstream answers.
    downstream.pause();
    const upstream = netConnect({ host: this.upstreamHost, port: this.upstreamPort });
    upstream.setNoDelay(true);
    const pair: Pair = { downstream, upstream, droppedForward: false, droppedBackward: false };
    this.pairs.add(pair);
    this.counters.accepted++;
    const failed = () => {
      // A peer's reset or a refused upstream (its node is down): close the whole connection,
      // as a direct connection would have been closed.
      this.counters.socketErrors++;
      this.drop(pair);
    };
    downstream.on('error', failed);
    upstream.on('error', failed);
    upstream.once('connect', () => downstream.resume());
    this.pipe(pair, downstream, upstream, true);
    this.pipe(pair, upstream, downstream, false);
  }

  /** Passes `from`'s bytes to `to` while the direction is up, drops them otherwise. */
  private pipe(pair: Pair, from: Socket, to: Socket, forward: boolean): void {
    from.on('data', (chunk: Buffer) => {
      const mode = forward ? this.forward : this.backward;
      if (mode !== 'up') {
        this.counters.droppedBytes += chunk.length;
        if (forward) pair.droppedForward = true;
        else pair.droppedBackward = true;
        return;
      }
      this.counters.forwardedBytes += chunk.length;
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
    from.on('end', () => to.end());
    from.on('close', () => this.drop(pair));
  }

  /** Resets both sockets of `pair` (RST, as a network failure looks to both ends). */
  private reset(pair: Pair): void {
    if (!this.pairs.has(pair)) return;
    this.counters.reset++;
    this.pairs.delete(pair);
    pair.downstream.resetAndDestroy();
    if (pair.upstream.connecting) pair.upstream.destroy();
    else pair.upstream.resetAndDestroy();
  }

  /** Closes both sockets of `pair` after either closed. */
  private drop(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.downstream.destroy();
    pair.upstream.destroy();
  }
}
