/**
 * Regression tests for the bugs the fuzzers found, each with the smallest failing input as a
 * literal. Each one failed before its fix (named in the test) and passes after it.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isFlotillaError } from '../../engine/errors.js';
import { batchOpsMax, shardsMax } from '../../engine/limits.js';
import { openNodeDir } from '../../engine/node-dir.js';
import { decodeCommand, encodeCommand } from '../../engine/state/commands.js';
import type { KvState } from '../../engine/state/kv-state.js';
import { decodeChunk, encodeChunk, encodeTrailer } from '../../engine/state/snapshot-format.js';
import { packr } from '../../engine/state/value-codec.js';
import { FrameKind } from '../../engine/transport/codec.js';
import { encodeHello, encodeProof, Lane } from '../../engine/transport/handshake.js';
import { parseClusterConfig } from '../../shards/cluster-config.js';
import { crc32c } from '../../wasm/index.js';
import { Recorder } from '../engine/transport/conformance.js';
import {
  captureLogger,
  clusterId,
  connected,
  RawPeer,
  startNode,
  waitFor,
} from '../engine/transport/tcp-support.js';
import { closeTempStates, openTempState } from './state-seeds.js';

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    return isFlotillaError(err) ? err.code : String(err);
  }
}

describe('regressions: engine/node-dir.ts', () => {
  const root = mkdtempSync(join(tmpdir(), 'flotilla-regress-node-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('refuses a node.json whose shard count is impossible', () => {
    const dir = join(root, 'n');
    const file = openNodeDir(dir, { clusterId: 'c1', nodeId: 1, shards: 16 }).paths.identityFile;
    const identity = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    // Found as { shards: 0 } opened with { nodeId: 1 }: accepted, with 0 shards.
    for (const shards of [0, -1, shardsMax + 1]) {
      writeFileSync(file, JSON.stringify({ ...identity, shards }));
      expect(codeOf(() => openNodeDir(dir, { nodeId: 1 }))).toBe('CORRUPT_STATE');
    }
    writeFileSync(file, JSON.stringify({ ...identity, nodeId: 0 }));
    expect(codeOf(() => openNodeDir(dir, { nodeId: 0 }))).toBe('CORRUPT_STATE');
  });
});

describe('regressions: engine/transport/tcp-transport.ts', () => {
  it('does not count a stranger that claims a peer id against that peer', async () => {
    const recorder = new Recorder();
    const { logger } = captureLogger();
    const target = await startNode(9, { handler: recorder.handler(9), logger });
    const peer = await startNode(2, { handler: recorder.handler(2), logger });
    try {
      target.setPeers([{ id: 2, address: `127.0.0.1:${peer.port}` }]);
      peer.setPeers([{ id: 9, address: `127.0.0.1:${target.port}` }]);
      await waitFor(() => connected(target, 2), 'the peer connected');
      const stats = () => target.stats().peers.find((p) => p.peer === 2)!;
      const before = stats().disconnects;
      // A Hello claiming to be node 2, then a Proof of 32 zero bytes.
      const raw = await RawPeer.connect(target.port);
      const nonce = new Uint8Array(32);
      const hello = { version: 1, lane: Lane.Raft, dialer: 2, acceptor: 9, nonce };
      raw.send(encodeHello({ ...hello, clusterId: Buffer.from(clusterId) }));
      await raw.handshakeBody(FrameKind.Welcome);
      raw.send(encodeProof(new Uint8Array(32)));
      await raw.closed;
      expect(target.stats().authFailures).toBe(1);
      expect(stats().disconnects).toBe(before);
      expect(connected(target, 2)).toBe(true);
    } finally {
      await peer.close();
      await target.close();
    }
  });
});

describe('regressions: engine/state/commands.ts decodeCommand', () => {
  let state: KvState | undefined;
  afterAll(() => closeTempStates(state));

  it('refuses a put whose MessagePack value does not parse, so it cannot poison the key', () => {
    // Found as a put of a bigint with one byte set; smallest form: a truncated fixarray.
    const truncated = packr.pack([1, 1, null, Buffer.from('k'), Buffer.from([1, 0x92])]);
    expect(codeOf(() => decodeCommand(truncated))).toBe('INVALID_ARGUMENT');
    // 0xc1 is never used by MessagePack; a trailing byte after a whole value is not one value.
    const neverUsed = packr.pack([1, 1, null, Buffer.from('k'), Buffer.from([1, 0x91, 0xc1])]);
    expect(codeOf(() => decodeCommand(neverUsed))).toBe('INVALID_ARGUMENT');
    const trailing = packr.pack([1, 1, null, Buffer.from('k'), Buffer.from([1, 0x00, 0x00])]);
    expect(codeOf(() => decodeCommand(trailing))).toBe('INVALID_ARGUMENT');

    // Before the fix the put applied, and a later incr of the key threw out of applyBatch on
    // every replica (as would get, exec, and any change listener).
    state = openTempState();
    state.onChanges(() => {});
    const [put] = state.applyBatch([{ shard: 1, index: 1, term: 1, data: truncated }]);
    expect(put).toMatchObject({ type: 'error', code: 'INVALID_ARGUMENT' });
    const incr = encodeCommand({ type: 'incr', key: 'k', by: 1 });
    expect(state.applyBatch([{ shard: 1, index: 2, term: 1, data: incr }])).toEqual([
      { type: 'incr', value: 1, version: 2 },
    ]);
    expect(state.get(1, 'k')).toEqual({ value: 1, version: 2 });
  });

  it('refuses what encodeCommand refuses: a longer key, a larger batch', () => {
    const longKey = packr.pack([1, 2, null, Buffer.alloc(4001, 0x6b)]);
    expect(codeOf(() => decodeCommand(longKey))).toBe('KEY_TOO_LARGE');
    const op = [2, Buffer.from('k')];
    const batch = packr.pack([1, 5, null, Array.from({ length: batchOpsMax + 1 }, () => op)]);
    expect(codeOf(() => decodeCommand(batch))).toBe('INVALID_ARGUMENT');
  });
});

describe('regressions: engine/state/kv-state.ts changes()', () => {
  let state: KvState | undefined;
  afterAll(() => closeTempStates(state));

  it('refuses a read limit that is not a number >= 0 instead of ignoring it', () => {
    state = openTempState();
    const put = encodeCommand({ type: 'put', key: 'k', value: 1 });
    state.applyBatch([{ shard: 1, index: 1, term: 1, data: put }]);
    expect(codeOf(() => state!.changes(1, 0, Number.NaN))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => state!.changes(1, 0, -1))).toBe('INVALID_ARGUMENT');
    expect(state.changes(1, 0, 0)).toEqual([]);
  });

  it('returns at most a fractional limit, rounded down (found in long mode: 5e-324)', () => {
    expect(state!.changes(1, 0, 5e-324)).toEqual([]);
    expect(state!.changes(1, 0, 1.5)).toHaveLength(1);
  });

  it('answers a cursor at the largest safe index (found in long mode: an AssertionError)', () => {
    expect(state!.changes(1, Number.MAX_SAFE_INTEGER)).toEqual([]);
  });
});

describe('regressions: engine/state/snapshot-format.ts and snapshot.ts', () => {
  let states: KvState[] = [];
  afterAll(() => closeTempStates(...states));

  it('calls a damaged chunk corrupt, not another version, whatever byte the damage hit', () => {
    const chunk = encodeChunk(1, 1, 0, new Uint8Array(32));
    const damaged = Uint8Array.from(chunk);
    damaged[8] = 0;
    damaged[0]! ^= 1;
    expect(codeOf(() => decodeChunk(damaged))).toBe('CORRUPT_STATE');
    // A chunk that verifies but carries another version is one.
    const other = Uint8Array.from(chunk);
    other[8] = 2;
    new DataView(other.buffer).setUint32(0, crc32c(other.subarray(4)), true);
    expect(codeOf(() => decodeChunk(other))).toBe('VERSION_MISMATCH');
  });

  it('refuses a chunk whose reserved bytes are set (found in long mode: an end chunk)', () => {
    const chunk = Uint8Array.from(encodeChunk(3, 1, 2, new Uint8Array(20)));
    chunk[10] = 1;
    new DataView(chunk.buffer).setUint32(0, crc32c(chunk.subarray(4)), true);
    expect(codeOf(() => decodeChunk(chunk))).toBe('CORRUPT_STATE');
  });

  it('rejects a consistent stream with a session index beyond 2^53: CORRUPT_STATE', async () => {
    const [source, target] = [openTempState(), openTempState()];
    states = [source, target];
    const put = {
      type: 'put' as const,
      key: 'k',
      value: 1,
      session: { id: 'abc', seq: 1, time: 5 },
    };
    source.applyBatch([{ shard: 1, index: 1, term: 1, data: encodeCommand(put) }]);
    const chunks: Uint8Array[] = [];
    for await (const c of source.exportSnapshot(1)) chunks.push(Uint8Array.from(c));
    const [begin, data, end] = chunks as [Uint8Array, Uint8Array, Uint8Array];
    // The session record's index field (u64 big-endian), set to 2^53; the chunk CRC and the end
    // chunk's content checksum recomputed to match.
    const payload = Buffer.from(data.subarray(24));
    const index = payload.indexOf('abc') + 3 + 4 + 8;
    payload.writeBigUInt64BE(2n ** 53n, index);
    const checksum = crc32c(begin.subarray(24), crc32c(payload));
    const trailer = encodeTrailer({ keyCount: 1, sessionCount: 1, checksum });
    const forged = [begin, encodeChunk(2, 1, 1, payload), encodeChunk(3, 1, 2, trailer)];
    expect(end[9]).toBe(3);
    const before = target.checksum(1);
    // Before the fix: an AssertionError from the commit's age index, not CORRUPT_STATE.
    const err = await target.installSnapshot(1, forged).then(
      () => 'accepted',
      (e: unknown) => (isFlotillaError(e) ? `${e.code}: ${e.message}` : String(e)),
    );
    expect(err).toBe('CORRUPT_STATE: snapshot rejected: a session record holds impossible values');
    expect(target.checksum(1)).toBe(before);
  });
});

describe('regressions: shards/cluster-config.ts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-regress-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const base = { clusterId: 'a', secretFile: 'secret', shards: 1, replicas: 1 };
  const parse = (raw: unknown) => codeOf(() => parseClusterConfig(raw, 'cluster.json', dir));
  const nodes = (...addresses: [string, string][]) =>
    addresses.map(([raft, client], i) => ({ id: i + 1, raft, client }));

  it('refuses a bigint with CONFIG instead of a TypeError', () => {
    expect(parse({ ...base, shards: 0n, nodes: nodes(['h:1', 'h:2']) })).toBe('CONFIG');
  });

  it('sees one endpoint behind two spellings', () => {
    const byCase = nodes(['127.0.0.1:1', '127.0.0.1:2'], ['NODE-A.example:5', 'node-a.example:5']);
    expect(parse({ ...base, nodes: byCase })).toBe('CONFIG');
    const byForm = nodes(['[::1]:7', '[0::1]:8'], ['[0:0:0:0:0:0:0:1]:8', 'h:9']);
    expect(parse({ ...base, nodes: byForm })).toBe('CONFIG');
  });

  it('refuses a bracketed host that is not IPv6, and unknown node fields', () => {
    expect(parse({ ...base, nodes: nodes(['[...]:1', 'h:2']) })).toBe('CONFIG');
    const extra = [{ id: 1, raft: 'h:1', client: 'h:2', extra: 0 }];
    expect(parse({ ...base, nodes: extra })).toBe('CONFIG');
  });
});
