/**
 * The simulator's clock: timers run in (due time, creation order) only when the driver advances
 * time; settle runs promise chains and queued turns to the end; a killed scheduler is silent.
 */
import { describe, expect, it } from 'vitest';
import { SimClock } from '../support/sim/clock.js';

describe('SimClock', () => {
  it('runs due timers in due-time order, ties in creation order, only when advanced', () => {
    const clock = new SimClock();
    const s = clock.scheduler();
    const ran: string[] = [];
    s.after(20, () => ran.push('b'));
    s.after(10, () => ran.push('a1'));
    s.after(10, () => ran.push('a2'));
    s.after(30, () => ran.push('c'));
    expect(clock.runDue()).toBe(0);
    expect(clock.nextTimerAt()).toBe(10);
    clock.advanceTo(20);
    expect(clock.runDue()).toBe(3);
    expect(ran).toEqual(['a1', 'a2', 'b']);
    expect(clock.nextTimerAt()).toBe(30);
  });

  it('repeats `every` timers until cancelled, and never moves time backwards', () => {
    const clock = new SimClock();
    const s = clock.scheduler();
    const at: number[] = [];
    const handle = s.every(100, () => at.push(clock.now()));
    clock.advanceTo(350);
    clock.runDue();
    handle.cancel();
    clock.advanceTo(1000);
    clock.runDue();
    clock.advanceTo(500);
    expect(clock.now()).toBe(1000);
    expect(at).toEqual([350, 350, 350]);
    expect(clock.nextTimerAt()).toBeUndefined();
  });

  it('settles promise chains and the turns they queue until no work is left', async () => {
    const clock = new SimClock();
    const s = clock.scheduler();
    const log: string[] = [];
    s.nextTurn(() => {
      log.push('turn 1');
      void Promise.resolve()
        .then(() => log.push('microtask'))
        .then(() => s.nextTurn(() => log.push('turn 2')));
    });
    const rounds = await clock.settle();
    expect(log).toEqual(['turn 1', 'microtask', 'turn 2']);
    expect(rounds).toBe(3);
  });

  it('resolves sleep after simulated time, and a killed scheduler runs nothing again', async () => {
    const clock = new SimClock();
    const live = clock.scheduler();
    const dead = clock.scheduler();
    const log: string[] = [];
    void live.sleep(50).then(() => log.push('slept'));
    dead.after(10, () => log.push('dead timer'));
    dead.nextTurn(() => log.push('dead turn'));
    dead.kill();
    dead.nextTurn(() => log.push('late turn'));
    expect(clock.nextTimerAt()).toBe(50);
    clock.advanceTo(50);
    clock.runDue();
    await clock.settle();
    expect(log).toEqual(['slept']);
    expect(dead.alive).toBe(false);
  });

  it('runs a skewed scheduler at its own rate from its own offset', () => {
    const clock = new SimClock();
    const fast = clock.scheduler(1.25, 5_000);
    const ticks: number[] = [];
    fast.every(100, () => ticks.push(clock.now()));
    let fired = -1;
    fast.after(250, () => {
      fired = clock.now();
    });
    for (let at = clock.nextTimerAt(); at !== undefined && at <= 400; at = clock.nextTimerAt()) {
      clock.advanceTo(at);
      clock.runDue();
    }
    // 100 ms of its clock are 80 ms of simulated time; 250 ms are 200.
    expect(ticks).toEqual([80, 160, 240, 320, 400]);
    expect(fired).toBe(200);
    expect(fast.now()).toBe(5_000 + 500);
    expect(() => clock.scheduler(0)).toThrow(RangeError);
  });
});
