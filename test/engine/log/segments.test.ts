/**
 * Segment life cycle: rotation and preallocation, deletion of segments nobody needs, rewriting
 * the live records of an idle group forward so it cannot pin the disk, and the disk bound.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeSegmentHeader, segmentHeaderBytes } from '../../../engine/log/format.js';
import { SegmentedLog, type SegmentedLogOptions } from '../../../engine/log/segmented-log.js';
import { FaultFs } from '../../support/fault-fs.js';
import { allEntries, ents, summary } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'flotilla-segments-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('segments', () => {
  it('rotates into preallocated, sequentially numbered segments with valid headers', async () => {
    const dir = join(root, 'rotate');
    const segmentBytes = 8 * 1024;
    const log = await SegmentedLog.open({ dir, segmentBytes });
    for (let i = 1; i <= 100; i++) await log.append([{ group: 1, entries: ents(1, i, i, 1, 300) }]);
    await log.close();
    const names = readdirSync(dir).sort();
    expect(names.length).toBeGreaterThan(4);
    names.forEach((name, k) => {
      expect(name).toBe(`${String(k + 1).padStart(20, '0')}.seg`);
      const path = join(dir, name);
      expect(statSync(path).size).toBe(segmentBytes);
      const header = decodeSegmentHeader(readFileSync(path).subarray(0, segmentHeaderBytes));
      expect(header).toEqual({ version: 1, seq: k + 1, capacity: segmentBytes });
    });
    const again = await SegmentedLog.open({ dir, segmentBytes });
    expect(summary(allEntries(again, 1))).toEqual(summary(ents(1, 1, 100, 1, 300)));
    await again.close();
  });

  it('zero-fills a new segment when asked: full size, every byte after the header written', async () => {
    const dir = join(root, 'zero-fill');
    const segmentBytes = 3 * 1024 * 1024 + 4096;
    const log = await SegmentedLog.open({ dir, segmentBytes, zeroFill: true });
    await log.close();
    const [name] = readdirSync(dir);
    const bytes = readFileSync(join(dir, name!));
    expect(bytes.length).toBe(segmentBytes);
    expect(decodeSegmentHeader(bytes.subarray(0, segmentHeaderBytes))).toEqual({
      version: 1,
      seq: 1,
      capacity: segmentBytes,
    });
    expect(bytes.subarray(segmentHeaderBytes).every((b) => b === 0)).toBe(true);
    // Written, not sparse: the file's blocks cover its size.
    expect(statSync(join(dir, name!)).blocks * 512).toBeGreaterThanOrEqual(segmentBytes);
  });

  it('deletes segments once every group has compacted past them', async () => {
    const fs = new FaultFs({ seed: 5 });
    const log = await SegmentedLog.open({ dir: '/log', fs, segmentBytes: 8 * 1024 });
    let most = 0;
    for (let i = 1; i <= 300; i++) {
      await log.append([
        { group: 1, entries: ents(1, i, i, 1, 200) },
        { group: 2, entries: ents(2, i, i, 1, 200) },
      ]);
      if (i > 10) {
        await log.compact(1, i - 10);
        await log.compact(2, i - 10);
      }
      most = Math.max(most, fs.names('/log').length);
    }
    expect(fs.count('unlink')).toBeGreaterThan(10);
    expect(most).toBeLessThanOrEqual(4);
    expect(summary(allEntries(log, 2))).toEqual(summary(ents(2, 291, 300, 1, 200)));
    await log.close();
    const again = await SegmentedLog.open({ dir: '/log', fs, segmentBytes: 8 * 1024 });
    expect(again.firstIndex(1)).toBe(291);
    expect(again.term(1, 290)).toBe(1);
    expect(summary(allEntries(again, 1))).toEqual(summary(ents(1, 291, 300, 1, 200)));
    await again.close();
  });

  /** Many groups append and compact; group 99 wrote a little at the start and then fell idle. */
  async function idleGroupRun(options: Partial<SegmentedLogOptions>) {
    const fs = new FaultFs({ seed: 6 });
    const clock = { t: 0 };
    const segmentBytes = 8 * 1024;
    const open = () =>
      SegmentedLog.open({ dir: '/log', fs, segmentBytes, now: () => clock.t, ...options });
    const log = await open();
    const idle = ents(99, 1, 4, 1, 50);
    await log.append([{ group: 99, entries: idle, hardState: { term: 1, vote: 1, commit: 2 } }]);
    await log.compact(99, 1);
    let most = 0;
    let excess = 0;
    const usable = segmentBytes - segmentHeaderBytes;
    for (let i = 1; i <= 400; i++) {
      clock.t += 100;
      const writes = [];
      for (let g = 1; g <= 16; g++) writes.push({ group: g, entries: ents(g, i, i, 1, 100) });
      await log.append(writes);
      if (i > 5) for (let g = 1; g <= 16; g++) await log.compact(g, i - 5);
      const stats = log.stats();
      most = Math.max(most, stats.segments);
      excess = Math.max(excess, stats.segments - Math.ceil(stats.liveBytes / usable));
    }
    const rewritten = log.stats().rewrittenBytes;
    expect(summary(allEntries(log, 99))).toEqual(summary(idle.slice(1)));
    await log.close();
    const again = await open();
    expect(summary(allEntries(again, 99))).toEqual(summary(idle.slice(1)));
    expect(again.hardState(99)).toEqual({ term: 1, vote: 1, commit: 2 });
    expect(again.term(99, 1)).toBe(1);
    expect(summary(allEntries(again, 7))).toEqual(summary(ents(7, 396, 400, 1, 100)));
    await again.close();
    return { most, excess, rewritten };
  }

  it('rewrites an idle group forward so that the number of segments stays bounded', async () => {
    const slack = 2;
    const run = await idleGroupRun({ cleanSlackSegments: slack, rewriteBytesPerSec: 64 * 1024 });
    expect(run.rewritten).toBeGreaterThan(0);
    // The documented bound: what the live records need, the slack, the tail and the next one.
    expect(run.excess).toBeLessThanOrEqual(slack + 2);
    expect(run.most).toBeLessThanOrEqual(slack + 4);
  });

  it('without rewriting, the same idle group pins every segment written since', async () => {
    const run = await idleGroupRun({ cleanSlackSegments: 2, rewriteBytesPerSec: 0 });
    expect(run.rewritten).toBe(0);
    expect(run.most).toBeGreaterThan(40);
  });
});
