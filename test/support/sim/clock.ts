/**
 * Simulated time for the cluster simulator: one virtual clock, a timer queue and a queue of
 * "next turn" callbacks, shared by every node. Each node incarnation sees it through its own
 * SimScheduler (the engine's Scheduler interface), which a simulated crash kills: its timers and
 * turns never run again, as the callbacks of a dead process would not.
 *
 * Nothing here runs by itself. The driver advances the clock, runs the timers that are due and
 * calls `settle()`, which lets every promise chain run to its end (microtasks) and runs queued
 * turns, until no work is left. Between two settles the whole simulation is quiescent, which is
 * where faults are injected; that, and running timers in (due time, creation order), is what
 * makes a seed replay exactly.
 */
import type { Scheduler, TimerHandle } from '../../../engine/scheduler.js';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  /** Repeats every `period` ms when > 0. */
  period: number;
  owner: SimScheduler;
  cancelled: boolean;
}

interface Turn {
  fn: () => void;
  owner: SimScheduler;
}

/** Resolves after the microtasks queued so far (and any they queue) have run. */
function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The virtual clock and its queues; see the module comment. */
export class SimClock {
  private time = 0;
  private seq = 0;
  /** A binary min-heap on (at, seq). */
  private readonly heap: Timer[] = [];
  private turns: Turn[] = [];
  /** Callbacks run so far (timers and turns), for the run's statistics. */
  callbacks = 0;

  /** Milliseconds of simulated time. */
  now(): number {
    return this.time;
  }

  /**
   * A scheduler for one owner (a node incarnation or the test harness) whose clock runs `rate`
   * times as fast as simulated time and reads `offset` ms ahead of it (see SimScheduler).
   */
  scheduler(rate = 1, offset = 0): SimScheduler {
    return new SimScheduler(this, rate, offset);
  }

  /** When the earliest live timer is due, or undefined when none is set. */
  nextTimerAt(): number | undefined {
    while (this.heap.length > 0) {
      const top = this.heap[0]!;
      if (!top.cancelled && top.owner.alive) return top.at;
      this.pop();
    }
    return undefined;
  }

  /** Moves the clock forward to `time` (never back). */
  advanceTo(time: number): void {
    if (time > this.time) this.time = time;
  }

  /** Runs every timer due by now, in (due time, creation order). Returns how many ran. */
  runDue(): number {
    let ran = 0;
    for (;;) {
      const at = this.nextTimerAt();
      if (at === undefined || at > this.time) return ran;
      const timer = this.pop()!;
      if (timer.period > 0) {
        timer.at += timer.period;
        timer.seq = this.seq++;
        this.push(timer);
      } else {
        timer.cancelled = true;
      }
      this.callbacks++;
      ran++;
      timer.fn();
    }
  }

  /**
   * Runs promise chains and queued turns until none is left. Returns the number of rounds (a
   * round drains the microtasks, then runs the turns queued meanwhile).
   */
  async settle(): Promise<number> {
    let rounds = 0;
    for (;;) {
      await drainMicrotasks();
      rounds++;
      if (this.turns.length === 0) return rounds;
      const batch = this.turns;
      this.turns = [];
      for (const turn of batch) {
        if (!turn.owner.alive) continue;
        this.callbacks++;
        turn.fn();
      }
    }
  }

  /** Used by SimScheduler. */
  addTimer(owner: SimScheduler, delay: number, period: number, fn: () => void): Timer {
    const timer: Timer = {
      at: this.time + Math.max(0, delay),
      seq: this.seq++,
      fn,
      period,
      owner,
      cancelled: false,
    };
    this.push(timer);
    return timer;
  }

  /** Used by SimScheduler. */
  addTurn(owner: SimScheduler, fn: () => void): void {
    this.turns.push({ fn, owner });
  }

  private push(timer: Timer): void {
    const heap = this.heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private pop(): Timer | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length === 0 || last === undefined) return top;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
      if (m === i) return top;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * The engine's Scheduler over a SimClock, for one owner; `kill()` silences it for good.
 *
 * Its clock may be skewed, as a machine's is: it runs `rate` times as fast as simulated time
 * (every timer of the owner, Raft ticks included, fires that much sooner) and reads `offset` ms
 * ahead (a monotonic clock starts anywhere: nothing may compare readings of two owners).
 */
export class SimScheduler implements Scheduler {
  private dead = false;

  constructor(
    private readonly clock: SimClock,
    readonly rate = 1,
    private readonly offset = 0,
  ) {
    if (!(rate > 0)) throw new RangeError(`a clock rate must be positive, not ${rate}`);
  }

  /** False once killed. */
  get alive(): boolean {
    return !this.dead;
  }

  now(): number {
    return this.offset + Math.floor(this.clock.now() * this.rate);
  }

  /** Simulated ms for `ms` of this owner's clock. */
  private simMs(ms: number): number {
    return this.rate === 1 ? ms : Math.ceil(ms / this.rate);
  }

  after(ms: number, fn: () => void): TimerHandle {
    const timer = this.clock.addTimer(this, this.simMs(ms), 0, fn);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  every(ms: number, fn: () => void): TimerHandle {
    const period = this.simMs(ms);
    const timer = this.clock.addTimer(this, period, Math.max(1, period), fn);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  nextTurn(fn: () => void): void {
    if (!this.dead) this.clock.addTurn(this, fn);
  }

  /** A promise resolved after `ms` of simulated time (never, if this scheduler is killed). */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.after(ms, resolve);
    });
  }

  /** Stops every timer and turn of this owner, now and later (a process that died). */
  kill(): void {
    this.dead = true;
  }
}
