/**
 * Recovery reads each segment in windows of `logRecoveryReadBytes`, one read ahead, carrying an
 * unfinished write from one window into the next. These tests use segments several windows
 * long, with writes cut by window ends and writes longer than a window.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, FlotillaError } from '../../../engine/errors.js';
import { logRecoveryCarryBytes, logRecoveryReadBytes } from '../../../engine/limits.js';
import { segmentName } from '../../../engine/log/format.js';
import { SegmentedLog } from '../../../engine/log/segmented-log.js';
import type { Entry } from '../../../engine/raft/types.js';
import { crc32c } from '../../../wasm/index.js';
import { FaultFs } from '../../support/fault-fs.js';
import { allEntries, ents } from './helpers.js';

const segmentBytes = 8 * logRecoveryReadBytes;
const segment1 = `/log/${segmentName(1)}`;

/** Entries of group `g` whose data adds up to about `bytes`, `size` bytes each. */
function entriesOf(g: number, from: number, bytes: number, size: number): Entry[] {
  return ents(g, from, from + Math.ceil(bytes / size) - 1, 1, size);
}

/**
 * A log of about three windows: small writes, one write longer than a window and the carry
 * room, then small writes again; every write boundary falls somewhere else in a window.
 */
async function writeLog(fs: FaultFs): Promise<Map<number, Entry[]>> {
  const log = await SegmentedLog.open({ dir: '/log', fs, segmentBytes });
  const written = new Map<number, Entry[]>([
    [1, []],
    [2, []],
  ]);
  const add = async (g: number, bytes: number, size: number) => {
    const list = written.get(g)!;
    const entries = entriesOf(g, list.length + 1, bytes, size);
    await log.append([{ group: g, entries }]);
    list.push(...entries);
  };
  for (let k = 0; k < 24; k++) await add(1 + (k % 2), 17_000 + 977 * k, 300 + 13 * k);
  await add(1, logRecoveryReadBytes + logRecoveryCarryBytes + 12_345, 40_000);
  for (let k = 0; k < 24; k++) await add(2 - (k % 2), 23_000 + 911 * k, 500 + 7 * k);
  await log.close();
  return written;
}

/** Entries as [index, term, type, length, crc32c of data]: cheap to compare in bulk. */
function digest(entries: readonly Entry[]): number[][] {
  return entries.map((e) => [e.index, e.term, e.type, e.data.length, crc32c(e.data)]);
}

async function flipByte(fs: FaultFs, path: string, offset: number): Promise<void> {
  const file = await fs.open(path, false);
  const byte = new Uint8Array(1);
  await file.read(byte, offset);
  byte[0]! ^= 0x40;
  await file.write(byte, offset);
  await file.datasync();
  await file.close();
}

describe('recovery over several read windows', () => {
  it('replays writes cut by window ends and writes longer than a window', async () => {
    const fs = new FaultFs({ seed: 21 });
    const written = await writeLog(fs);
    const log = await SegmentedLog.open({ dir: '/log', fs, segmentBytes });
    for (const [g, entries] of written) {
      expect(digest(allEntries(log, g))).toEqual(digest(entries));
    }
    await log.close();
  });

  it('refuses a flipped byte in a record several windows in, naming its offset', async () => {
    const fs = new FaultFs({ seed: 22 });
    await writeLog(fs);
    const offset = 2 * logRecoveryReadBytes + 4321;
    await flipByte(fs, segment1, offset);
    const opening = SegmentedLog.open({ dir: '/log', fs, segmentBytes });
    await expect(opening).rejects.toBeInstanceOf(FlotillaError);
    const err = (await opening.catch((e: unknown) => e)) as FlotillaError;
    expect(err.code).toBe(ErrorCode.CORRUPT_LOG);
    const at = err.details?.offset as number;
    expect(at).toBeLessThanOrEqual(offset);
    expect(offset - at).toBeLessThan(64 * 1024);
  });

  it('reads the zero tail to the end of the segment: a stray byte there is zeroed', async () => {
    const fs = new FaultFs({ seed: 23 });
    const written = await writeLog(fs);
    const offset = segmentBytes - 99;
    await flipByte(fs, segment1, offset);
    const log = await SegmentedLog.open({ dir: '/log', fs, segmentBytes });
    for (const [g, entries] of written) {
      expect(digest(allEntries(log, g))).toEqual(digest(entries));
    }
    await log.close();
    const file = await fs.open(segment1, false);
    const byte = new Uint8Array(1);
    await file.read(byte, offset);
    await file.close();
    expect(byte[0]).toBe(0);
  });
});
