import { describe, expect, it } from 'vitest';
import { allImpls, ascii, shifted } from './impls.js';

// RFC 3720 B.4: a SCSI read (10) command PDU.
const iscsiReadPdu = Uint8Array.from([
  0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
  0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
]);

describe.each(allImpls)('known vectors: $name', (impl) => {
  it('crc32c matches the check value of the Castagnoli polynomial', () => {
    expect(impl.crc32c(ascii('123456789'))).toBe(0xe3069283);
    expect(impl.crc32c(new Uint8Array(0))).toBe(0);
  });

  it('crc32c matches the iSCSI test patterns (RFC 3720 B.4)', () => {
    expect(impl.crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(impl.crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(impl.crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(impl.crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
    expect(impl.crc32c(iscsiReadPdu)).toBe(0xd9963a56);
  });

  it('crc32c chains: crc(b, crc(a)) equals crc(a ‖ b), at any split', () => {
    const data = ascii('123456789');
    for (let split = 0; split <= data.length; split++) {
      const head = impl.crc32c(data.subarray(0, split));
      expect(impl.crc32c(data.subarray(split), head)).toBe(0xe3069283);
    }
  });

  it('crc32c reads views at odd offsets', () => {
    expect(impl.crc32c(shifted(ascii('123456789'), 3))).toBe(0xe3069283);
    expect(impl.crc32c(shifted(iscsiReadPdu, 1))).toBe(0xd9963a56);
  });

  it('xxHash32 matches published vectors', () => {
    expect(impl.hashKey(new Uint8Array(0))).toBe(0x02cc5d05);
    expect(impl.hashKey(ascii('a'))).toBe(0x550d7456);
    expect(impl.hashKey(ascii('abc'))).toBe(0x32d153ff);
    expect(impl.hashKey(ascii('Nobody inspects the spammish repetition'))).toBe(0xe2293b2f);
  });

  it('xxHash32 batches give the same vectors, in order', () => {
    const keys = ['', 'a', 'abc', 'Nobody inspects the spammish repetition'].map(ascii);
    expect(Array.from(impl.hashKeys(keys))).toEqual([
      0x02cc5d05, 0x550d7456, 0x32d153ff, 0xe2293b2f,
    ]);
    expect(impl.hashKeys([]).length).toBe(0);
  });

  it('frames a record exactly as format.ts lays it out', () => {
    const buf = impl.encodeRecords([
      { type: 7, group: 0x01020304, term: 2 ** 32 + 5, index: 6, payload: ascii('hi') },
    ]);
    const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
    expect(buf.length).toBe(34);
    expect(view.getUint32(4, true)).toBe(2);
    expect(Array.from(buf.subarray(8, 12))).toEqual([7, 0, 0, 0]);
    expect(view.getUint32(12, true)).toBe(0x01020304);
    expect([view.getUint32(16, true), view.getUint32(20, true)]).toEqual([5, 1]);
    expect([view.getUint32(24, true), view.getUint32(28, true)]).toEqual([6, 0]);
    expect(Array.from(buf.subarray(32))).toEqual([0x68, 0x69]);
    expect(view.getUint32(0, true)).toBe(impl.crc32c(buf.slice(4)));
  });
});
