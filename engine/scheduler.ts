/**
 * Time and turns, injected: the host never calls setTimeout, setImmediate or Date.now itself, so
 * the simulator can run the same code under simulated time (STYLE.md §2).
 */

/** A handle to cancel a scheduled callback. */
export interface TimerHandle {
  cancel(): void;
}

/** The source of time and deferred work. */
export interface Scheduler {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds. */
  after(ms: number, fn: () => void): TimerHandle;
  /** Runs `fn` every `ms` milliseconds until cancelled. */
  every(ms: number, fn: () => void): TimerHandle;
  /** Runs `fn` once after the current event-loop turn (after pending I/O callbacks). */
  nextTurn(fn: () => void): void;
}

/** The real scheduler: Node's timers and performance.now(). */
export const realScheduler: Scheduler = {
  now: () => performance.now(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
  nextTurn(fn) {
    setImmediate(fn);
  },
};
