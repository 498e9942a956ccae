import { describe, expect, it } from 'vitest';
import { ChunkCache } from '../../../engine/log/chunk-cache.js';
import { SegmentedLog } from '../../../engine/log/segmented-log.js';
import type { Entry } from '../../../engine/raft/types.js';
import { FaultFs } from '../../support/fault-fs.js';
import { allEntries, ents, summary } from './helpers.js';

describe('the read cache', () => {
  it('stays within its byte bound and serves recent entries without the disk', async () => {
    const fs = new FaultFs({ seed: 12 });
    const cacheBytesMax = 16 * 1024;
    const log = await SegmentedLog.open({
      dir: '/log',
      fs,
      segmentBytes: 64 * 1024,
      cacheBytesMax,
    });
    for (let i = 1; i <= 500; i++) {
      await log.append([
        {
          group: 1 + (i % 3),
          entries: ents(1 + (i % 3), Math.ceil(i / 3), Math.ceil(i / 3), 1, 60),
        },
      ]);
      expect(log.stats().cachedBytes).toBeLessThanOrEqual(cacheBytesMax);
    }
    const reads = fs.count('read');
    expect(summary(log.entries(2, 160, 168, Number.MAX_VALUE))).toEqual(
      summary(ents(2, 160, 167, 1, 60)),
    );
    expect(fs.count('read')).toBe(reads);
    expect(summary(allEntries(log, 2))).toEqual(summary(ents(2, 1, 167, 1, 60)));
    expect(fs.count('read')).toBeGreaterThan(reads);
    await log.close();
  });

  it('keeps entries not yet written even beyond the bound', async () => {
    const fs = new FaultFs({ seed: 13 });
    const log = await SegmentedLog.open({
      dir: '/log',
      fs,
      segmentBytes: 64 * 1024,
      cacheBytesMax: 0,
    });
    const done = log.append([{ group: 1, entries: ents(1, 1, 50, 1, 100) }]);
    expect(log.stats().cachedBytes).toBeGreaterThan(50 * 100);
    expect(summary(allEntries(log, 1))).toEqual(summary(ents(1, 1, 50, 1, 100)));
    await done;
    await log.append([{ group: 2, entries: ents(2, 1, 1, 1, 10) }]);
    expect(log.stats().cachedBytes).toBe(0);
    expect(summary(allEntries(log, 1))).toEqual(summary(ents(1, 1, 50, 1, 100)));
    await log.close();
  });
});

describe('entries served from memory', () => {
  it('keep their bytes after their chunk is evicted and chunk buffers are reused', async () => {
    const fs = new FaultFs({ seed: 14 });
    const log = await SegmentedLog.open({
      dir: '/log',
      fs,
      segmentBytes: 256 * 1024,
      cacheBytesMax: 8 * 1024,
    });
    const held: { group: number; entry: Entry }[] = [];
    for (let i = 1; i <= 300; i++) {
      const group = 1 + (i % 2);
      const index = Math.ceil(i / 2);
      const written = log.append([{ group, entries: ents(group, index, index, 1, 200) }]);
      // Read while the entry is only in memory (not yet written), and keep what was read.
      if (i % 7 === 0) {
        for (const entry of log.entries(group, index, index + 1, Number.MAX_VALUE)) {
          held.push({ group, entry });
        }
      }
      await written;
    }
    expect(held.length).toBe(42);
    expect(log.stats().cachedBytes).toBeLessThanOrEqual(8 * 1024);
    for (const { group, entry } of held) {
      expect(summary([entry])).toEqual(summary(ents(group, entry.index, entry.index, 1, 200)));
    }
    await log.close();
  });
});

describe('buffers reserved ahead', () => {
  it('serve the next chunk that fits, smallest first, within the spare bounds', () => {
    const cache = new ChunkCache(1024 * 1024);
    cache.reserve(4 * 1024);
    cache.reserve(64 * 1024);
    cache.reserve(32 * 1024); // a spare that fits exists: nothing more is allocated
    const small = cache.start(1, 32, 0, 3000);
    expect(small.buf.length).toBe(4 * 1024);
    small.seal();
    const large = cache.start(1, 32, 0, 60 * 1024);
    expect(large.buf.length).toBe(64 * 1024);
    large.seal();
    // Nothing reserved is left: the next chunk gets a buffer of its own size.
    expect(cache.start(1, 32, 0, 60 * 1024).buf.length).toBe(60 * 1024);
  });

  it('are not kept beyond the largest reusable size', () => {
    const cache = new ChunkCache(1024 * 1024);
    cache.reserve(4 * 1024 * 1024);
    expect(cache.start(1, 32, 0, 1000).buf.length).toBe(1000);
  });
});
