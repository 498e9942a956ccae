import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFlotillaError } from '../../engine/errors.js';
import { keyBytesMax } from '../../engine/limits.js';
import { hashTag, keyBytes } from '../../shards/keys.js';
import { evenRanges, hashSpace, keyHash, rangeIndexOf } from '../../shards/partition.js';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe('hash tags', () => {
  it('hash only the tag between the first { and the next }', () => {
    expect(text(hashTag(bytes('{user1}.name')))).toBe('user1');
    expect(text(hashTag(bytes('a{b}c{d}')))).toBe('b');
    expect(text(hashTag(bytes('x{y{z}w')))).toBe('y{z');
  });

  it('hash the whole key when there is no tag or the tag is empty', () => {
    expect(text(hashTag(bytes('plain')))).toBe('plain');
    expect(text(hashTag(bytes('{}abc')))).toBe('{}abc');
    expect(text(hashTag(bytes('open{only')))).toBe('open{only');
  });

  it('place keys that share a tag in the same shard', () => {
    const starts = evenRanges(256).map((r) => r.start);
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string(), fc.string(), (tag, a, b) => {
        fc.pre(!tag.includes('}'));
        const ka = keyHash(bytes(`${a.replaceAll('{', '')}{${tag}}${b}`));
        const kb = keyHash(bytes(`{${tag}}${b}${a}`));
        expect(rangeIndexOf(starts, ka)).toBe(rangeIndexOf(starts, kb));
      }),
    );
  });
});

describe('keys', () => {
  it('accept strings and byte arrays', () => {
    const encoded = keyBytes('é');
    expect(encoded).toBeInstanceOf(Uint8Array);
    expect([...encoded]).toEqual([0xc3, 0xa9]);
    expect(keyBytes(Uint8Array.of(0, 1))).toEqual(Uint8Array.of(0, 1));
  });

  it('reject empty, oversized and non-key values with typed errors', () => {
    const codeOf = (k: unknown) => {
      try {
        keyBytes(k);
        return 'accepted';
      } catch (err) {
        return isFlotillaError(err) ? err.code : 'untyped';
      }
    };
    expect(codeOf('')).toBe('INVALID_ARGUMENT');
    expect(codeOf(undefined)).toBe('INVALID_ARGUMENT');
    expect(codeOf(42)).toBe('INVALID_ARGUMENT');
    expect(codeOf(null)).toBe('INVALID_ARGUMENT');
    expect(codeOf('k'.repeat(keyBytesMax + 1))).toBe('KEY_TOO_LARGE');
    expect(codeOf('k'.repeat(keyBytesMax))).toBe('accepted');
    expect(codeOf('lone \ud800 surrogate')).toBe('INVALID_ARGUMENT');
  });
});

describe('ranges', () => {
  it('tile the hash space without gaps or overlap', () => {
    for (const n of [1, 2, 3, 7, 256, 10_000]) {
      const ranges = evenRanges(n);
      expect(ranges[0]!.start).toBe(0);
      expect(ranges.at(-1)!.end).toBe(hashSpace);
      for (let i = 1; i < n; i++) expect(ranges[i]!.start).toBe(ranges[i - 1]!.end);
    }
  });

  it('find the range holding a hash', () => {
    const ranges = evenRanges(7);
    const starts = ranges.map((r) => r.start);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: hashSpace - 1 }), (h) => {
        const r = ranges[rangeIndexOf(starts, h)]!;
        expect(h >= r.start && h < r.end).toBe(true);
      }),
    );
  });
});
