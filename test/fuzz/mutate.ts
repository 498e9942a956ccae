/**
 * Structured byte mutation for the fuzz suites. A seed is a valid encoding from a real encoder;
 * a mutation list flips bits, truncates, removes, inserts, duplicates, splices in bytes of another
 * valid encoding, and overwrites integers (the seed's known length fields first of all) with
 * extreme values. Each target then optionally reseals its checksums, so that mutations get past
 * the first CRC and reach the parser behind it.
 *
 * Positions are natural numbers taken modulo the buffer length, so fast-check shrinks a failing
 * mutation towards the start of the buffer and towards fewer, simpler steps.
 */
import fc from 'fast-check';

/** Where an integer field (a length, a count) of a seed sits. */
export interface Field {
  at: number;
  width: 1 | 2 | 4 | 8;
  littleEndian: boolean;
}

/** A value written over an integer field: absolute, relative to the field, or to the bytes left. */
export type Extreme =
  | { mode: 'absolute'; value: bigint }
  | { mode: 'relative'; delta: number }
  | { mode: 'remaining'; delta: number };

/** One mutation step. */
export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'remove'; at: number; length: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'duplicate'; at: number; length: number; to: number }
  | { kind: 'splice'; donor: number; from: number; length: number; at: number; replace: boolean }
  | { kind: 'field'; field: number; value: Extreme }
  | { kind: 'int'; at: number; width: 1 | 2 | 4 | 8; littleEndian: boolean; value: Extreme };

const interesting = [
  0n,
  1n,
  0x7fn,
  0x80n,
  0xffn,
  0x100n,
  0x7fffn,
  0x8000n,
  0xffffn,
  0x10000n,
  0xffffffn,
  0x7fffffffn,
  0x80000000n,
  0xfffffff0n,
  0xffffffffn,
  0x100000000n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 63n,
  2n ** 64n - 1n,
];

/** A value to write over an integer field: a boundary, near the old value, or any. */
export const extremeArb: fc.Arbitrary<Extreme> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...interesting).map((value) => abs(value)) },
  { weight: 2, arbitrary: fc.integer({ min: -64, max: 64 }).map((delta) => rel(delta)) },
  { weight: 2, arbitrary: fc.integer({ min: -8, max: 8 }).map((delta) => remaining(delta)) },
  { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((value) => abs(value)) },
);

function abs(value: bigint): Extreme {
  return { mode: 'absolute', value };
}
function rel(delta: number): Extreme {
  return { mode: 'relative', delta };
}
function remaining(delta: number): Extreme {
  return { mode: 'remaining', delta };
}

const width = fc.constantFrom<1 | 2 | 4 | 8>(1, 2, 4, 8);
const smallLength = fc.integer({ min: 1, max: 64 });

/** One mutation step, of any kind; length fields are aimed at most often. */
export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  weighted(3, fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) })),
  weighted(1, fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.nat(255) })),
  weighted(1, fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() })),
  weighted(
    1,
    fc.record({ kind: fc.constant('remove' as const), at: fc.nat(), length: smallLength }),
  ),
  weighted(
    1,
    fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 24 }),
    }),
  ),
  weighted(
    1,
    fc.record({
      kind: fc.constant('duplicate' as const),
      at: fc.nat(),
      length: smallLength,
      to: fc.nat(),
    }),
  ),
  weighted(
    1,
    fc.record({
      kind: fc.constant('splice' as const),
      donor: fc.nat(),
      from: fc.nat(),
      length: fc.integer({ min: 1, max: 256 }),
      at: fc.nat(),
      replace: fc.boolean(),
    }),
  ),
  weighted(
    3,
    fc.record({ kind: fc.constant('field' as const), field: fc.nat(), value: extremeArb }),
  ),
  weighted(
    1,
    fc.record({
      kind: fc.constant('int' as const),
      at: fc.nat(),
      width,
      littleEndian: fc.boolean(),
      value: extremeArb,
    }),
  ),
);

function weighted(
  weight: number,
  arbitrary: fc.Arbitrary<Mutation>,
): fc.WeightedArbitrary<Mutation> {
  return { weight, arbitrary };
}

