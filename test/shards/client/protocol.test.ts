import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FlotillaError, isFlotillaError } from '../../../engine/errors.js';
import { clientBatchItemsMax, clientProtocolVersion, keyBytesMax } from '../../../engine/limits.js';
import type { Change } from '../../../engine/state/change-feed.js';
import { encodeCommand } from '../../../engine/state/commands.js';
import type { ScanEntry, StoredValue } from '../../../engine/state/kv-state.js';
import { FrameReader } from '../../../engine/transport/frame-reader.js';
import {
  batchItemHeaderBytes,
  ClientFrameKind,
  type ClientRequest,
  changesBody,
  changesFromWire,
  checkClientCommand,
  clientHandshakeMac,
  commandResultFromBody,
  commandResultFromWire,
  consistencyCodes,
  decodeBatchItems,
  decodeClientFrame,
  decodeClientHello,
  decodeClientWelcome,
  decodeErrorBody,
  decodeRequest,
  encodeBatchFrame,
  encodeClientFrame,
  encodeClientHello,
  encodeClientWelcome,
  encodeErrorFrame,
  encodeProposeRequestBody,
  encodeReadRequestBody,
  encodeRequestBody,
  encodeRequestFrame,
  newClientNonce,
  RequestOp,
  readResultBody,
  readResultFromBody,
  readResultFromWire,
  readResultToWire,
  scanPageBody,
  scanPageFromWire,
  shardMapFromWire,
  shardMapToWire,
  unpackBody,
  wirePackr,
} from '../../../shards/client/protocol.js';
import type { ShardMap } from '../../../shards/node-service.js';
import { evenRanges } from '../../../shards/partition.js';

const limits = { scanEntriesMax: 256, changesMax: 4096 };

/** Runs `fn`; returns the error code it threw, 'ok', or 'untyped' for anything else. */
function outcome(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    return isFlotillaError(err) ? err.code : `untyped: ${String(err)}`;
  }
}

/** `value` with every byte array as a plain Uint8Array, so Buffers and views compare equal. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return Uint8Array.from(value);
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

function bodyOf(frame: Uint8Array): Uint8Array {
  return decodeClientFrame(frame).body;
}

const requests: ClientRequest[] = [
  { op: RequestOp.ShardMap },
  { op: RequestOp.Propose, shard: 3, command: encodeCommand({ type: 'put', key: 'k', value: 1 }) },
  { op: RequestOp.Read, shard: 1, key: Buffer.from('key'), consistency: 'lease' },
  {
    op: RequestOp.ScanPage,
    shard: 7,
    bounds: { start: Buffer.from('a'), end: Buffer.from('b') },
    limit: 10,
    reverse: true,
    consistency: 'stale',
  },
  {
    op: RequestOp.ScanPage,
    shard: 7,
    bounds: {},
    limit: 1,
    reverse: false,
    consistency: 'linearizable',
  },
  { op: RequestOp.Changes, shard: 2, afterIndex: 99, limit: 5 },
  { op: RequestOp.AppliedIndex, shard: 4 },
  { op: RequestOp.Watch },
  { op: RequestOp.Unwatch },
  { op: RequestOp.Status },
];

/** Flips one byte of `frame` anywhere, with any mask: `decode` must refuse it with PROTOCOL. */
function everyByteFlipRefused(frame: Uint8Array, decode: (bad: Uint8Array) => unknown): void {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: frame.length - 1 }),
      fc.integer({ min: 1, max: 255 }),
      (at, xor) => {
        const bad = Uint8Array.from(frame);
        bad[at]! ^= xor;
        expect(outcome(() => decode(bad))).toBe('PROTOCOL');
      },
    ),
  );
}

