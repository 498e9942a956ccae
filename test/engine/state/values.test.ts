import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { keyBytesMax } from '../../../engine/limits.js';
import {
  decodeValue,
  encodeKey,
  encodeKeyInto,
  encodeValue,
  type Value,
} from '../../../engine/state/value-codec.js';
import { openState, ShardFeeder } from './helpers.js';

/** What a value reads back as: bytes become Buffers, -0 becomes 0. */
function normalized(value: Value): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (typeof value === 'number') return Object.is(value, -0) ? 0 : value;
  if (value instanceof Date || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(normalized);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalized(v)]));
}

const objectKey = fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__');

const valueArb: fc.Arbitrary<Value> = fc.letrec<{ value: Value }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.double(),
    fc.integer(),
    fc.bigInt({ min: -(2n ** 100n), max: 2n ** 100n }),
    fc.string({ unit: 'binary' }),
    fc.date({ noInvalidDate: true }),
    fc.uint8Array({ maxLength: 16 }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(objectKey, tie('value'), { maxKeys: 4 }),
  ),
})).value;

describe('values', () => {
  it('every value type round-trips through a put and a get', () => {
    const f = new ShardFeeder(openState(), 1);
    fc.assert(
      fc.property(valueArb, (value) => {
        const { version } = f.apply({ type: 'put', key: 'k', value }) as { version: number };
        expect(f.state.get(1, 'k')).toEqual({ value: normalized(value), version });
      }),
      { numRuns: 300 },
    );
  });

  it('top-level bytes are stored raw and read back as a Buffer', () => {
    const f = new ShardFeeder(openState(), 1);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        f.apply({ type: 'put', key: 'b', value: bytes });
        const read = f.state.get(1, 'b')?.value;
        expect(Buffer.isBuffer(read)).toBe(true);
        expect(Buffer.compare(read as Buffer, bytes)).toBe(0);
        expect(encodeValue(bytes)[0]).toBe(0);
      }),
      { numRuns: 100 },
    );
  });

  it('encodes deterministically: equal values give equal bytes', () => {
    fc.assert(
      fc.property(valueArb, (value) => {
        const bytes = encodeValue(value);
        expect(Buffer.compare(encodeValue(structuredClone(value)), bytes)).toBe(0);
        expect(normalized(decodeValue(bytes) as Value)).toEqual(normalized(value));
      }),
      { numRuns: 200 },
    );
  });

  it('keys of any bytes come back from a scan unchanged', () => {
    const f = new ShardFeeder(openState(), 3);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 32 }), (key) => {
        f.apply({ type: 'put', key, value: 1 });
        const keys = [...f.state.scan(3, { prefix: key }, { limit: 1 })].map((e) => e.key);
        expect(Buffer.compare(keys[0]!, key)).toBe(0);
      }),
      { numRuns: 100 },
    );
  });
});

describe('keys', () => {
  /** The error code a call throws, or 'ok' with the bytes it produced. */
  function outcome(f: () => Uint8Array): { code: string } | { bytes: Buffer } {
    try {
      return { bytes: Buffer.from(f()) };
    } catch (err) {
      return { code: (err as { code: string }).code };
    }
  }

  const keyArb = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 64 }),
    fc.string({ unit: 'grapheme', minLength: 1300, maxLength: 1400 }),
    fc.integer({ min: keyBytesMax - 2, max: keyBytesMax + 2 }).map((n) => 'k'.repeat(n)),
    fc.integer({ min: 1332, max: 1336 }).map((n) => '€'.repeat(n)),
    fc.uint8Array({ maxLength: 16 }),
    fc.constantFrom('\ud800', 'a\udfff', ''),
  );

  it('encodeKeyInto writes the bytes and throws the errors of encodeKey', () => {
    const target = Buffer.alloc(4 + keyBytesMax);
    fc.assert(
      fc.property(keyArb, (key) => {
        const into = outcome(() => target.subarray(4, 4 + encodeKeyInto(key, target, 4)));
        expect(into).toEqual(outcome(() => encodeKey(key)));
      }),
    );
  });
});
