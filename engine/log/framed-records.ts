/**
 * Entries that arrived already framed: a follower receives the leader's entries as the log's own
 * CRC-framed records (engine/transport/codec.ts verifies every checksum when it decodes a frame)
 * and its log appends those bytes as they are instead of framing the entries again.
 *
 * The link from an entry to its record is kept beside the entry, not in it, so that the Raft
 * data contract (engine/raft/types.ts) stays as it is: the Raft core passes the very entry
 * objects it stepped on to its Ready, and the log looks them up here. The map is weak, so the
 * record bytes (a view of the received frame, which the entry's `data` already holds) live no
 * longer than the entry.
 */
import { recordGroup, recordHeaderBytes, recordIndex } from '../../wasm/index.js';
import { assert } from '../assert.js';
import type { Entry, GroupId } from '../raft/types.js';

const framed = new WeakMap<Entry, Uint8Array>();
/** Whether any record was ever remembered: until then no lookup is needed (a leader's log). */
let remembered = false;

/**
 * Records that `record` (one whole framed record whose CRC was verified) is `entry` of `group`
 * as the log frames it. The caller decoded the entry from that record and verified its checksum.
 */
export function rememberFramedRecord(entry: Entry, group: GroupId, record: Uint8Array): void {
  assert(record.length === recordHeaderBytes + entry.data.length, 'a framed record is whole');
  assert(recordGroup(record, 0) === group, 'a framed record belongs to its group');
  assert(recordIndex(record, 0) === entry.index, 'a framed record has its entry index');
  framed.set(entry, record);
  remembered = true;
}

/** The verified framed record of `entry`, if it arrived as one. */
export function framedRecordOf(entry: Entry): Uint8Array | undefined {
  return remembered ? framed.get(entry) : undefined;
}
