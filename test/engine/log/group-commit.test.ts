import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCode, isFlotillaError } from '../../../engine/errors.js';
import { type LogFile, type LogFs, nodeLogFs } from '../../../engine/log/fs.js';
import { SegmentedLog } from '../../../engine/log/segmented-log.js';
import { FaultFs } from '../../support/fault-fs.js';
import { allEntries, ents, summary } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'flotilla-commit-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The real file system, counting writes and fdatasyncs as they pass. */
function countingFs(): { fs: LogFs; writes: () => number; syncs: () => number } {
  let writes = 0;
  let syncs = 0;
  const wrap = (file: LogFile): LogFile => ({
    write: (data, position) => {
      writes++;
      return file.write(data, position);
    },
    read: (into, position) => file.read(into, position),
    readSync: (into, position) => file.readSync(into, position),
    datasync: () => {
      syncs++;
      return file.datasync();
    },
    writeDurable: (data, position) => {
      writes++;
      syncs++;
      return file.writeDurable(data, position);
    },
    truncate: (size) => file.truncate(size),
    size: () => file.size(),
    close: () => file.close(),
  });
  const fs: LogFs = {
    ...nodeLogFs,
    open: async (path, create) => wrap(await nodeLogFs.open(path, create)),
  };
  return { fs, writes: () => writes, syncs: () => syncs };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('group commit', () => {
  it('makes many concurrent appends from many groups durable with fewer fdatasyncs', async () => {
    const counting = countingFs();
    const dir = join(root, 'many');
    const log = await SegmentedLog.open({ dir, fs: counting.fs, segmentBytes: 1024 * 1024 });
    const writesBefore = counting.writes();
    const syncsBefore = counting.syncs();
    const groups = 64;
    const rounds = 12;
    const done: Promise<void>[] = [];
    for (let round = 0; round < rounds; round++) {
      for (let g = 1; g <= groups; g++) {
        const entries = ents(g, round * 2 + 1, round * 2 + 2, 1, 100);
        done.push(log.append([{ group: g, entries, hardState: { term: 1, vote: g, commit: 0 } }]));
      }
      await turn();
    }
    await Promise.all(done);
    const appends = groups * rounds;
    const syncs = counting.syncs() - syncsBefore;
    expect(syncs).toBeGreaterThan(0);
    expect(syncs).toBeLessThan(appends / 4);
    // Every flush is one write of its chunk followed by one fdatasync (segment creation aside).
    expect(log.stats().flushes).toBeLessThanOrEqual(counting.writes() - writesBefore);
    for (let g = 1; g <= groups; g++) {
      expect(summary(allEntries(log, g))).toEqual(summary(ents(g, 1, rounds * 2, 1, 100)));
    }
    await log.close();
    const again = await SegmentedLog.open({ dir });
    for (let g = 1; g <= groups; g++) expect(again.lastIndex(g)).toBe(rounds * 2);
    expect(again.hardState(5)).toEqual({ term: 1, vote: 5, commit: 0 });
    await again.close();
  });

  it('coalesces appends arriving while a sync is in flight into the next write', async () => {
    let release: (() => void) | undefined;
    let holding = false;
    const fs = new FaultFs({
      seed: 1,
      delay: (op) => {
        if (!holding || op !== 'datasync') return Promise.resolve();
        holding = false;
        return new Promise<void>((r) => {
          release = r;
        });
      },
    });
    const log = await SegmentedLog.open({ dir: '/log', fs, segmentBytes: 64 * 1024 });
    await log.append([{ group: 1, entries: ents(1, 1, 1, 1) }]);
    for (let i = 0; i < 10; i++) await turn();
    const syncs = fs.count('datasync');
    holding = true;
    const first = log.append([{ group: 1, entries: ents(1, 2, 2, 1) }]);
    while (release === undefined) await turn();
    const queued = [2, 3, 4].map((g) => log.append([{ group: g, entries: ents(g, 1, 1, 1) }]));
    await turn();
    expect(log.stats().queuedBytes).toBeGreaterThan(0);
    release();
    await Promise.all([first, ...queued]);
    expect(fs.count('datasync') - syncs).toBe(2);
    expect(log.groups()).toEqual([1, 2, 3, 4]);
    await log.close();
  });

  it('issues the write of an append before append returns when no write is in flight', async () => {
    const counting = countingFs();
    const log = await SegmentedLog.open({ dir: join(root, 'eager'), fs: counting.fs });
    for (let i = 1; i <= 3; i++) {
      const writes = counting.writes();
      const done = log.append([{ group: 1, entries: ents(1, i, i, 1, 100) }]);
      expect(counting.writes()).toBe(writes + 1);
      await done;
    }
    // One write in flight: the next appends wait for it, then go together in one write.
    const writes = counting.writes();
    const calls = [1, 2, 3].map((g) =>
      log.append([{ group: g + 1, entries: ents(g + 1, 1, 1, 1) }]),
    );
    expect(counting.writes()).toBe(writes + 1);
    await Promise.all(calls);
    expect(counting.writes()).toBe(writes + 2);
    expect(log.groups()).toEqual([1, 2, 3, 4]);
    await log.close();
  });

  it('writes durably through the node file system, on created and on reopened files', async () => {
    const path = join(root, 'durable');
    const created = await nodeLogFs.open(path, true);
    await created.writeDurable(new Uint8Array([1, 2, 3]), 0);
    await created.writeDurable(new Uint8Array(0), 3);
    await created.close();
    const reopened = await nodeLogFs.open(path, false);
    await reopened.writeDurable(new Uint8Array([4, 5]), 3);
    const into = new Uint8Array(8);
    expect(reopened.readSync(into, 0)).toBe(5);
    expect([...into.subarray(0, 5)]).toEqual([1, 2, 3, 4, 5]);
    await reopened.close();
    await expect(reopened.writeDurable(new Uint8Array([6]), 5)).rejects.toThrow();
  });

  it('rejects appends with BUSY beyond the queue bound, changing nothing', async () => {
    const fs = new FaultFs({ seed: 2 });
    const log = await SegmentedLog.open({
      dir: '/log',
      fs,
      segmentBytes: 256 * 1024,
      appendQueueBytesMax: 16 * 1024,
    });
    // Nothing can reach the disk during this synchronous loop, so the queue only fills.
    const calls: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) {
      const next = log.lastIndex(1) + 1;
      calls.push(log.append([{ group: 1, entries: ents(1, next, next + 9, 1, 68) }]));
    }
    const results = await Promise.allSettled(calls);
    const accepted = results.filter((r) => r.status === 'fulfilled').length;
    expect(accepted).toBeGreaterThan(5);
    expect(accepted).toBeLessThan(100);
    for (const r of results.slice(accepted)) {
      expect(r.status === 'rejected' && isFlotillaError(r.reason, ErrorCode.BUSY)).toBe(true);
    }
    expect(log.lastIndex(1)).toBe(accepted * 10);
    await log.append([{ group: 1, entries: ents(1, accepted * 10 + 1, accepted * 10 + 1, 1) }]);
    expect(log.lastIndex(1)).toBe(accepted * 10 + 1);
    await log.close();
  });

  it('refuses an append larger than the queue or an entry larger than a segment', async () => {
    const log = await SegmentedLog.open({
      dir: '/log',
      fs: new FaultFs({ seed: 3 }),
      segmentBytes: 8 * 1024,
      appendQueueBytesMax: 16 * 1024,
    });
    const invalid = (err: unknown) => isFlotillaError(err, ErrorCode.INVALID_ARGUMENT);
    await expect(log.append([{ group: 1, entries: ents(1, 1, 1, 1, 9000) }])).rejects.toSatisfy(
      invalid,
    );
    await expect(log.append([{ group: 1, entries: ents(1, 1, 40, 1, 500) }])).rejects.toSatisfy(
      invalid,
    );
    expect(log.lastIndex(1)).toBe(0);
    await log.close();
  });
});
