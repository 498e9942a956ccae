/**
 * The corruption matrix, on real files: damage to every region of a segment, and to the set of
 * segments, gives the documented outcome — the log opens with its torn tail dropped, or refuses
 * with CORRUPT_LOG naming file, offset and group, or with VERSION_MISMATCH.
 */
import {
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, FlotillaError } from '../../../engine/errors.js';
import { segmentHeaderBytes } from '../../../engine/log/format.js';
import { SegmentedLog } from '../../../engine/log/segmented-log.js';
import { RecordType } from '../../../engine/records.js';
import {
  crc32c,
  decodeRecords,
  recordGroup,
  recordHeaderBytes,
  recordIndex,
  recordType,
} from '../../../wasm/index.js';
import { allEntries, ents, summary } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'flotilla-corrupt-'));
const base = join(root, 'base');
const segmentBytes = 16 * 1024;
const calls = 60;
let cases = 0;

afterAll(() => rmSync(root, { recursive: true, force: true }));

beforeAll(async () => {
  const log = await SegmentedLog.open({ dir: base, segmentBytes });
  for (let c = 0; c < calls; c++) {
    const writes = [1, 2, 3].map((g) => ({ group: g, entries: ents(g, c + 1, c + 1, 1, 200) }));
    await log.append(writes);
  }
  await log.close();
});

interface Rec {
  offset: number;
  type: number;
  group: number;
  index: number;
  bytes: number;
}

function segmentFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith('.seg'))
    .sort();
}

function recordsOf(path: string): Rec[] {
  const buf = new Uint8Array(readFileSync(path));
  const body = buf.subarray(segmentHeaderBytes);
  const result = decodeRecords(body);
  return Array.from(result.offsets.subarray(0, result.count), (o, k) => ({
    offset: segmentHeaderBytes + o,
    type: recordType(body, o),
    group: recordGroup(body, o),
    index: recordIndex(body, o),
    bytes: (k + 1 < result.count ? result.offsets[k + 1]! : result.end) - o,
  }));
}

/** A fresh copy of the base log, with the names of its segments that hold records. */
function copy(): { dir: string; withRecords: string[]; all: string[] } {
  const dir = join(root, `case-${++cases}`);
  cpSync(base, dir, { recursive: true });
  const all = segmentFiles(dir);
  const withRecords = all.filter((n) => recordsOf(join(dir, n)).length > 0);
  return { dir, withRecords, all };
}

function flip(path: string, offset: number): void {
  const buf = readFileSync(path);
  buf[offset] = buf[offset]! ^ 0x5a;
  writeFileSync(path, buf);
}

async function openError(dir: string): Promise<FlotillaError> {
  try {
    const log = await SegmentedLog.open({ dir, segmentBytes });
    await log.close();
  } catch (err) {
    expect(err).toBeInstanceOf(FlotillaError);
    return err as FlotillaError;
  }
  return expect.fail('the log opened');
}

async function expectEntries(dir: string, lastIndex: number): Promise<void> {
  const log = await SegmentedLog.open({ dir, segmentBytes });
  for (const g of [1, 2, 3]) {
    expect(summary(allEntries(log, g))).toEqual(summary(ents(g, 1, lastIndex, 1, 200)));
  }
  await log.append([{ group: 1, entries: ents(1, lastIndex + 1, lastIndex + 1, 1, 200) }]);
  await log.close();
  const again = await SegmentedLog.open({ dir, segmentBytes });
  expect(again.lastIndex(1)).toBe(lastIndex + 1);
  await again.close();
}