describe('client frames', () => {
  it('round-trip any kind, request id and body', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.uint8Array({ maxLength: 300 }),
        (kind, id, body) => {
          const frame = encodeClientFrame(kind as ClientFrameKind, id, body);
          const decoded = decodeClientFrame(frame);
          expect(decoded.kind).toBe(kind);
          expect(decoded.requestId).toBe(id);
          expect(Uint8Array.from(decoded.body)).toEqual(body);
        },
      ),
    );
  });

  it('refuse every single-byte corruption with a PROTOCOL error', () => {
    everyByteFlipRefused(encodeRequestFrame(42, requests[3]!), decodeClientFrame);
  });

  it('split a stream of random bytes into frames or PROTOCOL errors, never anything else', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), (chunks) => {
        const reader = new FrameReader(512);
        for (const chunk of chunks) reader.push(chunk);
        const result = outcome(() => {
          for (let f = reader.next(); f !== null; f = reader.next()) decodeClientFrame(f);
        });
        expect(['ok', 'PROTOCOL']).toContain(result);
      }),
    );
  });
});

describe('batch frames', () => {
  const itemKinds = [ClientFrameKind.Request, ClientFrameKind.Response, ClientFrameKind.Error];
  const item = fc.record({
    kind: fc.constantFrom(...itemKinds),
    id: fc.integer({ min: 0, max: 0xffffffff }),
    body: fc.uint8Array({ maxLength: 40 }),
  });

  it('round-trip any items, in order, under one checksum', () => {
    fc.assert(
      fc.property(fc.array(item, { minLength: 2, maxLength: 40 }), (items) => {
        const frame = encodeBatchFrame(
          items.map((i) => i.kind),
          items.map((i) => i.id),
          items.map((i) => i.body),
          0,
          items.length,
        );
        const decoded = decodeClientFrame(frame);
        expect(decoded.kind).toBe(ClientFrameKind.Batch);
        const back = decodeBatchItems(decoded).map((f) => ({
          kind: f.kind,
          id: f.requestId,
          body: Uint8Array.from(f.body),
        }));
        expect(back).toEqual(items);
      }),
    );
  });

  it('refuse every single-byte corruption with a PROTOCOL error', () => {
    const bodies = [encodeRequestBody(requests[3]!), encodeRequestBody(requests[1]!)];
    const kinds = [ClientFrameKind.Request, ClientFrameKind.Request];
    const frame = encodeBatchFrame(kinds, [7, 8], bodies, 0, 2);
    everyByteFlipRefused(frame, (bad) => decodeBatchItems(decodeClientFrame(bad)));
  });

  it('refuse a count, an item kind or a length that disagrees with the bytes', () => {
    const body = Uint8Array.of(1, 2, 3);
    const items = (count: number, kind: number, length: number, extra = 0) => {
      const out = Buffer.alloc(count * (batchItemHeaderBytes + 3) + extra);
      for (let i = 0; i < count; i++) {
        const at = i * (batchItemHeaderBytes + 3);
        out.writeUInt32LE(i + 1, at);
        out[at + 4] = kind;
        out.writeUInt32LE(length, at + 5);
        out.set(body, at + batchItemHeaderBytes);
      }
      return out;
    };
    const batch = (count: number, bytes: Uint8Array) =>
      decodeBatchItems(decodeClientFrame(encodeClientFrame(ClientFrameKind.Batch, count, bytes)));
    expect(batch(2, items(2, ClientFrameKind.Request, 3))).toHaveLength(2);
    expect(outcome(() => batch(1, items(1, ClientFrameKind.Request, 3)))).toBe('PROTOCOL');
    expect(outcome(() => batch(3, items(2, ClientFrameKind.Request, 3)))).toBe('PROTOCOL');
    expect(outcome(() => batch(2, items(2, ClientFrameKind.Ping, 3)))).toBe('PROTOCOL');
    expect(outcome(() => batch(2, items(2, ClientFrameKind.Batch, 3)))).toBe('PROTOCOL');
    expect(outcome(() => batch(2, items(2, ClientFrameKind.Request, 4)))).toBe('PROTOCOL');
    expect(outcome(() => batch(2, items(2, ClientFrameKind.Request, 3, 1)))).toBe('PROTOCOL');
    const many = clientBatchItemsMax + 1;
    expect(outcome(() => batch(many, items(many, ClientFrameKind.Request, 3)))).toBe('PROTOCOL');
  });
});

