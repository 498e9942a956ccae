import { describe, expect, it } from 'vitest';
import { crc32c } from '../../wasm/reference/crc32c.js';
import { decodeRecords, encodeRecords } from '../../wasm/reference/framing.js';
import { xxhash32 } from '../../wasm/reference/xxhash32.js';

const ascii = (s: string) => new TextEncoder().encode(s);

describe('reference crc32c', () => {
  it('matches the check value of the Castagnoli polynomial', () => {
    expect(crc32c(ascii('123456789'))).toBe(0xe3069283);
  });

  it('matches the iSCSI test patterns (RFC 3720 B.4)', () => {
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
  });

  it('chains: crc(b, crc(a)) equals crc(a ‖ b)', () => {
    const a = ascii('12345');
    const b = ascii('6789');
    expect(crc32c(b, crc32c(a))).toBe(0xe3069283);
  });
});

describe('reference xxhash32', () => {
  it('matches published vectors', () => {
    expect(xxhash32(new Uint8Array(0))).toBe(0x02cc5d05);
    expect(xxhash32(ascii('a'))).toBe(0x550d7456);
    expect(xxhash32(ascii('abc'))).toBe(0x32d153ff);
    expect(xxhash32(ascii('Nobody inspects the spammish repetition'))).toBe(0xe2293b2f);
  });
});

describe('reference framing', () => {
  it('round-trips records and reports a clean end', () => {
    const buf = encodeRecords([
      { type: 1, group: 7, term: 2 ** 40 + 3, index: 9, payload: ascii('hello') },
      { type: 3, group: 0xffffffff, term: 1, index: 2 ** 52, payload: new Uint8Array(0) },
    ]);
    const result = decodeRecords(buf);
    expect(result.status).toBe('ok');
    expect(result.count).toBe(2);
    expect(Array.from(result.offsets)).toEqual([0, 37]);
    expect(result.end).toBe(buf.length);
  });
});
