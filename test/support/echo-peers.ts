/**
 * Loopback peers for the proxy tests: an echoing upstream and a dialer that collects what it
 * reads and how its connection ended.
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';

/** An echoing server and what it received. */
export interface Upstream {
  server: Server;
  port: number;
  /** Everything the upstream received, over all connections. */
  received: string[];
}

/** A loopback server that answers every chunk with "echo:" and the chunk. */
export async function echoUpstream(): Promise<Upstream> {
  const received: string[] = [];
  const server = createServer((socket) => {
    // Resets are what the proxy tests provoke: such a connection simply ends.
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk.toString());
      socket.write(`echo:${chunk.toString()}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { server, port: address.port, received };
}

/** A dialer that collects what it reads and records how its connection ended. */
export class Dialer {
  readonly socket: Socket;
  data = '';
  ended: Promise<string>;

  constructor(port: number) {
    this.socket = netConnect({ host: '127.0.0.1', port });
    this.socket.on('data', (chunk: Buffer) => {
      this.data += chunk.toString();
    });
    this.ended = new Promise((resolve) => {
      this.socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      this.socket.on('close', () => resolve('closed'));
    });
  }

  /** Resolves once the connection is established. */
  connected(): Promise<void> {
    return new Promise((resolve) => this.socket.once('connect', () => resolve()));
  }
}

/** Polls `condition` every 10 ms for up to 2 s. */
export async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Waits `ms` milliseconds. */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
