import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import type { LogStore } from '../../../engine/log/log-store.js';
import { SegmentedLog, type SegmentedLogOptions } from '../../../engine/log/segmented-log.js';
import { FaultFs } from '../../support/fault-fs.js';
import { logStoreConformance } from './conformance.js';

const root = mkdtempSync(join(tmpdir(), 'flotilla-log-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;

function factory(make: () => Omit<SegmentedLogOptions, 'dir'> & { dir?: string }) {
  const options = new Map<LogStore, SegmentedLogOptions>();
  return {
    async open() {
      const o = { dir: join(root, `log-${++dirs}`), ...make() };
      const log = await SegmentedLog.open(o);
      options.set(log, o);
      return log;
    },
    async reopen(log: LogStore) {
      const o = options.get(log)!;
      await log.close();
      const again = await SegmentedLog.open(o);
      options.set(again, o);
      return again;
    },
  };
}

logStoreConformance(
  'SegmentedLog on real files, 16 KiB segments, no cache',
  factory(() => ({ segmentBytes: 16 * 1024, cacheBytesMax: 0 })),
);

logStoreConformance(
  'SegmentedLog on the fault fs, 8 KiB segments, 4 KiB cache',
  factory(() => ({
    dir: '/log',
    fs: new FaultFs({ seed: dirs }),
    segmentBytes: 8 * 1024,
    cacheBytesMax: 4 * 1024,
  })),
);

logStoreConformance(
  'SegmentedLog on real files, zero-filled 16 KiB segments',
  factory(() => ({ segmentBytes: 16 * 1024, zeroFill: true })),
);

logStoreConformance(
  'SegmentedLog on the fault fs, zero-filled 8 KiB segments, 4 KiB cache',
  factory(() => ({
    dir: '/log',
    fs: new FaultFs({ seed: dirs }),
    segmentBytes: 8 * 1024,
    cacheBytesMax: 4 * 1024,
    zeroFill: true,
  })),
);
