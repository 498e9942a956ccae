import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { framedRecordOf } from '../../../engine/log/framed-records.js';
import { SegmentedLog } from '../../../engine/log/segmented-log.js';
import { type Entry, type Message, MessageType } from '../../../engine/raft/types.js';
import { decodeFrame, encodeRaftFrame } from '../../../engine/transport/codec.js';
import { encodeRecords } from '../../../wasm/index.js';
import { allEntries, ents, summary } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'flotilla-framed-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function append(group: number, entries: Entry[]): Message {
  return {
    type: MessageType.App,
    group,
    from: 1,
    to: 2,
    term: 1,
    logTerm: 1,
    index: entries[0]!.index - 1,
    entries,
    commit: 0,
    reject: false,
    rejectHint: 0,
    logTermHint: 0,
  };
}

/** The entries of `msgs` as a follower receives them: decoded from the leader's frame. */
function received(msgs: Message[]): Entry[][] {
  const decoded = decodeFrame(encodeRaftFrame(1, 2, msgs));
  if (!decoded.ok || decoded.frame.kind !== 'raft') throw new Error('the frame does not decode');
  return decoded.frame.messages.map((m) => m.entries);
}

function concat(parts: Uint8Array[]): Buffer {
  return Buffer.concat(parts.map((p) => Buffer.from(p)));
}

describe('entries that arrive framed', () => {
  it('keep the verified record bytes the leader framed', () => {
    const [got] = received([append(3, ents(3, 5, 7, 1, 40))]);
    for (const e of got!) {
      const record = framedRecordOf(e);
      expect(record).toBeDefined();
      expect(Buffer.from(record!)).toEqual(
        Buffer.from(encodeRecords([{ ...e, group: 3, payload: e.data }])),
      );
    }
    // Entries made locally have no framed record: the log frames them itself.
    expect(framedRecordOf(ents(3, 1, 1, 1)[0]!)).toBeUndefined();
  });

  it('are written to the log byte for byte, beside entries the log frames itself', async () => {
    const dir = join(root, 'mixed');
    const log = await SegmentedLog.open({ dir, cacheBytesMax: 0 });
    const [a, b] = received([append(1, ents(1, 1, 3, 1, 50)), append(2, ents(2, 1, 2, 1, 70))]);
    const local = ents(4, 1, 2, 1, 30);
    await log.append([
      { group: 1, entries: a! },
      { group: 4, entries: local },
      { group: 2, entries: b! },
    ]);
    expect(summary(allEntries(log, 1))).toEqual(summary(ents(1, 1, 3, 1, 50)));
    expect(summary(allEntries(log, 2))).toEqual(summary(ents(2, 1, 2, 1, 70)));
    expect(summary(allEntries(log, 4))).toEqual(summary(local));
    await log.close();
    const segment = readdirSync(dir).find((f) => f.endsWith('.seg'))!;
    const bytes = readFileSync(join(dir, segment));
    // The received records and the locally framed ones follow each other in one write.
    const records = [...a!, ...local, ...b!].map((e) => {
      const framed = framedRecordOf(e);
      if (framed !== undefined) return framed;
      return encodeRecords([{ ...e, group: 4, payload: e.data }]).slice();
    });
    expect(bytes.includes(concat(records))).toBe(true);
    // A reopened log recovers them (every CRC checked again).
    const again = await SegmentedLog.open({ dir });
    expect(summary(allEntries(again, 1))).toEqual(summary(ents(1, 1, 3, 1, 50)));
    expect(summary(allEntries(again, 2))).toEqual(summary(ents(2, 1, 2, 1, 70)));
    expect(summary(allEntries(again, 4))).toEqual(summary(local));
    await again.close();
  });
});
