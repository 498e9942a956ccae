/**
 * The crash scenario behind the crash-recovery property: a driver that issues the same calls to
 * a log and to the model, the command generators, and one run (calls, power loss, recovery,
 * more calls, clean reopen). Kept apart from the property so a counterexample can be replayed.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import type { GroupWrite, LogStore } from '../../../engine/log/log-store.js';
import { SegmentedLog, type SegmentedLogOptions } from '../../../engine/log/segmented-log.js';
import { FaultFs } from '../../support/fault-fs.js';
import { ents, snap } from './helpers.js';
import {
  cloneModel,
  diffLog,
  expectLogEquals,
  type ModelLog,
  modelCompact,
  modelGroup,
  modelLast,
  modelTerm,
  modelTruncate,
  modelWrite,
} from './model.js';

const groupsMax = 4;

type WriteSpec = {
  group: number;
  count: number;
  overlap: number;
  bump: number;
  size: number;
  hard: boolean;
  vote: number;
};

type Command =
  | { kind: 'append'; writes: WriteSpec[] }
  | { kind: 'snapshot'; group: number; ahead: number; count: number }
  | { kind: 'compact'; group: number; fraction: number }
  | { kind: 'truncate'; group: number; back: number };

type Pace = { mode: 'await' } | { mode: 'ticks'; ticks: number };

const group = fc.integer({ min: 1, max: groupsMax });
const writeSpec = fc.record({
  group,
  count: fc.integer({ min: 0, max: 5 }),
  overlap: fc.integer({ min: 0, max: 3 }),
  bump: fc.integer({ min: 0, max: 1 }),
  size: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 100, max: 400 })),
  hard: fc.boolean(),
  vote: fc.integer({ min: 0, max: 3 }),
});
export const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      writes: fc.array(writeSpec, { minLength: 1, maxLength: 3 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('snapshot' as const),
      group,
      ahead: fc.integer({ min: 0, max: 4 }),
      count: fc.integer({ min: 0, max: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('compact' as const),
      group,
      fraction: fc.constantFrom(0.3, 0.8, 1),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('truncate' as const),
      group,
      back: fc.integer({ min: 1, max: 4 }),
    }),
  },
);
export const pace: fc.Arbitrary<Pace> = fc.oneof(
  fc.constant({ mode: 'await' as const }),
  fc.record({ mode: fc.constant('ticks' as const), ticks: fc.integer({ min: 0, max: 4 }) }),
);

/** Drives a log and the model with the same calls. */
export class Driver {
  private readonly terms = new Map<number, number>();

  constructor(
    readonly model: ModelLog,
    private log: LogStore,
  ) {}

  use(log: LogStore): void {
    this.log = log;
  }

  /** Issues one command against the log and the model; returns the log's promise. */
  run(cmd: Command): Promise<void> {
    switch (cmd.kind) {
      case 'append': {
        const writes = cmd.writes.map((w) => this.write(w));
        const p = this.log.append(writes);
        return p;
      }
      case 'snapshot': {
        const g = modelGroup(this.model, cmd.group);
        const index = Math.max(g.compacted, modelLast(g) - 2 + cmd.ahead);
        const term = this.bump(cmd.group, 1, g.compactedTerm);
        const w: GroupWrite = { group: cmd.group, snapshot: snap(index, term) };
        if (cmd.count > 0) w.entries = ents(cmd.group, index + 1, index + cmd.count, term, 10);
        modelWrite(this.model, w);
        return this.log.append([w]);
      }
      case 'compact': {
        const g = modelGroup(this.model, cmd.group);
        const index = g.compacted + Math.floor((modelLast(g) - g.compacted) * cmd.fraction);
        modelCompact(this.model, cmd.group, index);
        return this.log.compact(cmd.group, index);
      }
      case 'truncate': {
        const g = modelGroup(this.model, cmd.group);
        const index = Math.max(g.compacted + 1, modelLast(g) + 1 - cmd.back);
        modelTruncate(this.model, cmd.group, index);
        return this.log.truncateSuffix(cmd.group, index);
      }
    }
  }

  private bump(id: number, by: number, floor: number): number {
    const term = Math.max(this.terms.get(id) ?? 1, floor) + by;
    this.terms.set(id, term);
    return term;
  }

  private write(spec: WriteSpec): GroupWrite {
    const g = modelGroup(this.model, spec.group);
    const last = modelLast(g);
    const start = Math.max(g.compacted + 1, last + 1 - spec.overlap);
    const term = this.bump(spec.group, spec.bump, modelTerm(g, start - 1) ?? 0);
    const w: GroupWrite = { group: spec.group };
    if (spec.count > 0)
      w.entries = ents(spec.group, start, start + spec.count - 1, term, spec.size);
    if (spec.hard) {
      const end = spec.count > 0 ? start + spec.count - 1 : last;
      w.hardState = { term, vote: spec.vote, commit: Math.max(0, end - 1) };
    }
    modelWrite(this.model, w);
    return w;
  }
}

async function ticks(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await Promise.resolve();
}

function options(fs: FaultFs, cacheBytesMax: number, clock: { t: number }): SegmentedLogOptions {
  return {
    dir: '/node/log',
    fs,
    segmentBytes: 8192,
    cacheBytesMax,
    rewriteBytesPerSec: 64 * 1024,
    cleanSlackSegments: 1,
    now: () => (clock.t += 50),
  };
}

/** What the runs exercised, so the property cannot pass vacuously. */
export const seen = { rewrittenBytes: 0, deletions: 0, lostCalls: 0, crashesWithPending: 0 };

/** One run; see the module comment. `seen` gathers what the runs exercised. */
export async function scenario(
  seed: number,
  cacheBytesMax: number,
  commands: { cmd: Command; pace: Pace }[],
  crashTicks: number,
  after: Command[],
): Promise<void> {
  const clock = { t: 0 };
  let fs = new FaultFs({ seed });
  const log = await SegmentedLog.open(options(fs, cacheBytesMax, clock));
  const driver = new Driver(new Map(), log);
  const models: ModelLog[] = [cloneModel(driver.model)];
  let durable = 0;
  for (const [i, { cmd, pace }] of commands.entries()) {
    const p = driver.run(cmd);
    models.push(cloneModel(driver.model));
    p.then(
      () => {
        durable = Math.max(durable, i + 1);
      },
      () => undefined,
    );
    if (pace.mode === 'await') await p.catch(() => undefined);
    else await ticks(pace.ticks);
  }
  await ticks(crashTicks);
  const lower = durable;
  seen.rewrittenBytes += log.stats().rewrittenBytes;
  seen.deletions += fs.count('unlink');
  if (lower < commands.length) seen.crashesWithPending++;
  fs = fs.crash();
  const reopened = await SegmentedLog.open(options(fs, cacheBytesMax, clock));
  let k = models.length - 1;
  while (k >= lower && diffLog(reopened, models[k]!).length > 0) k--;
  if (k < lower) {
    const diff = diffLog(reopened, models[models.length - 1]!);
    expect.fail(`no model in [${lower}, ${models.length - 1}] matches the recovered log: ${diff}`);
  }
  if (k < models.length - 1) seen.lostCalls++;
  const resumed = new Driver(cloneModel(models[k]!), reopened);
  for (const cmd of after) await resumed.run(cmd);
  await reopened.close();
  const final = await SegmentedLog.open(options(fs, cacheBytesMax, clock));
  resumed.use(final);
  expectLogEquals(final, resumed.model);
  await final.close();
}
