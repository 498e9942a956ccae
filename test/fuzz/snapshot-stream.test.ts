/**
 * Fuzzing snapshot streams (engine/state: snapshot-format.ts, snapshot.ts, KvState installs) and
 * the small layout decoders. A real exported stream is mutated chunk by chunk (dropped,
 * duplicated, swapped, cut short, mixed with chunks of other streams) and byte by byte (with the
 * chunk CRC and even the end chunk's counts and content checksum recomputed, so that mutations
 * reach the item checks). An install then either accepts, and the shard equals what the stream
 * says, or rejects with CORRUPT_STATE and the target shard and its neighbour are unchanged. A
 * stream that is not byte-identical to the exported one is accepted only when its checksums
 * were forged to match.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaError, isFlotillaError } from '../../engine/errors.js';
import { snapshotFormatVersion } from '../../engine/limits.js';
import { encodeCommand } from '../../engine/state/commands.js';
import type { KvState } from '../../engine/state/kv-state.js';
import {
  decodeMeta,
  decodeSession,
  metaBytes,
  sessionHeaderBytes,
} from '../../engine/state/layout.js';
import {
  beginPayloadBytes,
  ChunkKind,
  chunkHeaderBytes,
  decodeChunk,
  decodeHeader,
  decodeItems,
  decodeTrailer,
  endPayloadBytes,
  ItemKind,
} from '../../engine/state/snapshot-format.js';
import { crc32c } from '../../wasm/index.js';
import { decodeOverheadBytes, fuzzParams, fuzzTimeoutMs, growthDuring } from './fuzz-support.js';
import {
  type Extreme,
  extremeArb,
  type Field,
  type Mutation,
  mutate,
  mutationsArb,
  sameBytes,
} from './mutate.js';
import { closeTempStates, openTempState } from './state-seeds.js';

const SOURCE = 3;
const TARGET = 5;
const NEIGHBOUR = 6;

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const chunk of chunks) out.push(Uint8Array.from(chunk));
  return out;
}

/** Applies `count` puts (every other one with a session of its own, and every seventh a large
 *  value when `large`) to `shard`. */
function fill(state: KvState, shard: number, count: number, tag: string, large = true): void {
  const first = state.appliedIndex(shard) + 1;
  const items = Array.from({ length: count }, (_, i) => {
    const big = large && i % 7 === 3;
    const value = big ? new Uint8Array(45_000).fill(i) : { i, tag, pad: 'x'.repeat(i) };
    const session = i % 2 === 0 ? { id: `${tag}-s${i}`, seq: i + 1, time: i } : undefined;
    const command = { type: 'put' as const, key: `${tag}-${i}`, value, session };
    return { shard, index: first + i, term: 2, data: encodeCommand(command) };
  });
  state.applyBatch(items);
}

function u32le(buf: Uint8Array, at: number): number {
  return new DataView(buf.buffer, buf.byteOffset, buf.length).getUint32(at, true);
}

/** Splits a data payload leniently (undefined when it does not parse), with item offsets. */
function items(payload: Uint8Array): { at: number; bytes: Uint8Array }[] | undefined {
  const out: { at: number; bytes: Uint8Array }[] = [];
  let at = 0;
  while (at < payload.length) {
    if (at + 5 > payload.length) return undefined;
    const recordAt = at + 5 + u32le(payload, at + 1);
    if (recordAt + 4 > payload.length) return undefined;
    const end = recordAt + 4 + u32le(payload, recordAt);
    if (end > payload.length) return undefined;
    out.push({ at, bytes: payload.subarray(at, end) });
    at = end;
  }
  return out;
}

