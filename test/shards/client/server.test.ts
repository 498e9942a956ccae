import { createServer } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { FlotillaError } from '../../../engine/errors.js';
import { clientProtocolVersion } from '../../../engine/limits.js';
import { encodeCommand } from '../../../engine/state/commands.js';
import {
  ClientFrameKind,
  decodeErrorBody,
  encodeBatchFrame,
  encodeClientFrame,
  encodeClientHello,
  encodeRequestBody,
  encodeRequestFrame,
  newClientNonce,
  RequestOp,
  unpackBody,
  wirePackr,
} from '../../../shards/client/protocol.js';
import { serveNodeClients, startClientServer } from '../../../shards/client/server.js';
import { Flotilla } from '../../../shards/index.js';
import type { NodeService } from '../../../shards/node-service.js';
import { evenRanges, keyHash, rangeIndexOf } from '../../../shards/partition.js';
import { certificateMaker, hasOpenssl } from '../../support/tls-certs.js';
import { clusterId, codeOf, RawClient, type Served, secret, serveStore, sleep } from './support.js';

let served: Served | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

async function stillServes(s: Served): Promise<void> {
  const db = await s.connect();
  await db.put('alive', 1);
  expect(await db.get('alive')).toBe(1);
}

function warnings(s: Served): string[] {
  return s.lines.filter((l) => l.level === 'warn').map((l) => `${l.msg} ${l.fields?.reason}`);
}

describe('the client handshake against a real server', () => {
  it('refuses a client with the wrong secret, and the client says AUTH_FAILED', async () => {
    served = await serveStore(2);
    const wrong = Flotilla.connect([served.endpoint], { secret: 'not the secret at all!' });
    expect(await codeOf(wrong)).toBe('AUTH_FAILED');
    // A client that answers anyway, with a proof made from another secret, is refused by the
    // node with an AUTH_FAILED frame (kind 7) instead of Ready.
    await expect(
      RawClient.authenticated(served.server.address.port, 'another secret, long enough'),
    ).rejects.toThrow(/no Ready: kind 7/);
    expect(warnings(served).some((w) => w.includes('failed to prove the secret'))).toBe(true);
    await stillServes(served);
  });

  it('refuses a client that expects another cluster id, telling it why', async () => {
    served = await serveStore(2);
    const other = Flotilla.connect([served.endpoint], { secret, clusterId: 'another-cluster' });
    const err = (await other.then(
      () => undefined,
      (e: unknown) => e,
    )) as FlotillaError;
    expect(err.code).toBe('AUTH_FAILED');
    expect(err.message).toMatch(/another cluster/);
    await stillServes(served);
  });

  it('accepts a client that names no cluster id and tells it the cluster', async () => {
    served = await serveStore(2);
    const db = await Flotilla.connect([served.endpoint], { secret });
    expect(db.clusterId).toBe(clusterId);
    await db.close();
  });

  it('closes a connection that sends garbage, and only that one', async () => {
    served = await serveStore(2);
    const port = served.server.address.port;
    const good = await RawClient.authenticated(port);
    const garbage = await RawClient.connect(port);
    garbage.write(Buffer.from('GET / HTTP/1.1\r\nHost: flotilla\r\n\r\n'));
    await garbage.whenClosed();
    const huge = await RawClient.connect(port);
    huge.write(Uint8Array.of(0xff, 0xff, 0xff, 0x00));
    await huge.whenClosed();
    const early = await RawClient.connect(port);
    early.write(encodeRequestFrame(1, { op: RequestOp.ShardMap }));
    await early.whenClosed();
    good.write(encodeRequestFrame(7, { op: RequestOp.Status }));
    const answer = await good.next();
    expect(answer.kind).toBe(ClientFrameKind.Response);
    expect(answer.requestId).toBe(7);
    expect(warnings(served).length).toBeGreaterThanOrEqual(3);
    good.close();
  });

  it('closes a connection that does not finish the handshake in time', async () => {
    served = await serveStore(2, { tuning: { handshakeTimeoutMs: 150 } });
    const silent = await RawClient.connect(served.server.address.port);
    const half = await RawClient.connect(served.server.address.port);
    half.write(
      encodeClientHello({
        version: clientProtocolVersion,
        clusterId: new Uint8Array(0),
        nonce: newClientNonce(),
      }),
    );
    await silent.whenClosed();
    await half.whenClosed();
    expect(warnings(served).filter((w) => w.includes('handshake timed out'))).toHaveLength(2);
  });

  it('closes an authenticated connection that stays silent past the idle timeout', async () => {
    served = await serveStore(2, { tuning: { idleTimeoutMs: 200 } });
    const idle = await RawClient.authenticated(served.server.address.port);
    await idle.whenClosed();
    expect(served.server.connectionCount()).toBe(0);
  });

  it('keeps a client connection with nothing to do alive through its pings', async () => {
    served = await serveStore(2, { tuning: { idleTimeoutMs: 3_000 } });
    const db = await served.connect();
    await db.put('k', 1);
    await sleep(3_500);
    expect(served.server.connectionCount()).toBe(1);
    expect(await db.get('k')).toBe(1);
  });

  it('closes connections beyond the limit on arrival', async () => {
    served = await serveStore(2, { tuning: { connectionsMax: 2 } });
    const port = served.server.address.port;
    const a = await RawClient.authenticated(port);
    const b = await RawClient.connect(port);
    const c = await RawClient.connect(port);
    await c.whenClosed();
    expect(served.lines.some((l) => l.msg.includes('too many connections'))).toBe(true);
    a.close();
    b.close();
  });
});