describe('corruption matrix', () => {
  it('the undamaged log spans several segments and opens with every entry', async () => {
    const { dir, withRecords, all } = copy();
    expect(withRecords.length).toBeGreaterThanOrEqual(3);
    expect(all.length).toBe(withRecords.length + 1);
    await expectEntries(dir, calls);
  });

  it('a flipped byte in a segment header magic refuses with CORRUPT_LOG at offset 0', async () => {
    const { dir, withRecords } = copy();
    const file = join(dir, withRecords[1]!);
    flip(file, 3);
    const err = await openError(dir);
    expect(err.code).toBe(ErrorCode.CORRUPT_LOG);
    expect(err.details).toMatchObject({ file, offset: 0 });
    expect(err.message).toMatch(/header/);
  });

  it('a flipped byte in a segment header (sequence) fails its checksum: CORRUPT_LOG', async () => {
    const { dir, withRecords } = copy();
    const file = join(dir, withRecords[0]!);
    flip(file, 17);
    const err = await openError(dir);
    expect(err.code).toBe(ErrorCode.CORRUPT_LOG);
    expect(err.details).toMatchObject({ file, offset: 0 });
  });

  it('a segment of a future format version refuses with VERSION_MISMATCH', async () => {
    const { dir, withRecords } = copy();
    const file = join(dir, withRecords[0]!);
    const buf = readFileSync(file);
    buf.writeUInt32LE(2, 8);
    buf.writeUInt32LE(crc32c(buf.subarray(0, 28)), 28);
    writeFileSync(file, buf);
    const err = await openError(dir);
    expect(err.code).toBe(ErrorCode.VERSION_MISMATCH);
    expect(err.details.file).toBe(file);
    expect(err.message).toMatch(/version 2/);
  });

  it("a flipped byte in the first record's header: CORRUPT_LOG at its offset", async () => {
    const { dir, withRecords } = copy();
    const file = join(dir, withRecords[0]!);
    flip(file, segmentHeaderBytes + 4);
    const err = await openError(dir);
    expect(err.code).toBe(ErrorCode.CORRUPT_LOG);
    expect(err.details).toMatchObject({ file, offset: segmentHeaderBytes });
  });

  it('a flipped payload byte mid-log: CORRUPT_LOG naming file, offset, group', async () => {
    const { dir, withRecords } = copy();
    const file = join(dir, withRecords[1]!);
    const recs = recordsOf(file).filter((r) => r.type === RecordType.EntryNormal);
    const victim = recs[Math.floor(recs.length / 2)]!;
    flip(file, victim.offset + 32 + 50);
    const err = await openError(dir);
    expect(err.code).toBe(ErrorCode.CORRUPT_LOG);
    expect(err.details.file).toBe(file);
    expect(err.details.group).toBe(victim.group);
    expect(err.details.offset).toBe(victim.offset);
    expect(err.message).toMatch(/restore this node from a replica/);
  });

  it('a flipped byte in the last record drops the last write and opens', async () => {
    const { dir, withRecords } = copy();
    const file = join(dir, withRecords[withRecords.length - 1]!);
    const recs = recordsOf(file);
    const last = recs[recs.length - 1]!;
    expect(last.type).toBe(RecordType.LogWriteEnd);
    flip(file, last.offset + 20);
    await expectEntries(dir, calls - 1);
  });

  it('a torn last write (its end never reached the disk) is dropped and zeroed', async () => {
    const { dir, withRecords } = copy();
    const file = join(dir, withRecords[withRecords.length - 1]!);
    const recs = recordsOf(file);
    const end = recs[recs.length - 1]!;
    const buf = readFileSync(file);
    buf.fill(0, end.offset - 300, end.offset + end.bytes);
    writeFileSync(file, buf);
    await expectEntries(dir, calls - 1);
  });

  it('garbage after the last write is a torn write: the log opens and zeroes it', async () => {
    const { dir, withRecords } = copy();
    const file = join(dir, withRecords[withRecords.length - 1]!);
    const recs = recordsOf(file);
    const end = recs[recs.length - 1]!.offset + recs[recs.length - 1]!.bytes;
    const buf = readFileSync(file);
    for (let i = 0; i < 500; i++) buf[end + i] = (i * 131 + 7) & 0xff;
    writeFileSync(file, buf);
    const log = await SegmentedLog.open({ dir, segmentBytes });
    expect(log.lastIndex(2)).toBe(calls);
    await log.close();
    expect(
      readFileSync(file)
        .subarray(end, end + 500)
        .every((b) => b === 0),
    ).toBe(true);
  });

  it('a damaged write followed by a complete one in the last segment is corruption', async () => {
    const { dir, withRecords } = copy();
    const file = join(dir, withRecords[withRecords.length - 1]!);
    const ends = recordsOf(file).filter((r) => r.type === RecordType.LogWriteEnd);
    expect(ends.length).toBeGreaterThan(2);
    const victim = ends[ends.length - 2]!;
    flip(file, victim.offset - 10);
    const err = await openError(dir);
    expect(err.code).toBe(ErrorCode.CORRUPT_LOG);
    expect(err.details.file).toBe(file);
    expect(err.message).toMatch(/complete write/);
  });

  it('a truncated segment refuses with CORRUPT_LOG at the cut', async () => {
    const { dir, withRecords } = copy();
    const file = join(dir, withRecords[withRecords.length - 1]!);
    truncateSync(file, 5000);
    const err = await openError(dir);
    expect(err.code).toBe(ErrorCode.CORRUPT_LOG);
    expect(err.details).toMatchObject({ file, offset: 5000 });
    expect(err.message).toMatch(/truncated/);
  });

  it('a missing segment in the sequence refuses with CORRUPT_LOG naming it', async () => {
    const { dir, withRecords } = copy();
    const file = join(dir, withRecords[1]!);
    rmSync(file);
    const err = await openError(dir);
    expect(err.code).toBe(ErrorCode.CORRUPT_LOG);
    expect(err.details).toMatchObject({ file, offset: 0 });
    expect(err.message).toMatch(/missing/);
  });

  it('a segment whose records vanished (zeroed) refuses with CORRUPT_LOG naming it', async () => {
    const { dir, withRecords } = copy();
    const file = join(dir, withRecords[1]!);
    const buf = readFileSync(file);
    buf.fill(0, segmentHeaderBytes);
    writeFileSync(file, buf);
    const err = await openError(dir);
    expect(err.code).toBe(ErrorCode.CORRUPT_LOG);
    expect(err.details).toMatchObject({ file, offset: segmentHeaderBytes });
    expect(err.message).toMatch(/writes were lost/);
  });

  it('a missing oldest segment still needed refuses, naming the group', async () => {
    const { dir, withRecords } = copy();
    rmSync(join(dir, withRecords[0]!));
    const err = await openError(dir);
    expect(err.code).toBe(ErrorCode.CORRUPT_LOG);
    expect(err.details.group).toBe(1);
    expect(err.message).toMatch(/entry 1 of group 1 is missing/);
  });

  it('any single flipped byte: opens with at most the last write lost, or refuses', async () => {
    const layout = copy();
    const sizes = layout.all.map((n) => readFileSync(join(layout.dir, n)).length);
    const lastFile = layout.withRecords[layout.withRecords.length - 1]!;
    const ends = recordsOf(join(layout.dir, lastFile)).filter(
      (r) => r.type === RecordType.LogWriteEnd,
    );
    const lastWriteEnd = ends[ends.length - 1]!.offset + recordHeaderBytes;
    const lastWriteStart = ends[ends.length - 2]!.offset + recordHeaderBytes;
    await fc.assert(
      fc.asyncProperty(
        fc
          .nat({ max: layout.all.length - 1 })
          .chain((k) => fc.tuple(fc.constant(k), fc.nat({ max: sizes[k]! - 1 }))),
        async ([k, offset]) => {
          const { dir } = copy();
          const name = layout.all[k]!;
          flip(join(dir, name), offset);
          let opened: SegmentedLog | undefined;
          let failure: unknown;
          try {
            opened = await SegmentedLog.open({ dir, segmentBytes });
          } catch (err) {
            failure = err;
          }
          const inLastFile = name === lastFile;
          const header = offset < segmentHeaderBytes;
          const inLastWrite = inLastFile && offset >= lastWriteStart && offset < lastWriteEnd;
          const afterLog =
            (inLastFile && offset >= lastWriteEnd) ||
            (!header && !layout.withRecords.includes(name));
          if (header || !(inLastWrite || afterLog)) {
            expect(opened).toBeUndefined();
            expect(failure).toBeInstanceOf(FlotillaError);
            const code = (failure as FlotillaError).code;
            expect([ErrorCode.CORRUPT_LOG, ErrorCode.VERSION_MISMATCH]).toContain(code);
          } else {
            expect(failure).toBeUndefined();
            const last = inLastWrite ? calls - 1 : calls;
            for (const g of [1, 2, 3]) expect(opened!.lastIndex(g)).toBe(last);
            expect(summary(allEntries(opened!, 2))).toEqual(summary(ents(2, 1, last, 1, 200)));
            await opened!.close();
          }
          rmSync(dir, { recursive: true, force: true });
        },
      ),
      { numRuns: 120 },
    );
  });
});