describe('reads on the hot path', () => {
  const shard = fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 0xffffffff }));
  const key = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 40 }),
    fc.uint8Array({ minLength: 250, maxLength: keyBytesMax }),
  );

  it('write a read request byte for byte as the generic codec does, and parse it back', () => {
    fc.assert(
      fc.property(shard, key, fc.integer({ min: 0, max: 2 }), (s, k, code) => {
        const fast = encodeReadRequestBody(s, k, code);
        expect(Buffer.from(fast)).toEqual(
          Buffer.from(wirePackr.pack([RequestOp.Read, s, k, code])),
        );
        const back = decodeRequest(fast, limits);
        expect(plain(back)).toEqual(
          plain({ op: RequestOp.Read, shard: s, key: k, consistency: consistencyCodes[code] }),
        );
      }),
    );
  });

  it('write a read result byte for byte as the generic codec does, and parse it back', () => {
    const value = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ minLength: 60_000, maxLength: 70_000 }),
      fc.string(),
      fc.integer(),
      fc.constant(null),
    );
    const version = fc.oneof(
      fc.integer({ min: 0, max: 300 }),
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    );
    const stored = fc.option(fc.record({ value, version }), { nil: undefined });
    fc.assert(
      fc.property(stored, (st) => {
        const body = readResultBody(st as StoredValue | undefined);
        const generic = wirePackr.pack(readResultToWire(st as StoredValue | undefined));
        expect(Buffer.from(body)).toEqual(Buffer.from(generic));
        expect(plain(readResultFromBody(body))).toEqual(plain(st));
      }),
      { numRuns: 60 },
    );
  });

  it('refuse a malformed read result with PROTOCOL', () => {
    for (const bad of [Uint8Array.of(0x92, 0xc4, 5, 1), Uint8Array.of(0x91, 1), Uint8Array.of()]) {
      expect(outcome(() => readResultFromBody(bad))).toBe('PROTOCOL');
    }
  });
});

describe('writes on the hot path', () => {
  const shard = fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 0xffffffff }));
  const session = fc.record({
    id: fc.uint8Array({ minLength: 1, maxLength: 64 }),
    seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    time: fc.oneof(
      fc.integer({ min: 0, max: 2 ** 45 }),
      fc.double({ min: 0, max: 1e13, noNaN: true }),
    ),
  });
  const value = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc.uint8Array({ minLength: 65_530, maxLength: 65_540 }),
  );

  it('write a propose request byte for byte as the generic codec does, and parse it back', () => {
    fc.assert(
      fc.property(shard, value, session, (s, v, sess) => {
        const command = encodeCommand({ type: 'put', key: 'k', value: v, session: sess });
        const fast = encodeProposeRequestBody(s, command);
        expect(Buffer.from(fast)).toEqual(
          Buffer.from(wirePackr.pack([RequestOp.Propose, s, command])),
        );
        const back = decodeRequest(fast, limits);
        expect(plain(back)).toEqual(plain({ op: RequestOp.Propose, shard: s, command }));
      }),
      { numRuns: 60 },
    );
  });

  it('read a put result back from the body a node answers with', () => {
    const version = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
    fc.assert(
      fc.property(version, (v) => {
        const body = wirePackr.pack({ type: 'put', version: v });
        expect(commandResultFromBody(body, 'put')).toEqual({ type: 'put', version: v });
      }),
    );
    const cas = wirePackr.pack({ type: 'cas', ok: true, version: 4 });
    expect(commandResultFromBody(cas, 'cas')).toEqual({ type: 'cas', ok: true, version: 4 });
    expect(outcome(() => commandResultFromBody(cas, 'put'))).toBe('PROTOCOL');
    const truncated = wirePackr.pack({ type: 'put', version: 70_000 }).subarray(0, 20);
    expect(outcome(() => commandResultFromBody(truncated, 'put'))).toBe('PROTOCOL');
  });
});

