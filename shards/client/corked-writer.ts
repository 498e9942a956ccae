/**
 * Writes frames to a socket, coalescing every frame written in one event-loop turn into one
 * system call (cork, then uncork once the turn's I/O is done): many small requests or answers in
 * flight cost one write each turn instead of one each.
 */
import type { Socket } from 'node:net';

/** Coalesces the writes of one turn on one socket. */
export class CorkedWriter {
  private corked = false;

  constructor(private readonly socket: Socket) {}

  /** Queues `frame`; it leaves with the rest of this turn's frames. */
  write(frame: Uint8Array): void {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(frame);
  }
}
