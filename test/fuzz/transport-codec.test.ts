/**
 * Fuzzing the transport decoders (engine/transport: codec.ts, frame-reader.ts, handshake.ts) with
 * mutated valid frames and random byte streams: the only failure is a PROTOCOL FlotillaError,
 * whatever is accepted is canonical (re-encodes to the same bytes), the stream splitter hands out
 * exactly the bytes it received, and a forged length never makes anything allocate for it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, FlotillaError } from '../../engine/errors.js';
import { frameBytesMax, handshakeFrameBytesMax } from '../../engine/limits.js';
import {
  decodeFrame,
  encodePingFrame,
  encodeRaftFrame,
  encodeSnapshotFrame,
  type Frame,
  FrameKind,
  frameHeaderBytes,
} from '../../engine/transport/codec.js';
import { FrameReader } from '../../engine/transport/frame-reader.js';
import {
  decodeHello,
  decodeProof,
  decodeWelcome,
  encodeHello,
  encodeProof,
  encodeWelcome,
} from '../../engine/transport/handshake.js';
import { parseAddress as parsePeerAddress } from '../../engine/transport/tcp-transport.js';
import { expectVerifiedRecords } from '../engine/transport/conformance.js';
import { decodeOverheadBytes, fuzzParams, fuzzTimeoutMs, growthDuring } from './fuzz-support.js';
import { mutate, mutationsArb, sameBytes } from './mutate.js';
import { frameSeedArb, helloArb, reseal, resealArb, welcomeArb } from './wire-seeds.js';

const FROM = 3;
const TO = 7;

function expectProtocol(err: unknown): void {
  expect(err).toBeInstanceOf(FlotillaError);
  expect((err as FlotillaError).code).toBe(ErrorCode.PROTOCOL);
}

/** The error message without its numbers: one bucket per kind of refusal. */
function bucket(message: string): string {
  return message.replace(/\d+/g, 'N');
}

/** The bytes a handshake body re-encodes to, or undefined when it does not decode. */
function handshakeReencoded(type: FrameKind, body: Uint8Array): Uint8Array | undefined {
  if (type === FrameKind.Hello) {
    const h = decodeHello(body);
    if (!h.ok) expectProtocol(h.error);
    return h.ok ? encodeHello(h.value) : undefined;
  }
  if (type === FrameKind.Welcome) {
    const w = decodeWelcome(body);
    if (!w.ok) expectProtocol(w.error);
    return w.ok ? encodeWelcome(w.value) : undefined;
  }
  const p = decodeProof(body);
  if (!p.ok) expectProtocol(p.error);
  return p.ok ? encodeProof(p.value) : undefined;
}

/** Re-encodes an accepted frame; a decoder that accepts only canonical bytes gives them back. */
function reencode(frame: Frame): Uint8Array | undefined {
  switch (frame.kind) {
    case 'raft':
      for (const m of frame.messages) expectVerifiedRecords(m);
      return encodeRaftFrame(frame.from, frame.to, frame.messages);
    case 'snapshot':
      return encodeSnapshotFrame(frame.chunk);
    case 'ping':
      return encodePingFrame();
    case 'handshake':
      return handshakeReencoded(frame.type, frame.body);
  }
}

/**
 * Decodes one frame as a link would: a PROTOCOL error or a canonical frame, allocating little.
 * Returns the error's bucket, or 'ok'.
 */
function checkFrame(bytes: Uint8Array): string {
  const { result, bytes: grown } = growthDuring(() => decodeFrame(bytes));
  expect(grown).toBeLessThan(decodeOverheadBytes + 64 * bytes.length);
  if (!result.ok) {
    expectProtocol(result.error);
    return bucket(result.error.message);
  }
  const again = reencode(result.frame);
  if (again !== undefined) expect(sameBytes(again, bytes)).toBe(true);
  return again === undefined ? 'handshake body refused' : 'ok';
}