/** The integer fields of a chunk: header, begin/end payload, and each item's lengths and u64s. */
function chunkFields(chunk: Uint8Array): Field[] {
  const le = (at: number, width: 1 | 2 | 4 | 8): Field => ({ at, width, littleEndian: true });
  const be = (at: number): Field => ({ at, width: 8, littleEndian: false });
  const fields = [le(4, 4), le(8, 1), le(9, 1), le(10, 2), le(12, 4), le(16, 4), le(20, 4)];
  const kind = chunk[9];
  const p = chunkHeaderBytes;
  if (kind === ChunkKind.Begin) fields.push(le(p, 8), le(p + 8, 8), le(p + 16, 8), le(p + 24, 8));
  if (kind === ChunkKind.End) fields.push(le(p, 8), le(p + 8, 8), le(p + 16, 4));
  if (kind !== ChunkKind.Data) return fields;
  for (const item of items(chunk.subarray(p)) ?? []) {
    const at = p + item.at;
    const recordAt = at + 5 + u32le(chunk, at + 1);
    fields.push(le(at, 1), le(at + 1, 4), le(recordAt, 4), be(recordAt + 4));
    if (chunk[at] === ItemKind.Session) fields.push(be(recordAt + 12), be(recordAt + 20));
  }
  return fields;
}

/** Sets a chunk's length field and CRC to match its bytes. */
function resealChunk(chunk: Uint8Array): Uint8Array {
  const out = chunk.slice();
  if (out.length < chunkHeaderBytes) return out;
  const view = new DataView(out.buffer);
  view.setUint32(20, out.length - chunkHeaderBytes, true);
  view.setUint32(0, crc32c(out.subarray(4)), true);
  return out;
}

/** Rewrites the end chunk's counts and content checksum to match the stream's items. */
function forgeTrailer(stream: Uint8Array[]): Uint8Array[] {
  const begin = stream[0];
  const end = stream.at(-1);
  if (begin === undefined || end === undefined || end[9] !== ChunkKind.End) return stream;
  if (end.length !== chunkHeaderBytes + endPayloadBytes) return stream;
  let crc = 0;
  const counts = [0, 0];
  for (const chunk of stream.slice(1, -1)) {
    const parsed = items(chunk.subarray(chunkHeaderBytes));
    if (parsed === undefined) return stream;
    for (const item of parsed) {
      crc = crc32c(item.bytes, crc);
      counts[item.bytes[0] === ItemKind.Key ? 0 : 1]! += 1;
    }
  }
  crc = crc32c(begin.subarray(chunkHeaderBytes, chunkHeaderBytes + beginPayloadBytes), crc);
  const forged = end.slice();
  const view = new DataView(forged.buffer);
  view.setBigUint64(chunkHeaderBytes, BigInt(counts[0]!), true);
  view.setBigUint64(chunkHeaderBytes + 8, BigInt(counts[1]!), true);
  view.setUint32(chunkHeaderBytes + 16, crc, true);
  return [...stream.slice(0, -1), resealChunk(forged)];
}

/** One change to a stream. */
type StreamEdit =
  | { kind: 'drop' | 'duplicate'; at: number }
  | { kind: 'swap'; a: number; b: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'foreign'; at: number; donor: number; chunk: number; replace: boolean }
  | { kind: 'bytes'; at: number; mutations: Mutation[]; reseal: 'none' | 'chunk' | 'forge' }
  | { kind: 'item'; at: number; field: number; value: Extreme; flip: number | null };

const streamEditArb: fc.Arbitrary<StreamEdit> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('drop', 'duplicate'), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('swap'), a: fc.nat(), b: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate'), at: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('foreign'),
      at: fc.nat(),
      donor: fc.nat(),
      chunk: fc.nat(),
      replace: fc.boolean(),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('item'),
      at: fc.nat(),
      field: fc.nat(),
      value: extremeArb,
      flip: fc.option(fc.nat()),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('bytes'),
      at: fc.nat(),
      mutations: mutationsArb(3),
      reseal: fc.constantFrom('none', 'chunk', 'forge'),
    }),
  },
);

/** Overwrites one item field of a data chunk (or flips a bit of its items) and reseals it. */
function editItem(stream: Uint8Array[], e: Extract<StreamEdit, { kind: 'item' }>): Uint8Array[] {
  const data = stream.flatMap((c, i) => (c[9] === ChunkKind.Data ? [i] : []));
  if (data.length === 0) return stream;
  const at = data[e.at % data.length]!;
  const chunk = stream[at]!;
  // The item fields, after the seven of the chunk header.
  const fields = chunkFields(chunk).slice(7);
  const steps: Mutation[] = [{ kind: 'field', field: e.field, value: e.value }];
  const items = chunk.length - chunkHeaderBytes;
  if (e.flip !== null) {
    steps[0] = { kind: 'flip', at: chunkHeaderBytes + (e.flip % items), bit: e.flip % 8 };
  }
  const out = [...stream];
  out[at] = resealChunk(mutate(chunk, steps, { fields }));
  return out;
}