describe('serving a node on its configured client address', () => {
  it('listens where the config says, and refuses a port in use with CONFIG', async () => {
    served = await serveStore(2);
    const node = {
      service: served.store.nodeService,
      clusterId,
      clientAddress: `127.0.0.1:${served.server.address.port}`,
    };
    const err = await serveNodeClients(node, { secret }).then(
      () => undefined,
      (e: unknown) => e as FlotillaError,
    );
    expect(err?.code).toBe('CONFIG');
    expect(err?.message).toContain(node.clientAddress);
    const [port] = await freePort();
    const server = await serveNodeClients(
      { ...node, clientAddress: `127.0.0.1:${port}` },
      {
        secret,
        logger: () => {},
      },
    );
    try {
      const db = await Flotilla.connect([`127.0.0.1:${port}`], { secret, clusterId });
      await db.put('k', 'v');
      expect(await db.get('k')).toBe('v');
      await db.close();
    } finally {
      await server.close();
    }
  });
});

describe('serving requests', () => {
  it('answers BUSY beyond the in-flight limit of a connection', async () => {
    served = await serveStore(2, { tuning: { requestsInFlightMax: 2 } });
    const raw = await RawClient.authenticated(served.server.address.port);
    const frames = Array.from({ length: 10 }, (_, i) =>
      encodeRequestFrame(i + 1, {
        op: RequestOp.Read,
        shard: 1,
        key: Buffer.from('k'),
        consistency: 'linearizable',
      }),
    );
    raw.write(Buffer.concat(frames));
    const answers = await Promise.all(frames.map(() => raw.next()));
    const busy = answers.filter(
      (f) => f.kind === ClientFrameKind.Error && decodeErrorBody(f.body).code === 'BUSY',
    );
    expect(busy.length).toBeGreaterThan(0);
    expect(answers.filter((f) => f.kind === ClientFrameKind.Response).length).toBeGreaterThan(0);
    expect(new Set(answers.map((f) => f.requestId)).size).toBe(10);
    raw.close();
  });

  it('answers a request it cannot serve with an error and keeps the connection', async () => {
    served = await serveStore(2);
    const raw = await RawClient.authenticated(served.server.address.port);
    const range = encodeCommand({ type: 'shardRange', hashLow: 0, hashHigh: 2 ** 32 });
    raw.write(encodeClientFrame(ClientFrameKind.Request, 1, wirePackr.pack([2, 1, range])));
    const refused = await raw.next();
    expect(decodeErrorBody(refused.body).code).toBe('INVALID_ARGUMENT');
    raw.write(encodeRequestFrame(2, { op: RequestOp.AppliedIndex, shard: 99 }));
    expect(decodeErrorBody((await raw.next()).body).code).toBe('STALE_EPOCH');
    raw.write(encodeRequestFrame(3, { op: RequestOp.AppliedIndex, shard: 1 }));
    expect(unpackBody((await raw.next()).body)).toBeGreaterThan(0);
    raw.close();
  });

  it('serves the requests of a Batch frame and answers them in a batch', async () => {
    served = await serveStore(2);
    const raw = await RawClient.authenticated(served.server.address.port);
    const n = 20;
    const ids = Array.from({ length: n }, (_, i) => i + 1);
    const bodies = ids.map((id) =>
      encodeRequestBody({ op: RequestOp.AppliedIndex, shard: id === 5 ? 99 : 1 }),
    );
    const kinds = ids.map(() => ClientFrameKind.Request);
    raw.write(encodeBatchFrame(kinds, ids, bodies, 0, n));
    const answers = [];
    for (let i = 0; i < n; i++) answers.push(await raw.next());
    expect(answers.map((f) => f.requestId).sort((a, b) => a - b)).toEqual(ids);
    for (const f of answers) {
      if (f.requestId === 5) expect(decodeErrorBody(f.body).code).toBe('STALE_EPOCH');
      else expect(unpackBody(f.body)).toBeGreaterThan(0);
    }
    expect(raw.batches).toBeGreaterThan(0);
    // An answer-kind item from a client is a protocol violation: the connection closes.
    const response = [ClientFrameKind.Response, ClientFrameKind.Request];
    raw.write(encodeBatchFrame(response, [1, 2], [bodies[0]!, bodies[1]!], 0, 2));
    await raw.whenClosed();
    expect(warnings(served).some((w) => w.includes('in a client'))).toBe(true);
  });

  it('closes a connection whose request does not parse, and only that one', async () => {
    served = await serveStore(2);
    const port = served.server.address.port;
    const other = await RawClient.authenticated(port);
    for (const body of [Uint8Array.of(0xc1), wirePackr.pack([42]), wirePackr.pack('x')]) {
      const raw = await RawClient.authenticated(port);
      raw.write(encodeClientFrame(ClientFrameKind.Request, 1, body));
      await raw.whenClosed();
    }
    other.write(encodeRequestFrame(1, { op: RequestOp.ShardMap }));
    expect((await other.next()).kind).toBe(ClientFrameKind.Response);
    other.close();
  });

  it('stops reading from a client that does not read its answers', async () => {
    const count = { served: 0 };
    served = await serveStore(2, { tuning: { sendBufferBytesMax: 64 * 1024 } });
    const db = await served.connect();
    await db.put('big', Buffer.alloc(256 * 1024, 7));
    // A second server over the same node, counting what it serves.
    const service = served.store.nodeService;
    const counting: NodeService = Object.create(service, {
      read: {
        value: (...args: Parameters<NodeService['read']>) => {
          count.served++;
          return service.read(...args);
        },
      },
    });
    const server = await startClientServer({
      service: counting,
      port: 0,
      clusterId,
      secret,
      tuning: { sendBufferBytesMax: 64 * 1024 },
      logger: () => {},
    });
    try {
      const raw = await RawClient.authenticated(server.address.port);
      raw.socket.pause();
      const n = 400;
      const frames = Array.from({ length: n }, (_, i) =>
        encodeRequestFrame(i + 1, {
          op: RequestOp.Read,
          shard: shardOf('big', 2),
          key: Buffer.from('big'),
          consistency: 'stale',
        }),
      );
      raw.write(Buffer.concat(frames));
      await sleep(500);
      const servedWhilePaused = count.served;
      expect(servedWhilePaused).toBeLessThan(n / 4);
      raw.socket.resume();
      for (let i = 0; i < n; i++) expect((await raw.next()).kind).toBe(ClientFrameKind.Response);
      expect(count.served).toBe(n);
      raw.close();
    } finally {
      await server.close();
    }
  });
});

/** A port nobody listens on right now. */
async function freePort(): Promise<number[]> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return [port];
}

/** The shard of `key` in a store of `shards` even shards. */
function shardOf(key: string, shards: number): number {
  return (
    rangeIndexOf(
      evenRanges(shards).map((r) => r.start),
      keyHash(Buffer.from(key)),
    ) + 1
  );
}

const certs = certificateMaker();
afterAll(() => certs.dispose());
const selfSigned = certs.selfSigned;

describe.skipIf(!hasOpenssl)('the client protocol over TLS', () => {
  it('serves a client that trusts the node certificate and refuses one that does not', async () => {
    const node = selfSigned('flotilla-node');
    const stranger = selfSigned('stranger');
    served = await serveStore(2, { tls: { key: node.key, cert: node.cert } });
    const db = await served.connect({ tls: { ca: node.cert } });
    await db.put('secure', 'yes');
    expect(await db.get('secure')).toBe('yes');
    expect(await codeOf(served.connect({ tls: { ca: stranger.cert } }))).toBe('AUTH_FAILED');
    expect(await codeOf(served.connect({ timeoutMs: 1_000 }))).not.toBe('ok');
  });
});