describe('fuzz: transport frames (codec.ts, handshake.ts)', () => {
  it(
    'decodes mutated frames of every kind to a canonical frame or a PROTOCOL error',
    () => {
      const buckets = new Map<string, number>();
      let changedButAccepted = 0;
      fc.assert(
        fc.property(
          frameSeedArb(FROM, TO),
          frameSeedArb(FROM, TO),
          mutationsArb(4),
          resealArb,
          (seed, donor, mutations, depth) => {
            const ctx = { fields: seed.fields, donors: [donor.bytes] };
            const bytes = reseal(mutate(seed.bytes, mutations, ctx), depth);
            const outcome = checkFrame(bytes);
            buckets.set(outcome, (buckets.get(outcome) ?? 0) + 1);
            if (outcome === 'ok' && !sameBytes(bytes, seed.bytes)) changedButAccepted++;
          },
        ),
        fuzzParams('codec mutated frames', 4000),
      );
      // The mutations got past the checksum into the body parsers: many kinds of refusal, and
      // some mutated frames that are valid frames in their own right.
      expect(buckets.size).toBeGreaterThan(35);
      expect(changedButAccepted).toBeGreaterThan(0);
    },
    fuzzTimeoutMs,
  );

  it(
    'decodes random bytes behind a valid header to a PROTOCOL error or a canonical frame',
    () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 6 }),
          fc.uint8Array({ maxLength: 300 }),
          fc.nat(),
          (kind, body, tail) => {
            const frame = new Uint8Array(frameHeaderBytes + body.length);
            frame.set(body, frameHeaderBytes);
            frame[8] = kind;
            new DataView(frame.buffer).setUint32(12, tail % (body.length + 1), true);
            checkFrame(reseal(frame, 'frame'));
            checkFrame(frame);
          },
        ),
        fuzzParams('codec random bodies', 2000),
      );
    },
    fuzzTimeoutMs,
  );

  it(
    'decodes mutated and random handshake bodies to a canonical body or a PROTOCOL error',
    () => {
      const bodyOf = (frame: Uint8Array) => frame.subarray(frameHeaderBytes);
      const seedArb = fc.oneof(
        helloArb.map((h) => bodyOf(encodeHello(h))),
        welcomeArb.map((w) => bodyOf(encodeWelcome(w))),
        fc.uint8Array({ maxLength: 140 }),
      );
      fc.assert(
        fc.property(seedArb, seedArb, mutationsArb(3), (seed, donor, mutations) => {
          const body = mutate(seed, mutations, { donors: [donor] });
          for (const type of [FrameKind.Hello, FrameKind.Welcome, FrameKind.Proof] as const) {
            const { result, bytes } = growthDuring(() => handshakeReencoded(type, body));
            expect(bytes).toBeLessThan(decodeOverheadBytes);
            if (result !== undefined) expect(sameBytes(bodyOf(result), body)).toBe(true);
          }
        }),
        fuzzParams('codec handshake bodies', 3000),
      );
    },
    fuzzTimeoutMs,
  );
});

/** Feeds `stream` to a reader in pieces; checks its bookkeeping and every frame it returns. */
function feed(stream: Uint8Array, cuts: readonly number[], maxBytes: number): 'end' | 'refused' {
  const reader = new FrameReader(maxBytes);
  let pushed = 0;
  let consumed = 0;
  for (let i = 0; pushed < stream.length; i++) {
    const piece = stream.subarray(pushed, pushed + cuts[i % cuts.length]!);
    const { bytes } = growthDuring(() => reader.push(piece));
    expect(bytes).toBeLessThan(decodeOverheadBytes);
    pushed += piece.length;
    for (;;) {
      let frame: Uint8Array | null;
      try {
        frame = reader.next();
      } catch (err) {
        expectProtocol(err);
        const declared = new DataView(stream.buffer, stream.byteOffset).getUint32(consumed, true);
        expect(declared).toBeGreaterThan(maxBytes - frameHeaderBytes);
        return 'refused';
      }
      expect(reader.bufferedBytes()).toBe(pushed - consumed - (frame?.length ?? 0));
      if (frame === null) break;
      expect(frame.length).toBeLessThanOrEqual(maxBytes);
      expect(sameBytes(frame, stream.subarray(consumed, consumed + frame.length))).toBe(true);
      consumed += frame.length;
      checkFrame(frame);
    }
  }
  return 'end';
}