function edit(stream: Uint8Array[], e: StreamEdit, donors: Uint8Array[][]): Uint8Array[] {
  const out = [...stream];
  const n = out.length;
  const at = 'at' in e ? (n === 0 ? 0 : e.at % n) : 0;
  switch (e.kind) {
    case 'drop':
      out.splice(at, 1);
      return out;
    case 'duplicate':
      if (n > 0) out.splice(at, 0, out[at]!);
      return out;
    case 'swap': {
      if (n === 0) return out;
      const [a, b] = [e.a % n, e.b % n];
      [out[a], out[b]] = [out[b]!, out[a]!];
      return out;
    }
    case 'truncate':
      return out.slice(0, at);
    case 'foreign': {
      const donor = donors[e.donor % donors.length]!;
      const chunk = donor[e.chunk % donor.length]!;
      out.splice(at, e.replace ? 1 : 0, chunk);
      return out;
    }
    case 'item':
      return forgeTrailer(editItem(out, e));
    case 'bytes': {
      if (n === 0) return out;
      const mutated = mutate(out[at]!, e.mutations, { fields: chunkFields(out[at]!) });
      out[at] = e.reseal === 'none' ? mutated : resealChunk(mutated);
      return e.reseal === 'forge' ? forgeTrailer(out) : out;
    }
  }
}

/** The only errors a rejected stream may raise: CORRUPT_STATE, or VERSION_MISMATCH for a chunk
 *  that verifies but was written by another format version. */
function expectRejection(err: unknown, stream: Uint8Array[]): void {
  expect(err).toBeInstanceOf(FlotillaError);
  const code = (err as FlotillaError).code;
  if (code === 'VERSION_MISMATCH') {
    const verified = stream.some(
      (c) =>
        c.length >= chunkHeaderBytes &&
        c[8] !== snapshotFormatVersion &&
        u32le(c, 0) === crc32c(c.subarray(4)),
    );
    expect(verified).toBe(true);
  } else {
    expect(code).toBe('CORRUPT_STATE');
  }
}

/** Writes `stream` chunk by chunk into an install and commits; the first error, if any. */
function install(state: KvState, shard: number, stream: Uint8Array[]): unknown {
  const inst = state.beginInstall(shard);
  try {
    for (const chunk of stream) inst.write(chunk);
    inst.commit();
    return undefined;
  } catch (err) {
    if (!isFlotillaError(err)) throw err;
    // A rejected install is finished: it takes nothing more.
    expect(() => inst.write(stream[0] ?? new Uint8Array(0))).toThrow(/finished/);
    return err;
  } finally {
    inst.abort();
  }
}