describe('client requests', () => {
  it('decode to what was encoded', () => {
    for (const req of requests) {
      const decoded = decodeRequest(bodyOf(encodeRequestFrame(1, req)), limits);
      expect(plain(decoded)).toEqual(plain(req));
    }
  });

  it('refuse any other MessagePack value with PROTOCOL (or INVALID_ARGUMENT for a command)', () => {
    const value = fc.oneof(
      fc.anything({ maxDepth: 3 }),
      fc.tuple(fc.integer({ min: 0, max: 12 }), fc.anything({ maxDepth: 2 })),
      fc.tuple(
        fc.integer({ min: 1, max: 9 }),
        fc.oneof(fc.integer(), fc.constant(0)),
        fc.uint8Array({ maxLength: 8 }),
        fc.anything({ maxDepth: 1 }),
      ),
    );
    fc.assert(
      fc.property(value, (v) => {
        let body: Uint8Array;
        try {
          body = wirePackr.pack(v);
        } catch {
          return;
        }
        expect(['ok', 'PROTOCOL', 'INVALID_ARGUMENT']).toContain(
          outcome(() => decodeRequest(body, limits)),
        );
      }),
    );
  });

  it('refuse random bytes as a body with PROTOCOL or decode them to a well-formed request', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (body) => {
        expect(['ok', 'PROTOCOL', 'INVALID_ARGUMENT']).toContain(
          outcome(() => decodeRequest(body, limits)),
        );
      }),
    );
  });

  it('bound keys, scan bounds and page sizes', () => {
    const too = (req: unknown[]) => outcome(() => decodeRequest(wirePackr.pack(req), limits));
    expect(too([RequestOp.Read, 1, Buffer.alloc(keyBytesMax + 1), 0])).toBe('PROTOCOL');
    expect(too([RequestOp.Read, 1, Buffer.alloc(0), 0])).toBe('PROTOCOL');
    expect(too([RequestOp.Read, 0, Buffer.from('k'), 0])).toBe('PROTOCOL');
    expect(too([RequestOp.Read, 1, Buffer.from('k'), 3])).toBe('PROTOCOL');
    expect(too([RequestOp.ScanPage, 1, null, null, 257, false, 0])).toBe('PROTOCOL');
    expect(too([RequestOp.ScanPage, 1, Buffer.alloc(keyBytesMax + 2), null, 1, false, 0])).toBe(
      'PROTOCOL',
    );
    expect(too([RequestOp.ScanPage, 1, Buffer.alloc(keyBytesMax + 1), null, 1, false, 0])).toBe(
      'ok',
    );
    expect(too([RequestOp.Changes, 1, -1, 5])).toBe('PROTOCOL');
    expect(too([RequestOp.Changes, 1, 0, 4097])).toBe('PROTOCOL');
    expect(too([RequestOp.Status, 'extra'])).toBe('PROTOCOL');
  });

  it('let clients propose data commands only', () => {
    for (const command of [
      { type: 'put' as const, key: 'k', value: 1 },
      { type: 'delete' as const, key: 'k' },
      { type: 'cas' as const, key: 'k', expected: { version: 0 }, value: 1 },
      { type: 'incr' as const, key: 'k', by: 2 },
      { type: 'batch' as const, ops: [{ type: 'delete' as const, key: 'k' }] },
      { type: 'exec' as const, name: 'f', key: 'k' },
    ]) {
      expect(outcome(() => checkClientCommand(encodeCommand(command)))).toBe('ok');
    }
    const range = encodeCommand({ type: 'shardRange', hashLow: 0, hashHigh: 2 ** 32 });
    expect(outcome(() => checkClientCommand(range))).toBe('INVALID_ARGUMENT');
    expect(outcome(() => checkClientCommand(encodeCommand({ type: 'noop' })))).toBe('PROTOCOL');
    expect(outcome(() => checkClientCommand(Uint8Array.of(0x95, 2, 1, 0)))).toBe('PROTOCOL');
    expect(outcome(() => checkClientCommand('text'))).toBe('PROTOCOL');
  });
});

