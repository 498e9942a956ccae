/**
 * Reading a segment front to back for recovery, one window at a time, with the next window's
 * read in flight while the caller verifies and replays the current one (the read runs on the
 * thread pool, so the disk or page-cache copy overlaps the CRC work instead of adding to it).
 *
 * A window can carry over the unfinished tail of the previous one (the start of a write cut by
 * the window's end), so the caller always sees whole writes from their first byte. The carry is
 * copied into a gap kept in front of each window's bytes; a carry larger than the gap (a write
 * longer than the gap) is joined in a new buffer instead.
 *
 * Memory: two buffers of `gapBytes + windowBytes`, plus a joined buffer while a carry exceeds the
 * gap (at most one write plus one window).
 */
import { ErrorCode, FlotillaError } from '../errors.js';
import type { LogFile } from './fs.js';

/** Reads all of `into` at `position`, failing on a short read. */
export async function readFully(file: LogFile, into: Uint8Array, position: number): Promise<void> {
  const n = await file.read(into, position);
  if (n !== into.length) {
    throw new FlotillaError(ErrorCode.IO, `short read of a log segment at offset ${position}`);
  }
}

/** Reads [from, to) of a file in windows, one read ahead; see the module comment. */
export class SegmentReader {
  private readonly buffers: [Uint8Array, Uint8Array];
  /** The buffer the read in flight fills. */
  private filling = 0;
  private inflight: Promise<number> | undefined;
  /** File position the read in flight starts at. */
  private readAt: number;

  constructor(
    private readonly file: LogFile,
    from: number,
    private readonly to: number,
    private readonly windowBytes: number,
    private readonly gapBytes: number,
  ) {
    const size = gapBytes + Math.min(windowBytes, Math.max(0, to - from));
    this.buffers = [new Uint8Array(size), new Uint8Array(size)];
    this.readAt = from;
    this.startRead();
  }

  /** Whether every byte up to `to` has been handed out. */
  get done(): boolean {
    return this.inflight === undefined;
  }

  /**
   * The next window, preceded by `carry` (a view of the previous window, which must not be used
   * afterwards). Must not be called once `done`.
   */
  async next(carry: Uint8Array): Promise<Uint8Array> {
    const inflight = this.inflight;
    if (inflight === undefined) throw new RangeError('read past the end of the segment region');
    const n = await inflight;
    const buf = this.buffers[this.filling]!;
    const gap = this.gapBytes;
    let view: Uint8Array;
    if (carry.length <= gap) {
      buf.set(carry, gap - carry.length);
      view = buf.subarray(gap - carry.length, gap + n);
    } else {
      view = new Uint8Array(carry.length + n);
      view.set(carry);
      view.set(buf.subarray(gap, gap + n), carry.length);
    }
    this.readAt += n;
    this.filling ^= 1;
    this.startRead();
    return view;
  }

  /** Waits for the read in flight, if any, and reports its failure. */
  async finish(): Promise<void> {
    const inflight = this.inflight;
    this.inflight = undefined;
    if (inflight !== undefined) await inflight;
  }

  /**
   * Waits for the read in flight, if any, when the scan is failing with an error of its own:
   * that error is the one to report, and the file must not be closed under a running read.
   */
  async abandon(): Promise<void> {
    const inflight = this.inflight;
    this.inflight = undefined;
    if (inflight !== undefined) await Promise.allSettled([inflight]);
  }

  private startRead(): void {
    const n = Math.min(this.windowBytes, this.to - this.readAt);
    if (n <= 0) {
      this.inflight = undefined;
      return;
    }
    const into = this.buffers[this.filling]!.subarray(this.gapBytes, this.gapBytes + n);
    const at = this.readAt;
    const read = readFully(this.file, into, at).then(() => n);
    // The caller may still be busy with the current window when the read fails: mark the
    // failure as handled so that Node does not treat it as unhandled meanwhile. `next`,
    // `finish` or `abandon` awaits the read itself and so receives the failure.
    read.catch(() => undefined);
    this.inflight = read;
  }
}