/** One to `max` mutation steps. */
export function mutationsArb(max = 4): fc.Arbitrary<Mutation[]> {
  return fc.array(mutationArb, { minLength: 1, maxLength: max });
}

/** What a mutation list may use besides the seed itself. */
export interface MutationContext {
  /** Integer fields of the seed, aimed at by 'field' steps. */
  fields?: readonly Field[];
  /** Other valid encodings to splice from. */
  donors?: readonly Uint8Array[];
}

function concat(...parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function readInt(buf: Uint8Array, f: Field): bigint {
  let value = 0n;
  for (let i = 0; i < f.width; i++) {
    const byte = buf[f.littleEndian ? f.at + i : f.at + f.width - 1 - i] ?? 0;
    value |= BigInt(byte) << BigInt(8 * i);
  }
  return value;
}

function writeInt(buf: Uint8Array, f: Field, value: bigint): void {
  const bits = BigInt(8 * f.width);
  const masked = BigInt.asUintN(Number(bits), value);
  for (let i = 0; i < f.width; i++) {
    const at = f.littleEndian ? f.at + i : f.at + f.width - 1 - i;
    if (at < buf.length) buf[at] = Number((masked >> BigInt(8 * i)) & 0xffn);
  }
}

function overwrite(buf: Uint8Array, f: Field, value: Extreme): Uint8Array {
  const out = buf.slice();
  if (f.at >= out.length) return out;
  const current = readInt(out, f);
  const left = BigInt(out.length - f.at - f.width);
  const next =
    value.mode === 'absolute'
      ? value.value
      : value.mode === 'relative'
        ? current + BigInt(value.delta)
        : left + BigInt(value.delta);
  writeInt(out, f, next);
  return out;
}

/** Applies one step. */
function step(buf: Uint8Array, m: Mutation, ctx: MutationContext): Uint8Array {
  const n = buf.length;
  const pos = (p: number) => (n === 0 ? 0 : p % n);
  switch (m.kind) {
    case 'flip': {
      if (n === 0) return buf;
      const out = buf.slice();
      out[pos(m.at)] = out[pos(m.at)]! ^ (1 << m.bit);
      return out;
    }
    case 'set': {
      if (n === 0) return buf;
      const out = buf.slice();
      out[pos(m.at)] = m.value;
      return out;
    }
    case 'truncate':
      return buf.slice(0, pos(m.at));
    case 'remove': {
      const at = pos(m.at);
      return concat(buf.subarray(0, at), buf.subarray(at + m.length));
    }
    case 'insert': {
      const at = n === 0 ? 0 : m.at % (n + 1);
      return concat(buf.subarray(0, at), m.bytes, buf.subarray(at));
    }
    case 'duplicate': {
      const at = pos(m.at);
      const region = buf.slice(at, at + m.length);
      const to = m.to % (n + 1);
      return concat(buf.subarray(0, to), region, buf.subarray(to));
    }
    case 'splice': {
      const donors = ctx.donors ?? [];
      const donor = donors.length === 0 ? buf : donors[m.donor % donors.length]!;
      const from = donor.length === 0 ? 0 : m.from % donor.length;
      const region = donor.slice(from, from + m.length);
      const at = m.at % (n + 1);
      const rest = m.replace ? buf.subarray(at + region.length) : buf.subarray(at);
      return concat(buf.subarray(0, at), region, rest);
    }
    case 'field': {
      const fields = ctx.fields ?? [];
      if (fields.length === 0) return buf;
      return overwrite(buf, fields[m.field % fields.length]!, m.value);
    }
    case 'int':
      return overwrite(
        buf,
        { at: pos(m.at), width: m.width, littleEndian: m.littleEndian },
        m.value,
      );
  }
}

/** Applies `mutations` to a copy of `seed`. */
export function mutate(
  seed: Uint8Array,
  mutations: readonly Mutation[],
  ctx: MutationContext = {},
): Uint8Array {
  let buf: Uint8Array = seed.slice();
  for (const m of mutations) buf = step(buf, m, ctx);
  return buf;
}

/** Whether two byte arrays hold the same bytes. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(
    Buffer.from(b.buffer, b.byteOffset, b.length),
  );
}