describe('the client handshake', () => {
  it('round-trips Hello and Welcome', () => {
    const hello = {
      version: clientProtocolVersion,
      clusterId: Buffer.from('c1'),
      nonce: newClientNonce(),
    };
    const decoded = decodeClientHello(bodyOf(encodeClientHello(hello)));
    expect(Buffer.from(decoded.clusterId).toString()).toBe('c1');
    expect(decoded.nonce).toEqual(hello.nonce);
    const welcome = {
      version: clientProtocolVersion,
      nodeId: 300,
      clusterId: Buffer.from('c1'),
      nonce: newClientNonce(),
      mac: newClientNonce(),
    };
    const back = decodeClientWelcome(bodyOf(encodeClientWelcome(welcome)));
    expect(back.nodeId).toBe(300);
    expect(back.mac).toEqual(welcome.mac);
  });

  it('refuses another magic, version or trailing bytes', () => {
    const body = bodyOf(
      encodeClientHello({
        version: clientProtocolVersion,
        clusterId: new Uint8Array(0),
        nonce: newClientNonce(),
      }),
    );
    for (const at of [0, 4]) {
      const bad = Uint8Array.from(body);
      bad[at]! ^= 1;
      expect(outcome(() => decodeClientHello(bad))).toBe('PROTOCOL');
    }
    expect(outcome(() => decodeClientHello(Buffer.concat([body, Buffer.of(0)])))).toBe('PROTOCOL');
    expect(outcome(() => decodeClientHello(body.subarray(0, body.length - 1)))).toBe('PROTOCOL');
  });

  it('refuses a version-1 peer, which cannot read Batch frames', () => {
    expect(clientProtocolVersion).toBe(2);
    const nonce = newClientNonce();
    const old = bodyOf(encodeClientHello({ version: 1, clusterId: new Uint8Array(0), nonce }));
    expect(() => decodeClientHello(old)).toThrow(/version 1, this side speaks 2/);
  });

  it('binds the role, node, cluster and both nonces into each MAC', () => {
    const secret = Buffer.from('a secret of sixteen bytes');
    const t = {
      nodeId: 1,
      clusterId: Buffer.from('c'),
      clientNonce: newClientNonce(),
      nodeNonce: newClientNonce(),
    };
    const mac = clientHandshakeMac(secret, 'node', t);
    expect(clientHandshakeMac(secret, 'node', { ...t })).toEqual(mac);
    expect(clientHandshakeMac(secret, 'client', t)).not.toEqual(mac);
    expect(clientHandshakeMac(secret, 'node', { ...t, nodeId: 2 })).not.toEqual(mac);
    expect(clientHandshakeMac(secret, 'node', { ...t, clusterId: Buffer.from('d') })).not.toEqual(
      mac,
    );
    expect(clientHandshakeMac(secret, 'node', { ...t, nodeNonce: newClientNonce() })).not.toEqual(
      mac,
    );
    expect(clientHandshakeMac(Buffer.from('another sixteen bytes'), 'node', t)).not.toEqual(mac);
  });
});

