/**
 * The run's trace: one line per notable event (faults, leader changes, client outcomes), stamped
 * with simulated time. Every line feeds a running hash, so two runs of one seed can be compared
 * event for event by their digest; only the most recent lines are kept for printing.
 */

/** Lines kept for a failure report. */
export const traceLinesKept = 400;

/** An append-only event log with a digest; see the module comment. */
export class Trace {
  private readonly lines: string[] = [];
  private hash = 0x811c9dc5;
  /** Events recorded so far. */
  events = 0;

  constructor(private readonly now: () => number) {}

  /** Records one event. */
  add(line: string): void {
    const stamped = `${String(this.now()).padStart(7)}ms ${line}`;
    this.events++;
    for (let i = 0; i < stamped.length; i++) {
      this.hash = Math.imul(this.hash ^ stamped.charCodeAt(i), 0x01000193) >>> 0;
    }
    this.lines.push(stamped);
    if (this.lines.length > traceLinesKept * 2) this.lines.splice(0, traceLinesKept);
  }

  /** A digest of every event so far: equal digests mean the same events in the same order. */
  digest(): string {
    return `${this.events.toString(16)}-${this.hash.toString(16).padStart(8, '0')}`;
  }

  /** The last `count` lines. */
  tail(count: number): string[] {
    return this.lines.slice(-count);
  }
}
