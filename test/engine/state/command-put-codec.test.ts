import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFlotillaError } from '../../../engine/errors.js';
import { keyBytesMax } from '../../../engine/limits.js';
import { decodeCommand, encodeCommand } from '../../../engine/state/commands.js';
import { encodeKey, encodeValue, packr, type Value } from '../../../engine/state/value-codec.js';

/** The bytes the general encoder writes for a sessionless put (the format of commands.ts). */
function generalPut(key: string | Uint8Array, value: Value): Uint8Array {
  return packr.pack([1, 1, null, encodeKey(key), encodeValue(value)]);
}

/** Whether `s` has no lone surrogate (it survives UTF-8 unchanged). */
function wellFormed(s: string): boolean {
  return Buffer.from(s, 'utf8').toString('utf8') === s;
}

const keys = fc.oneof(
  fc.string({ minLength: 1, maxLength: 40 }).filter(wellFormed),
  fc.uint8Array({ minLength: 1, maxLength: keyBytesMax }),
);
// Lengths around the bin 8/16/32 boundaries of the stored value (tag byte included).
const byteValues = fc
  .constantFrom(0, 1, 100, 254, 255, 256, 65_534, 65_535, 65_536, 70_000)
  .map((n) => new Uint8Array(n).fill(n & 0xff));
const modelValues = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true }),
  fc.string().filter(wellFormed),
  fc.boolean(),
  fc.constant(null),
  fc.bigInt(),
  fc.array(fc.integer(), { maxLength: 5 }),
  fc.dictionary(fc.string({ minLength: 1, maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
);

function decodeError(data: Uint8Array): string | undefined {
  try {
    decodeCommand(data);
  } catch (err) {
    return isFlotillaError(err) ? err.code : 'not a FlotillaError';
  }
  return undefined;
}

describe('the put fast path', () => {
  it('writes exactly the bytes of the general encoder and reads them back', () => {
    fc.assert(
      fc.property(keys, fc.oneof(byteValues, modelValues), (key, value) => {
        const bytes = encodeCommand({ type: 'put', key, value: value as Value });
        expect(Buffer.from(bytes).equals(Buffer.from(generalPut(key, value as Value)))).toBe(true);
        const decoded = decodeCommand(bytes);
        if (decoded.type !== 'put') throw new Error(`decoded a ${decoded.type}`);
        expect(decoded.session).toBeNull();
        expect(Buffer.from(decoded.key).equals(Buffer.from(encodeKey(key)))).toBe(true);
        const stored = Buffer.from(encodeValue(value as Value));
        expect(Buffer.from(decoded.stored).equals(stored)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('leaves other encodings of a put to the general decoder', () => {
    // A bin 16 header for a one-byte key: not what the encoder writes, still MessagePack.
    const wide = Uint8Array.from([0x95, 1, 1, 0xc0, 0xc5, 0, 1, 0x61, 0xc4, 2, 0, 7]);
    expect(decodeCommand(wide)).toEqual({
      type: 'put',
      key: Uint8Array.from([0x61]),
      stored: Uint8Array.from([0, 7]),
      session: null,
    });
    // A session makes it the general path's too.
    const withSession = packr.pack([1, 1, [Buffer.from('s'), 1, 5], Buffer.from('k'), [0, 1]]);
    expect(decodeError(withSession)).toBe('INVALID_ARGUMENT');
    const sessioned = packr.pack([1, 1, [Buffer.from('s'), 1, 5], Buffer.from('k'), Buffer.of(0)]);
    expect(decodeCommand(sessioned)).toMatchObject({ type: 'put', session: { seq: 1, time: 5 } });
  });

  it('rejects what the general decoder rejects', () => {
    const good = generalPut('k', Uint8Array.of(1, 2));
    // Truncated: the value's bin runs past the end.
    expect(decodeError(good.subarray(0, good.length - 1))).toBe('INVALID_ARGUMENT');
    // An unknown value tag.
    const badTag = Buffer.from(good);
    badTag[badTag.length - 3] = 9;
    expect(decodeError(badTag)).toBe('INVALID_ARGUMENT');
    // A key over the limit.
    const longKey = packr.pack([1, 1, null, new Uint8Array(keyBytesMax + 1), Buffer.of(0)]);
    expect(decodeError(longKey)).toBe('KEY_TOO_LARGE');
    // A MessagePack value that does not decode.
    const badPayload = packr.pack([1, 1, null, Buffer.from('k'), Buffer.of(1, 0xc1)]);
    expect(decodeError(badPayload)).toBe('INVALID_ARGUMENT');
  });
});