describe('fuzz: snapshot streams (KvState installs)', () => {
  let source: KvState;
  let target: KvState;
  let original: Uint8Array[];
  let baseline: Uint8Array[];
  const donors: Uint8Array[][] = [];

  beforeAll(async () => {
    source = openTempState();
    target = openTempState();
    fill(source, SOURCE, 40, 'src');
    original = await collect(source.exportSnapshot(SOURCE));
    // Donors: a later export of the same shard, another shard, and the target's own.
    fill(source, SOURCE, 3, 'late');
    donors.push(await collect(source.exportSnapshot(SOURCE)));
    fill(source, 4, 12, 'four');
    donors.push(await collect(source.exportSnapshot(4)));
    fill(target, TARGET, 15, 'tgt');
    fill(target, NEIGHBOUR, 10, 'ngb');
    baseline = await collect(target.exportSnapshot(TARGET));
    donors.push(baseline);
  });

  afterAll(() => closeTempStates(source, target));

  it(
    'accepts only a consistent stream, and a rejected one changes nothing',
    () => {
      expect(original.length).toBeGreaterThan(3);
      const targetSum = target.checksum(TARGET);
      const neighbourSum = target.checksum(NEIGHBOUR);
      const outcomes = new Map<string, number>();
      /** Installs `stream` and checks the outcome; returns its name. */
      const installOne = (stream: Uint8Array[], edits: StreamEdit[]): string => {
        const identical =
          stream.length === original.length && stream.every((c, i) => sameBytes(c, original[i]!));
        const forged = edits.some(
          (e) => e.kind === 'item' || (e.kind === 'bytes' && e.reseal === 'forge'),
        );
        const err = install(target, TARGET, stream);
        expect(target.checksum(NEIGHBOUR)).toBe(neighbourSum);
        if (err !== undefined) {
          expectRejection(err, stream);
          expect(identical).toBe(false);
          expect(target.checksum(TARGET)).toBe(targetSum);
          return (err as FlotillaError).message.replace(/\d+/g, 'N');
        }
        expect(identical || forged).toBe(true);
        const trailer = decodeTrailer(stream.at(-1)!.subarray(chunkHeaderBytes));
        expect(target.checksum(TARGET)).toBe(trailer.checksum);
        expect(target.count(TARGET)).toBe(trailer.keyCount);
        return identical ? 'accepted as exported' : 'accepted as forged';
      };
      fc.assert(
        fc.property(fc.array(streamEditArb, { minLength: 1, maxLength: 3 }), (edits) => {
          let stream = original;
          for (const e of edits) stream = edit(stream, e, donors);
          try {
            const outcome = installOne(stream, edits);
            outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
          } finally {
            // The next run (and every shrinking step) starts from the baseline.
            if (target.checksum(TARGET) !== targetSum) install(target, TARGET, baseline);
          }
        }),
        fuzzParams('snapshot installs', 300, 20),
      );
      // The forged checksums let mutations reach the item checks behind them, and some forged
      // streams are consistent enough to be accepted.
      expect(outcomes.size).toBeGreaterThan(15);
      expect(outcomes.get('accepted as exported')).toBeGreaterThan(0);
      expect(outcomes.get('accepted as forged')).toBeGreaterThan(0);
    },
    fuzzTimeoutMs,
  );
});

describe('fuzz: snapshot and layout decoders', () => {
  let chunks: Uint8Array[] = [];

  beforeAll(async () => {
    const state = openTempState();
    fill(state, 1, 12, 'dec', false);
    chunks = await collect(state.exportSnapshot(1));
    await closeTempStates(state);
  });

  it(
    'decodes mutated chunks to verified parts or a typed error, allocating little',
    () => {
      fc.assert(
        fc.property(fc.nat(), mutationsArb(4), fc.boolean(), (pick, mutations, resealed) => {
          const seed = chunks[pick % chunks.length]!;
          const mutated = mutate(seed, mutations, { fields: chunkFields(seed) });
          const bytes = resealed ? resealChunk(mutated) : mutated;
          const { bytes: grown } = growthDuring(() => {
            try {
              const chunk = decodeChunk(bytes);
              expect(chunk.payload.length).toBe(bytes.length - chunkHeaderBytes);
              if (chunk.kind === ChunkKind.Begin) decodeHeader(chunk.payload);
              if (chunk.kind === ChunkKind.End) decodeTrailer(chunk.payload);
              if (chunk.kind === ChunkKind.Data) {
                let at = 0;
                for (const item of decodeItems(chunk.payload)) {
                  expect(item.bytes.byteOffset - chunk.payload.byteOffset).toBe(at);
                  at += item.bytes.length;
                }
                expect(at).toBe(chunk.payload.length);
              }
            } catch (err) {
              expectRejection(err, [bytes]);
            }
          });
          expect(grown).toBeLessThan(decodeOverheadBytes + 16 * bytes.length);
        }),
        fuzzParams('snapshot decoders', 2000),
      );
    },
    fuzzTimeoutMs,
  );

  it(
    'reads shard metadata and session records of any bytes without throwing',
    () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
          const meta = decodeMeta(bytes);
          expect(meta === undefined).toBe(bytes.length !== metaBytes);
          const session = decodeSession(bytes);
          expect(session === undefined).toBe(bytes.length < sessionHeaderBytes);
        }),
        fuzzParams('layout decoders', 1000),
      );
    },
    fuzzTimeoutMs,
  );
});