describe('client responses', () => {
  it('carry errors with their code and routing details', () => {
    const err = new FlotillaError('NOT_LEADER', 'go elsewhere', {
      leaderHint: 3,
      group: 9,
      cause: new Error('not sent'),
    });
    const back = decodeErrorBody(bodyOf(encodeErrorFrame(5, err)));
    expect(back.code).toBe('NOT_LEADER');
    expect(back.message).toBe('go elsewhere');
    expect(back.details).toEqual({ leaderHint: 3, group: 9 });
    const unknown = wirePackr.pack({ code: 'NO_SUCH_CODE', message: 'x', details: {} });
    expect(outcome(() => decodeErrorBody(unknown))).toBe('PROTOCOL');
  });

  it('carry every kind of value a read can return', () => {
    const values = [
      null,
      true,
      -1.5,
      2n ** 70n,
      'text',
      new Date(5),
      Buffer.of(1, 2),
      [1, { a: [] }],
    ];
    for (const value of values) {
      const wire = unpackBody(wirePackr.pack([value, 7]));
      expect(readResultFromWire(wire)).toEqual({ value, version: 7 });
    }
    expect(readResultFromWire(null)).toBeUndefined();
    expect(outcome(() => readResultFromWire([1]))).toBe('PROTOCOL');
  });

  it('cut scan pages at the byte target, keeping at least one entry', () => {
    const entries: ScanEntry[] = Array.from({ length: 10 }, (_, i) => ({
      key: Buffer.from(`k${i}`),
      value: 'v'.repeat(100),
      version: i + 1,
    }));
    const whole = scanPageFromWire(unpackBody(scanPageBody(entries, 1 << 20)));
    expect(whole.more).toBe(false);
    expect(whole.entries).toEqual(entries);
    const cut = scanPageFromWire(unpackBody(scanPageBody(entries, 350)));
    expect(cut.more).toBe(true);
    expect(cut.entries).toEqual(entries.slice(0, 3));
    const one = scanPageFromWire(unpackBody(scanPageBody(entries, 1)));
    expect(one.entries).toEqual(entries.slice(0, 1));
  });

  it('cut change pages only between log entries', () => {
    const change = (index: number, n: number): Change => ({
      shard: 4,
      index,
      key: Buffer.from(`key${n}`),
      type: n % 3 === 0 ? 'delete' : 'put',
      ...(n % 3 === 0 ? {} : { value: 'x'.repeat(50) }),
      version: index,
    });
    // Entry 1 writes one key, entry 2 a batch of five, entry 3 one key.
    const changes = [change(1, 1), ...[2, 3, 4, 5, 6].map((n) => change(2, n)), change(3, 7)];
    const page = changesFromWire(unpackBody(changesBody(changes, 100)), 4);
    expect(page.more).toBe(true);
    expect(page.changes).toEqual(changes.slice(0, 1));
    const second = changesFromWire(unpackBody(changesBody(changes.slice(1), 100)), 4);
    expect(second.changes).toEqual(changes.slice(1, 6));
    const all = changesFromWire(unpackBody(changesBody(changes, 1 << 20)), 4);
    expect(all).toEqual({ changes, more: false });
  });

  it('check that a command result answers the command', () => {
    expect(commandResultFromWire({ type: 'put', version: 3 }, 'put')).toEqual({
      type: 'put',
      version: 3,
    });
    expect(outcome(() => commandResultFromWire({ type: 'put', version: 3 }, 'incr'))).toBe(
      'PROTOCOL',
    );
    expect(outcome(() => commandResultFromWire({ type: 'batch' }, 'batch'))).toBe('PROTOCOL');
    expect(outcome(() => commandResultFromWire([1], 'put'))).toBe('PROTOCOL');
  });
});

describe('the shard map on the wire', () => {
  const map: ShardMap = {
    epoch: 4,
    nodes: [
      { id: 1, client: '127.0.0.1:1' },
      { id: 2, client: '127.0.0.1:2' },
    ],
    shards: evenRanges(4).map((r, i) => ({
      id: i + 1,
      hashLow: r.start,
      hashHigh: r.end,
      replicas: [1, 2],
      leader: i % 2,
    })),
  };

  it('round-trips', () => {
    expect(shardMapFromWire(unpackBody(wirePackr.pack(shardMapToWire(map))))).toEqual(map);
  });

  it('refuses ranges that leave a gap, overlap or miss the end', () => {
    const wire = shardMapToWire(map) as [number, unknown[][], unknown[]];
    const gap = structuredClone(wire);
    gap[1][1]![1] = (gap[1][1]![1] as number) + 1;
    expect(outcome(() => shardMapFromWire(gap))).toBe('PROTOCOL');
    const short = structuredClone(wire);
    short[1].pop();
    expect(outcome(() => shardMapFromWire(short))).toBe('PROTOCOL');
    const twice = structuredClone(wire);
    twice[1][1]![0] = 1;
    expect(outcome(() => shardMapFromWire(twice))).toBe('PROTOCOL');
    expect(outcome(() => shardMapFromWire([1, [], []]))).toBe('PROTOCOL');
  });
});
