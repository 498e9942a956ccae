/**
 * Reading entries back from a segment: one pread for a run of entries that lie back to back,
 * every record verified (CRC through the WASM kernel) and checked against what the index says
 * it is — the read side of the pair "CRC computed before a write, verified after a read".
 */
import {
  decodeRecords,
  recordGroup,
  recordIndex,
  recordPayload,
  recordTerm,
  recordType,
} from '../../wasm/index.js';
import { ErrorCode, FlotillaError } from '../errors.js';
import type { Entry, EntryType } from '../raft/types.js';
import { RecordType } from '../records.js';
import type { LogFile } from './fs.js';
import type { GroupState } from './group-state.js';

/** Where the reader finds a segment's file and name. */
export interface SegmentFiles {
  file(segment: number): LogFile;
  path(segment: number): string;
}

/**
 * Reads entries from..to-1 of a group while they lie back to back in one segment and fit in
 * `budget` bytes (the first one regardless, with `atLeastOne`); appends them to `out` and
 * returns how many. A record that fails verification throws CORRUPT_LOG.
 */
export function readEntryBlock(
  files: SegmentFiles,
  g: GroupState,
  range: { from: number; to: number; budget: number; atLeastOne: boolean },
  out: Entry[],
): number {
  const { from, to, budget, atLeastOne } = range;
  const index = g.index;
  const seq = index.segment(from);
  const start = index.offset(from);
  let end = start;
  let i = from;
  while (i < to && index.segment(i) === seq && index.offset(i) === end) {
    const len = index.length(i);
    if ((i > from || !atLeastOne) && end - start + len > budget) break;
    end += len;
    i++;
  }
  if (i === from) return 0;
  const buf = new Uint8Array(end - start);
  const path = files.path(seq);
  const fail = (at: number, what: string) =>
    new FlotillaError(
      ErrorCode.CORRUPT_LOG,
      `log segment ${path} is corrupt at offset ${at} (group ${g.id}): ${what}. Restore this ` +
        'node from a replica',
      { file: path, offset: at, group: g.id },
    );
  if (files.file(seq).readSync(buf, start) !== buf.length) throw fail(start, 'the file is short');
  const result = decodeRecords(buf);
  if (result.status !== 'ok' || result.count !== i - from) {
    throw fail(
      start + result.end,
      `a record fails verification (${result.reason ?? result.status})`,
    );
  }
  for (let k = 0; k < result.count; k++) {
    const o = result.offsets[k]!;
    const at = from + k;
    const type = recordType(buf, o);
    const term = recordTerm(buf, o);
    const matches =
      recordGroup(buf, o) === g.id &&
      recordIndex(buf, o) === at &&
      term === index.term(at) &&
      (type === RecordType.EntryNormal || type === RecordType.EntryConfChange);
    if (!matches) throw fail(start + o, `the record is not entry ${at} the index expects`);
    out.push({ term, index: at, type: type as EntryType, data: recordPayload(buf, o) });
  }
  return i - from;
}
