import { describe, expect, it } from 'vitest';
import { ErrorCode, isFlotillaError } from '../../../engine/errors.js';
import { SegmentedLog } from '../../../engine/log/segmented-log.js';
import { FaultFs, type FaultOp } from '../../support/fault-fs.js';
import { allEntries, ents, summary } from './helpers.js';

const io = (err: unknown) => isFlotillaError(err, ErrorCode.IO);

describe('I/O errors on the write path', () => {
  for (const op of ['write', 'datasync'] as FaultOp[]) {
    it(`a failed ${op} fails this and later appends; a reopen keeps what was acked`, async () => {
      const fs = new FaultFs({ seed: 9 });
      const log = await SegmentedLog.open({ dir: '/log', fs, segmentBytes: 64 * 1024 });
      await log.append([{ group: 1, entries: ents(1, 1, 3, 1) }]);
      fs.failNext(op, { path: '00000000000000000001.seg' });
      const failed = log.append([{ group: 1, entries: ents(1, 4, 4, 1) }]);
      await expect(failed).rejects.toSatisfy(io);
      await expect(failed).rejects.toThrow(/close it and open it again/);
      await expect(log.append([{ group: 2, entries: ents(2, 1, 1, 1) }])).rejects.toSatisfy(io);
      await expect(log.compact(1, 2)).rejects.toSatisfy(io);
      await log.close();
      const crashed = fs.crash();
      const again = await SegmentedLog.open({ dir: '/log', fs: crashed, segmentBytes: 64 * 1024 });
      expect(summary(allEntries(again, 1))).toEqual(summary(ents(1, 1, 3, 1)));
      expect(again.groups()).toEqual([1]);
      await again.append([{ group: 1, entries: ents(1, 4, 4, 2) }]);
      await again.close();
    });
  }

  it('a segment that cannot be created fails the log with IO', async () => {
    const fs = new FaultFs({ seed: 10 });
    const log = await SegmentedLog.open({ dir: '/log', fs, segmentBytes: 4096 });
    fs.failNext('open', { path: '.seg.tmp', count: 10 });
    let failure: unknown;
    for (let i = 1; i <= 40 && failure === undefined; i++) {
      await log.append([{ group: 1, entries: ents(1, i, i, 1, 300) }]).catch((err: unknown) => {
        failure = err;
      });
    }
    expect(io(failure)).toBe(true);
    expect((failure as Error).message).toMatch(/creating log segment/);
    await log.close();
  });

  it('a failed unlink while deleting a dead segment fails the log with IO', async () => {
    const fs = new FaultFs({ seed: 11 });
    const log = await SegmentedLog.open({ dir: '/log', fs, segmentBytes: 4096 });
    const unlinks = () => fs.count('unlink');
    let failure: unknown;
    let armed = false;
    for (let i = 1; i <= 200 && failure === undefined; i++) {
      if (!armed && i > 30) {
        fs.failNext('unlink');
        armed = true;
      }
      await log.append([{ group: 1, entries: ents(1, i, i, 1, 300) }]).catch((err: unknown) => {
        failure = err;
      });
      if (i > 2 && failure === undefined) {
        await log.compact(1, i - 2).catch((err: unknown) => {
          failure = err;
        });
      }
    }
    expect(unlinks()).toBeGreaterThan(1);
    expect(io(failure)).toBe(true);
    await log.close();
  });
});
