/**
 * The on-disk format of the shared log, besides the record frame itself (wasm/format.ts).
 *
 * HARD FORMAT: every layout in this file is written to disk. Changing one makes existing logs
 * unreadable; bump `logFormatVersion` (engine/limits.ts) instead.
 *
 * A log directory holds segment files named `<seq>.seg`, `seq` a 20-digit zero-padded decimal
 * counting up from 1 with no gaps (only the oldest segments are ever deleted). A segment is a
 * 32-byte header followed by records packed back to back from offset 32, then zeros up to the
 * file's preallocated size. Header (little-endian):
 *
 * | offset | size | field                                                  |
 * |-------:|-----:|--------------------------------------------------------|
 * |      0 |    8 | magic "FLOTLOG\0"                                      |
 * |      8 |    4 | format version (u32)                                   |
 * |     12 |    4 | header bytes (u32) = 32                                |
 * |     16 |    8 | seq (u64, low word first)                              |
 * |     24 |    4 | capacity: the file's size in bytes (u32)               |
 * |     28 |    4 | crc32c of bytes [0, 28)                                |
 *
 * Record payloads (the record header's group/term/index fields are listed beside each):
 * - EntryNormal / EntryConfChange: term, index = the entry's; payload = entry.data, unchanged.
 * - HardState: term = hard state term, index = commit; payload = vote (u32).
 * - SnapshotMarker: term, index = the snapshot's; payload = ConfState (below).
 * - CompactionPoint: index = compacted index, term = its term; payload empty.
 * - Truncation: index = first void index, term = 0; payload empty.
 * - LogWriteEnd: group 0, index = bytes of the write's records before it, term = their count;
 *   payload empty. Ends every write (one write = one fdatasync); recovery replays only writes
 *   that end with a matching one.
 *
 * ConfState: u32 counts of voters, votersOutgoing, learners, learnersNext; u8 autoLeave (0/1);
 * three zero bytes; then the node ids (u32 each) of the four lists in that order.
 */
import { crc32c } from '../../wasm/index.js';
import { logFormatVersion } from '../limits.js';
import type { ConfState } from '../raft/types.js';

/** Bytes of a segment header; records start at this offset. */
export const segmentHeaderBytes = 32;
/** The segment magic, "FLOTLOG\0". */
export const segmentMagic = Uint8Array.of(0x46, 0x4c, 0x4f, 0x54, 0x4c, 0x4f, 0x47, 0x00);
/** Suffix of a segment file. */
export const segmentSuffix = '.seg';
/** Suffix of a segment being created; renamed to `.seg` once complete and synced. */
export const segmentTempSuffix = '.seg.tmp';
/** Digits of the zero-padded sequence number in a segment's file name. */
const seqDigits = 20;
/** Bytes of a HardState record's payload (the vote). */
export const hardStatePayloadBytes = 4;
const confStateFixedBytes = 20;

/** File name of segment `seq`. */
export function segmentName(seq: number): string {
  return `${String(seq).padStart(seqDigits, '0')}${segmentSuffix}`;
}

/** The sequence number a segment file name carries, or undefined for any other name. */
export function parseSegmentName(name: string): number | undefined {
  if (name.length !== seqDigits + segmentSuffix.length || !name.endsWith(segmentSuffix)) {
    return undefined;
  }
  const digits = name.slice(0, seqDigits);
  if (!/^[0-9]+$/.test(digits)) return undefined;
  const seq = Number(digits);
  return Number.isSafeInteger(seq) && seq > 0 ? seq : undefined;
}

/** A segment header, decoded. */
export interface SegmentHeader {
  version: number;
  seq: number;
  capacity: number;
}

/** The header of segment `seq` whose file is `capacity` bytes long. */
export function encodeSegmentHeader(seq: number, capacity: number): Uint8Array {
  const out = new Uint8Array(segmentHeaderBytes);
  const view = new DataView(out.buffer);
  out.set(segmentMagic, 0);
  view.setUint32(8, logFormatVersion, true);
  view.setUint32(12, segmentHeaderBytes, true);
  view.setUint32(16, seq >>> 0, true);
  view.setUint32(20, Math.floor(seq / 2 ** 32), true);
  view.setUint32(24, capacity, true);
  view.setUint32(28, crc32c(out.subarray(0, 28)), true);
  return out;
}

