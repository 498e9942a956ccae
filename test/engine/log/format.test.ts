import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeConfState,
  decodeSegmentHeader,
  decodeVote,
  encodeConfState,
  encodeSegmentHeader,
  encodeVote,
  parseSegmentName,
  segmentName,
} from '../../../engine/log/format.js';

describe('log format', () => {
  it('names segments with 20 zero-padded digits and parses only such names', () => {
    expect(segmentName(42)).toBe('00000000000000000042.seg');
    expect(parseSegmentName('00000000000000000042.seg')).toBe(42);
    for (const bad of ['42.seg', '0000000000000000004x.seg', '00000000000000000042.seg.tmp']) {
      expect(parseSegmentName(bad)).toBeUndefined();
    }
    expect(parseSegmentName('00000000000000000000.seg')).toBeUndefined();
  });

  it('round-trips a segment header and rejects damage with the failed check', () => {
    const header = encodeSegmentHeader(2 ** 40 + 3, 64 * 1024 * 1024);
    expect(decodeSegmentHeader(header)).toEqual({
      version: 1,
      seq: 2 ** 40 + 3,
      capacity: 64 * 1024 * 1024,
    });
    const damaged = (at: number) => {
      const copy = header.slice();
      copy[at] = copy[at]! ^ 1;
      return decodeSegmentHeader(copy);
    };
    expect(damaged(0)).toEqual({ problem: 'magic' });
    expect(damaged(8)).toEqual({ problem: 'version', version: 0 });
    expect(damaged(17)).toEqual({ problem: 'checksum' });
    expect(decodeSegmentHeader(header.subarray(0, 10))).toEqual({ problem: 'layout' });
  });

  it('round-trips votes and memberships, and rejects malformed ones', () => {
    expect(decodeVote(encodeVote(0xfffffffe))).toBe(0xfffffffe);
    expect(decodeVote(new Uint8Array(3))).toBeUndefined();
    const ids = fc.array(fc.integer({ min: 1, max: 0xffffffff }), { maxLength: 7 });
    fc.assert(
      fc.property(ids, ids, ids, ids, fc.boolean(), (a, b, c, d, autoLeave) => {
        const conf = { voters: a, votersOutgoing: b, learners: c, learnersNext: d, autoLeave };
        expect(decodeConfState(encodeConfState(conf))).toEqual(conf);
      }),
    );
    const encoded = encodeConfState({
      voters: [1, 2],
      votersOutgoing: [],
      learners: [],
      learnersNext: [],
      autoLeave: false,
    });
    expect(decodeConfState(encoded.subarray(0, encoded.length - 1))).toBeUndefined();
    const flagged = encoded.slice();
    flagged[16] = 2;
    expect(decodeConfState(flagged)).toBeUndefined();
  });
});