describe('fuzz: the stream splitter (frame-reader.ts)', () => {
  it(
    'splits mutated frame streams exactly and refuses only a length over its maximum',
    () => {
      const outcomes = new Set<string>();
      fc.assert(
        fc.property(
          fc.array(fc.tuple(frameSeedArb(FROM, TO), fc.option(mutationsArb(3))), {
            minLength: 1,
            maxLength: 5,
          }),
          fc.uint8Array({ maxLength: 40 }),
          fc.array(fc.integer({ min: 1, max: 96 }), { minLength: 1, maxLength: 8 }),
          fc.constantFrom(handshakeFrameBytesMax, frameBytesMax),
          (frames, junk, cuts, maxBytes) => {
            const parts = frames.map(([seed, m]) =>
              m === null ? seed.bytes : mutate(seed.bytes, m, { fields: seed.fields }),
            );
            const stream = Buffer.concat([...parts, junk]);
            outcomes.add(feed(stream, cuts, maxBytes));
          },
        ),
        fuzzParams('reader streams', 1500),
      );
      expect(outcomes).toEqual(new Set(['end', 'refused']));
    },
    fuzzTimeoutMs,
  );

  it(
    'buffers no more than what arrived behind a forged length, however large',
    () => {
      fc.assert(
        fc.property(
          fc.constantFrom(handshakeFrameBytesMax, frameBytesMax),
          fc.integer({ min: 0, max: 2 ** 32 - 1 }),
          fc.array(fc.integer({ min: 1, max: 4096 }), { minLength: 1, maxLength: 16 }),
          (maxBytes, declared, pieces) => {
            const reader = new FrameReader(maxBytes);
            const header = new Uint8Array(frameHeaderBytes);
            new DataView(header.buffer).setUint32(0, declared, true);
            reader.push(header);
            let pushed = header.length;
            const need = frameHeaderBytes + declared;
            for (const n of pieces) {
              if (pushed >= need) break;
              const { bytes } = growthDuring(() => reader.push(new Uint8Array(n)));
              pushed += n;
              expect(bytes).toBeLessThan(decodeOverheadBytes + 2 * n);
              let frame: Uint8Array | null = null;
              const refused = declared > maxBytes - frameHeaderBytes;
              if (refused) expect(() => reader.next()).toThrow(FlotillaError);
              else frame = reader.next();
              if (refused || frame !== null) return;
              expect(reader.bufferedBytes()).toBe(pushed);
            }
          },
        ),
        fuzzParams('reader forged lengths', 1000),
      );
    },
    fuzzTimeoutMs,
  );
});

describe('fuzz: peer addresses (tcp-transport.ts parseAddress)', () => {
  it(
    'parses any string to a host and a port in range, or a CONFIG error',
    () => {
      const valid = fc
        .tuple(fc.constantFrom('127.0.0.1', 'node-1', '[::1]', '::1', ''), fc.nat(70_000))
        .map(([host, port]) => Buffer.from(`${host}:${port}`));
      fc.assert(
        fc.property(
          fc.oneof(
            valid.chain((v) => mutationsArb(2).map((m) => mutate(v, m))),
            valid,
          ),
          fc.string({ maxLength: 30 }),
          (bytes, text) => {
            for (const address of [Buffer.from(bytes).toString('latin1'), text]) {
              let parsed: { host: string; port: number };
              try {
                parsed = parsePeerAddress(address);
              } catch (err) {
                expect(err).toBeInstanceOf(FlotillaError);
                expect((err as FlotillaError).code).toBe('CONFIG');
                continue;
              }
              expect(parsed.host.length).toBeGreaterThan(0);
              expect(Number.isInteger(parsed.port)).toBe(true);
              expect(parsed.port >= 1 && parsed.port <= 65_535).toBe(true);
            }
          },
        ),
        fuzzParams('peer addresses', 2000),
      );
    },
    fuzzTimeoutMs,
  );
});
