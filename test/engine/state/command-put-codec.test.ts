import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFlotillaError } from '../../../engine/errors.js';
import { keyBytesMax } from '../../../engine/limits.js';
import {
  type CommandResult,
  decodeCommand,
  decodeResult,
  encodeCommand,
  encodeResult,
  type Session,
} from '../../../engine/state/commands.js';
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

/** The bytes the general encoder writes for a put with a session. */
function generalSessionPut(key: string | Uint8Array, value: Value, session: Session): Uint8Array {
  const id = typeof session.id === 'string' ? Buffer.from(session.id, 'utf8') : session.id;
  const s = [id, session.seq, session.time];
  return packr.pack([1, 1, s, encodeKey(key), encodeValue(value)]);
}

describe('the put fast path with a session', () => {
  const ids = fc.oneof(
    fc.string({ minLength: 1, maxLength: 20 }).filter(wellFormed),
    fc.uint8Array({ minLength: 1, maxLength: 64 }),
  );
  // Around the fixint/uint 8/16/32 and the uint 32/float 64 boundaries.
  const seqs = fc.oneof(
    fc.constantFrom(1, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32),
    fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  );
  const times = fc.oneof(
    fc.constantFrom(0, -0, 5, 2 ** 32 - 1, 2 ** 32, 1_795_424_539_785),
    fc.double({ min: 0, max: 1e15, noNaN: true }),
    fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    fc.double({ min: -1e15, max: 0, noNaN: true }),
    fc.integer({ min: -(2 ** 40), max: -1 }),
  );

  it('writes exactly the bytes of the general encoder and reads them back', () => {
    fc.assert(
      fc.property(keys, byteValues, ids, seqs, times, (key, value, id, seq, time) => {
        const session = { id, seq, time };
        const bytes = encodeCommand({ type: 'put', key, value, session });
        const general = generalSessionPut(key, value, session);
        expect(Buffer.from(bytes).equals(Buffer.from(general))).toBe(true);
        const decoded = decodeCommand(bytes);
        if (decoded.type !== 'put') throw new Error(`decoded a ${decoded.type}`);
        const sessionId = typeof id === 'string' ? Buffer.from(id, 'utf8') : id;
        expect(Buffer.from(decoded.session!.id).equals(Buffer.from(sessionId))).toBe(true);
        expect(decoded.session!.seq).toBe(seq);
        // MessagePack has no negative zero: -0 reads back as 0, on either path.
        expect(decoded.session!.time).toBe(time + 0);
        expect(Buffer.from(decoded.key).equals(Buffer.from(encodeKey(key)))).toBe(true);
        expect(Buffer.from(decoded.stored).equals(Buffer.from(encodeValue(value)))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('rejects a bad session as the general decoder does', () => {
    const put = (session: unknown[]) => packr.pack([1, 1, session, Buffer.from('k'), Buffer.of(0)]);
    expect(decodeError(put([Buffer.alloc(0), 1, 5]))).toBe('INVALID_ARGUMENT');
    expect(decodeError(put([Buffer.alloc(65), 1, 5]))).toBe('INVALID_ARGUMENT');
    expect(decodeError(put([Buffer.from('s'), 0, 5]))).toBe('INVALID_ARGUMENT');
    expect(decodeError(put([Buffer.from('s'), 1.5, 5]))).toBe('INVALID_ARGUMENT');
    expect(decodeError(put([Buffer.from('s'), 1, Number.POSITIVE_INFINITY]))).toBe(
      'INVALID_ARGUMENT',
    );
    expect(decodeError(put(['s', 1, 5]))).toBe('INVALID_ARGUMENT');
    // A negative time: not a shape the fast path reads, still a valid command.
    expect(decodeError(put([Buffer.from('s'), 1, -5]))).toBeUndefined();
    // Truncated inside the session.
    const good = put([Buffer.from('s'), 300, 1_795_424_539_785.5]);
    expect(decodeError(good.subarray(0, 10))).toBe('INVALID_ARGUMENT');
  });
});

describe('put results', () => {
  it('are written exactly as the general encoder writes them, and read back', () => {
    const versions = fc.oneof(
      fc.constantFrom(0, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32),
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    );
    fc.assert(
      fc.property(versions, (version) => {
        const result: CommandResult = { type: 'put', version };
        const bytes = encodeResult(result);
        expect(Buffer.from(bytes).equals(Buffer.from(packr.pack(result)))).toBe(true);
        expect(decodeResult(bytes)).toEqual(result);
      }),
    );
  });

  it('leave other results to the general codec', () => {
    const results: CommandResult[] = [
      { type: 'delete', existed: true },
      { type: 'cas', ok: false, version: 3 },
      { type: 'error', code: 'WRONG_TYPE', message: 'no' },
    ];
    for (const r of results) {
      expect(Buffer.from(encodeResult(r)).equals(Buffer.from(packr.pack(r)))).toBe(true);
      expect(decodeResult(encodeResult(r))).toEqual(r);
    }
  });
});
