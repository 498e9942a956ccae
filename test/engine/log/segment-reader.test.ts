import { describe, expect, it } from 'vitest';
import type { LogFile } from '../../../engine/log/fs.js';
import { SegmentReader } from '../../../engine/log/segment-reader.js';
import { FaultFs } from '../../support/fault-fs.js';

/** A file of `size` bytes whose byte i is a function of i, so any view can be checked. */
async function patternFile(fs: FaultFs, size: number): Promise<LogFile> {
  await fs.mkdir('/d');
  const file = await fs.open('/d/f', true);
  await file.write(
    Uint8Array.from({ length: size }, (_, i) => (i * 7 + (i >>> 8)) & 0xff),
    0,
  );
  return file;
}

function pattern(from: number, length: number): number[] {
  return Array.from({ length }, (_, k) => ((from + k) * 7 + ((from + k) >>> 8)) & 0xff);
}

const turns = async (n: number) => {
  for (let k = 0; k < n; k++) await new Promise<void>((resolve) => setImmediate(resolve));
};

describe('the segment reader', () => {
  it('hands out the region window by window, each after the carry it is given', async () => {
    const file = await patternFile(new FaultFs({ seed: 1 }), 1000);
    const reader = new SegmentReader(file, 10, 1000, 100, 40);
    let pos = 10;
    let carryBytes = 0;
    let view = await reader.next(new Uint8Array(0));
    for (let round = 0; ; round++) {
      expect([...view]).toEqual(pattern(pos, view.length));
      if (reader.done) break;
      // Carry the last bytes over, alternating between fitting the gap and exceeding it.
      carryBytes = round % 2 === 0 ? 30 : 70;
      const carryFrom = view.length - Math.min(carryBytes, view.length);
      pos += carryFrom;
      view = await reader.next(view.subarray(carryFrom));
    }
    expect(pos + view.length).toBe(1000);
    await reader.finish();
  });

  it('reports a failed read ahead from the next call, not as an unhandled rejection', async () => {
    const fs = new FaultFs({ seed: 2 });
    const file = await patternFile(fs, 1000);
    fs.failNext('read', { count: 2 });
    const reader = new SegmentReader(file, 0, 1000, 300, 0);
    // The first read (already failed) is in flight while the caller is busy elsewhere.
    await turns(3);
    await expect(reader.next(new Uint8Array(0))).rejects.toThrow(/read/);
  });

  it('waits for the read in flight when the scan is abandoned', async () => {
    const fs = new FaultFs({ seed: 3 });
    const file = await patternFile(fs, 1000);
    let reads = 0;
    let settled = 0;
    const counting: LogFile = {
      write: (data, position) => file.write(data, position),
      read: async (into, position) => {
        reads++;
        const n = await file.read(into, position);
        settled++;
        return n;
      },
      readSync: (into, position) => file.readSync(into, position),
      datasync: () => file.datasync(),
      writeDurable: (data, position) => file.writeDurable(data, position),
      truncate: (size) => file.truncate(size),
      size: () => file.size(),
      close: () => file.close(),
    };
    const reader = new SegmentReader(counting, 0, 1000, 300, 0);
    await reader.next(new Uint8Array(0));
    expect(reads).toBe(2);
    await reader.abandon();
    expect(settled).toBe(reads);
    expect(reader.done).toBe(true);
  });
});
