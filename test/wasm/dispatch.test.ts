import { afterEach, describe, expect, it, vi } from 'vitest';
import { crc32c } from '../../wasm/reference/crc32c.js';
import { decodeRecords, encodeRecords } from '../../wasm/reference/framing.js';
import { xxhash32 } from '../../wasm/reference/xxhash32.js';
import { ascii, plain } from './impls.js';

type KernelIndex = typeof import('../../wasm/index.js');

/** Imports a fresh copy of wasm/index.ts with FLOTILLA_WASM set to `value` (or unset). */
async function importWith(value: string | undefined): Promise<KernelIndex> {
  vi.resetModules();
  if (value === undefined) vi.stubEnv('FLOTILLA_WASM', undefined);
  else vi.stubEnv('FLOTILLA_WASM', value);
  return import('../../wasm/index.js');
}

afterEach(() => {
  vi.unstubAllEnvs();
  vi.resetModules();
});

describe('wasm/index.ts dispatch', () => {
  it('follows FLOTILLA_WASM as this process was started', async () => {
    const kernels = await import('../../wasm/index.js');
    expect(kernels.kernelImpl).toBe(process.env.FLOTILLA_WASM === '0' ? 'reference' : 'wasm');
  });

  it.each([
    ['0', 'reference'],
    ['1', 'wasm'],
    [undefined, 'wasm'],
  ] as const)(
    'FLOTILLA_WASM=%s serves every kernel from %s, with the same results',
    async (value, impl) => {
      const kernels = await importWith(value);
      expect(kernels.kernelImpl).toBe(impl);
      const records = [
        { type: 1, group: 2, term: 3, index: 4, payload: ascii('payload') },
        { type: 5, group: 6, term: 2 ** 50, index: 7, payload: new Uint8Array(300).fill(9) },
      ];
      const expected = encodeRecords(records);
      const encoded = kernels.encodeRecords(records);
      expect(Array.from(encoded)).toEqual(Array.from(expected));
      expect(kernels.crc32c(encoded)).toBe(crc32c(expected));
      expect(plain(kernels.decodeRecords(expected, 1))).toStrictEqual(
        plain(decodeRecords(expected, 1)),
      );
      expect(kernels.hashKey(ascii('user:42'), 3)).toBe(xxhash32(ascii('user:42'), 3));
      expect(Array.from(kernels.hashKeys([ascii('a'), ascii('bc')]))).toEqual([
        xxhash32(ascii('a')),
        xxhash32(ascii('bc')),
      ]);
      expect(kernels.recordHeaderBytes).toBe(32);
    },
  );
});