/** Why a segment header failed to decode. */
export type SegmentHeaderProblem = 'magic' | 'version' | 'checksum' | 'layout';

/** Decodes a segment header, or says which check it failed (magic, then version, then crc). */
export function decodeSegmentHeader(
  buf: Uint8Array,
): SegmentHeader | { problem: SegmentHeaderProblem; version?: number } {
  if (buf.length < segmentHeaderBytes) return { problem: 'layout' };
  for (let i = 0; i < segmentMagic.length; i++) {
    if (buf[i] !== segmentMagic[i]) return { problem: 'magic' };
  }
  const view = new DataView(buf.buffer, buf.byteOffset, segmentHeaderBytes);
  const version = view.getUint32(8, true);
  if (version !== logFormatVersion) return { problem: 'version', version };
  if (view.getUint32(28, true) !== crc32c(buf.subarray(0, 28))) return { problem: 'checksum' };
  if (view.getUint32(12, true) !== segmentHeaderBytes) return { problem: 'layout' };
  const seq = view.getUint32(16, true) + view.getUint32(20, true) * 2 ** 32;
  return { version, seq, capacity: view.getUint32(24, true) };
}

/** Payloads of the votes below `voteCacheSize` (node ids are small), made once each. */
const voteCacheSize = 1024;
const votePayloads = new Array<Uint8Array | undefined>(voteCacheSize).fill(undefined);

/**
 * The payload of a HardState record: the vote. Every group writes one per append that moves its
 * commit index, so the payloads of small votes are made once and shared: the result is
 * read-only.
 */
export function encodeVote(vote: number): Uint8Array {
  const cacheable = vote >= 0 && vote < voteCacheSize;
  if (cacheable) {
    const cached = votePayloads[vote];
    if (cached !== undefined) return cached;
  }
  const out = new Uint8Array(hardStatePayloadBytes);
  new DataView(out.buffer).setUint32(0, vote, true);
  if (cacheable) votePayloads[vote] = out;
  return out;
}

/** The vote of a HardState payload, or undefined when the payload has the wrong size. */
export function decodeVote(payload: Uint8Array): number | undefined {
  if (payload.length !== hardStatePayloadBytes) return undefined;
  return new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0, true);
}

/** The payload of a SnapshotMarker record. */
export function encodeConfState(conf: ConfState): Uint8Array {
  const lists = [conf.voters, conf.votersOutgoing, conf.learners, conf.learnersNext];
  const ids = lists.reduce((n, l) => n + l.length, 0);
  const out = new Uint8Array(confStateFixedBytes + 4 * ids);
  const view = new DataView(out.buffer);
  for (let i = 0; i < lists.length; i++) view.setUint32(4 * i, lists[i]!.length, true);
  out[16] = conf.autoLeave ? 1 : 0;
  let at = confStateFixedBytes;
  for (const list of lists) {
    for (const id of list) {
      view.setUint32(at, id, true);
      at += 4;
    }
  }
  return out;
}

/** The ConfState of a SnapshotMarker payload, or undefined when the layout does not add up. */
export function decodeConfState(payload: Uint8Array): ConfState | undefined {
  if (payload.length < confStateFixedBytes) return undefined;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const counts = [0, 1, 2, 3].map((i) => view.getUint32(4 * i, true));
  const total = counts.reduce((n, c) => n + c, 0);
  if (payload.length !== confStateFixedBytes + 4 * total) return undefined;
  if (payload[16]! > 1 || payload[17] !== 0 || payload[18] !== 0 || payload[19] !== 0) {
    return undefined;
  }
  let at = confStateFixedBytes;
  const lists = counts.map((c) => {
    const ids: number[] = [];
    for (let k = 0; k < c; k++, at += 4) ids.push(view.getUint32(at, true));
    return ids;
  });
  return {
    voters: lists[0]!,
    votersOutgoing: lists[1]!,
    learners: lists[2]!,
    learnersNext: lists[3]!,
    autoLeave: payload[16] === 1,
  };
}
