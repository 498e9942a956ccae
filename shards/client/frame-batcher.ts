/**
 * Sends the frames of one connection, batched per event-loop turn: the requests (or answers)
 * queued during a turn leave at its end as one Batch frame — one allocation, one CRC, one
 * system call — instead of a frame and a checksum each (protocol.ts). A lone item, a frame of
 * another kind and a large body travel as frames of their own; the order of everything queued
 * is kept.
 */
import type { Socket } from 'node:net';
import {
  clientBatchBytesTarget,
  clientBatchItemBytesMax,
  clientBatchItemsMax,
} from '../../engine/limits.js';
import {
  batchItemHeaderBytes,
  type ClientFrameKind,
  encodeBatchFrame,
  encodeClientFrame,
  isBatchable,
} from './protocol.js';

/** Queues a connection's frames and writes them once per turn. */
export class FrameBatcher {
  private kinds: ClientFrameKind[] = [];
  private ids: number[] = [];
  private bodies: Uint8Array[] = [];
  private queuedBytes = 0;
  private scheduled = false;

  /** `flushed` runs after each turn's write (the server re-checks its send buffer there). */
  constructor(
    private readonly socket: Socket,
    private readonly flushed?: () => void,
  ) {}

  /** Bytes queued here and not yet handed to the socket, plus what the socket holds. */
  get pendingBytes(): number {
    return this.queuedBytes + this.socket.writableLength;
  }

  /** Queues a frame; it leaves with the rest of this turn's frames. */
  add(kind: ClientFrameKind, requestId: number, body: Uint8Array): void {
    this.kinds.push(kind);
    this.ids.push(requestId);
    this.bodies.push(body);
    this.queuedBytes += batchItemHeaderBytes + body.length;
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
      this.flushed?.();
    });
  }

  /** Writes everything queued now (before a socket is ended, say). */
  flush(): void {
    const n = this.kinds.length;
    if (n === 0) return;
    const { kinds, ids, bodies } = this;
    this.kinds = [];
    this.ids = [];
    this.bodies = [];
    this.queuedBytes = 0;
    if (this.socket.destroyed) return;
    const frames: Uint8Array[] = [];
    let from = 0;
    while (from < n) {
      const to = runEnd(kinds, bodies, from, n);
      if (to - from >= 2) frames.push(encodeBatchFrame(kinds, ids, bodies, from, to));
      else frames.push(encodeClientFrame(kinds[from]!, ids[from]!, bodies[from]!));
      from = to;
    }
    if (frames.length === 1) {
      this.socket.write(frames[0]!);
      return;
    }
    this.socket.cork();
    for (const frame of frames) this.socket.write(frame);
    this.socket.uncork();
  }
}

/** The end of the run of items from `from` that may share one Batch frame (at least one item). */
function runEnd(
  kinds: readonly ClientFrameKind[],
  bodies: readonly Uint8Array[],
  from: number,
  n: number,
): number {
  if (!fits(kinds[from]!, bodies[from]!)) return from + 1;
  let bytes = 0;
  let to = from;
  while (
    to < n &&
    to - from < clientBatchItemsMax &&
    bytes < clientBatchBytesTarget &&
    fits(kinds[to]!, bodies[to]!)
  ) {
    bytes += batchItemHeaderBytes + bodies[to]!.length;
    to++;
  }
  return to;
}

function fits(kind: ClientFrameKind, body: Uint8Array): boolean {
  return isBatchable(kind) && body.length <= clientBatchItemBytesMax;
}
