import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { isFlotillaError } from '../../../engine/errors.js';
import { EntryType, MessageType, type NodeId } from '../../../engine/raft/types.js';
import { encodeRaftFrame } from '../../../engine/transport/codec.js';
import { Lane } from '../../../engine/transport/handshake.js';
import { parseAddress, type TcpTransport } from '../../../engine/transport/tcp-transport.js';
import { describeTransportConformance, message, plain, Recorder } from './conformance.js';
import {
  captureLogger,
  connected,
  deadPort,
  RawPeer,
  sleep,
  startNode,
  tcpHarness,
  waitFor,
} from './tcp-support.js';

describeTransportConformance('TCP transport', tcpHarness);

/** Transports started by a test, closed after it whatever happens. */
const started: TcpTransport[] = [];
afterEach(async () => {
  for (const t of started.splice(0)) await t.close();
});

async function node(id: NodeId, options: Parameters<typeof startNode>[1]): Promise<TcpTransport> {
  const t = await startNode(id, options);
  started.push(t);
  return t;
}

function peer(id: NodeId, t: TcpTransport | number) {
  return { id, address: `127.0.0.1:${typeof t === 'number' ? t : t.port}` };
}

function beat(from: NodeId, to: NodeId, group: number) {
  return message({ type: MessageType.Heartbeat, from, to, group, term: 1 });
}

/** A node 2 that expects node 1 (the dialer) and node 3, with a short handshake timeout. */
async function acceptor() {
  const recorder = new Recorder();
  const log = captureLogger();
  const t = await node(2, {
    handler: recorder.handler(2),
    logger: log.logger,
    tuning: { handshakeTimeoutMs: 200, keepaliveIntervalMs: 50, idleTimeoutMs: 300 },
  });
  t.setPeers([peer(1, await deadPort()), peer(3, await deadPort())]);
  return { t, recorder, lines: log.lines };
}

function logged(lines: { msg: string }[], text: string): boolean {
  return lines.some((l) => l.msg.includes(text));
}

describe('TCP handshake refusals', () => {
  it('a dialer with the wrong secret is refused, and the acceptor keeps serving', async () => {
    const b = await acceptor();
    const log = captureLogger();
    const intruder = await node(1, {
      handler: new Recorder().handler(1),
      logger: log.logger,
      secret: 'not the cluster secret at all',
    });
    intruder.setPeers([peer(2, b.t)]);
    await waitFor(() => intruder.stats().authFailures >= 2, 'the dialer rejects the proof');
    expect(logged(log.lines, 'peer failed to prove the secret')).toBe(true);
    expect(connected(intruder, 2)).toBe(false);
    expect(b.t.stats().peers.find((p) => p.peer === 1)!.connects).toBe(0);
    await intruder.close();
    const recorder = new Recorder();
    const honest = await node(1, { handler: recorder.handler(1) });
    b.t.setPeers([peer(1, honest), peer(3, await deadPort())]);
    honest.setPeers([peer(2, b.t)]);
    await waitFor(() => connected(honest, 2), 'an honest node connects');
    expect(honest.send(2, [beat(1, 2, 5)])).toBe(true);
    await waitFor(() => b.recorder.messages(2).length === 1, 'the message arrives');
  });

  it('a forged proof from the dialer is refused by the acceptor', async () => {
    const b = await acceptor();
    const raw = await RawPeer.connect(b.t.port);
    await raw.dialHandshake(1, 2, { proof: 'forged' });
    await raw.closed;
    expect(b.t.stats().authFailures).toBe(1);
    expect(logged(b.lines, 'peer failed to prove the secret')).toBe(true);
  });

  it('a valid raw handshake is accepted (the raw peer itself is sound)', async () => {
    const b = await acceptor();
    const raw = await RawPeer.connect(b.t.port);
    await raw.dialHandshake(1, 2);
    await waitFor(() => b.t.stats().peers[0]!.state === 'connected', 'the raw peer is admitted');
    raw.send(encodeRaftFrame(1, 2, [beat(1, 2, 9)]));
    await waitFor(() => b.recorder.messages(2).length === 1, 'its frame is delivered');
    expect(b.recorder.messages(2).map(plain)).toEqual([beat(1, 2, 9)]);
    raw.destroy();
  });

  it('a wrong cluster id is refused', async () => {
    const b = await acceptor();
    const raw = await RawPeer.connect(b.t.port);
    await expect(raw.dialHandshake(1, 2, { cluster: 'another-cluster' })).rejects.toThrow();
    await raw.closed;
    expect(logged(b.lines, 'wrong cluster id "another-cluster"')).toBe(true);
    expect(b.t.stats().authFailures).toBe(1);
  });

  it('refuses a Hello for another node, from a stranger, or against the dialing rule', async () => {
    const b = await acceptor();
    const cases: [NodeId, NodeId, string][] = [
      [1, 99, 'dialed node 99, this is node 2'],
      [5, 2, 'node 5 is not a peer'],
      [3, 2, 'the lower id dials'],
    ];
    for (const [from, to, text] of cases) {
      const raw = await RawPeer.connect(b.t.port);
      await expect(raw.dialHandshake(from, to)).rejects.toThrow();
      await raw.closed;
      expect(logged(b.lines, text)).toBe(true);
    }
    expect(b.t.stats().authFailures).toBe(3);
  });

  it('garbage bytes and a forged huge length close the connection, never the node', async () => {
    const b = await acceptor();
    const garbage = await RawPeer.connect(b.t.port);
    garbage.send(new Uint8Array(randomBytes(4096)));
    await garbage.closed;
    const huge = await RawPeer.connect(b.t.port);
    huge.send(Uint8Array.of(0xff, 0xff, 0xff, 0x7f));
    await huge.closed;
    const early = await RawPeer.connect(b.t.port);
    early.send(encodeRaftFrame(1, 2, [beat(1, 2, 1)]));
    await early.closed;
    expect(b.t.stats().protocolErrors).toBe(3);
    expect(logged(b.lines, 'exceeds 512 B')).toBe(true);
    expect(logged(b.lines, 'before the handshake completed')).toBe(true);
    expect(b.recorder.messages(2).length).toBe(0);
    const honest = await RawPeer.connect(b.t.port);
    await honest.dialHandshake(1, 2);
    await waitFor(() => b.t.stats().peers[0]!.state === 'connected', 'still serving');
    honest.destroy();
  });

  it('a connection that never completes the handshake is closed by the timeout', async () => {
    const b = await acceptor();
    const silent = await RawPeer.connect(b.t.port);
    await silent.closed;
    expect(logged(b.lines, 'handshake not done within 200 ms')).toBe(true);
  });

  it('an authenticated connection that goes silent is closed as idle', async () => {
    const b = await acceptor();
    const raw = await RawPeer.connect(b.t.port);
    await raw.dialHandshake(1, 2);
    await raw.closed;
    expect(raw.frames.some((f) => f.kind === 'ping')).toBe(true);
    expect(logged(b.lines, 'no frame for 300 ms')).toBe(true);
  });

  it('a frame from a peer claiming another sender closes the connection', async () => {
    const b = await acceptor();
    const raw = await RawPeer.connect(b.t.port);
    await raw.dialHandshake(1, 2);
    raw.send(encodeRaftFrame(3, 2, [beat(3, 2, 1)]));
    await raw.closed;
    expect(logged(b.lines, 'raft frame addressed 3->2')).toBe(true);
    expect(b.recorder.messages(2).length).toBe(0);
  });
});

describe('TCP connection lifecycle', () => {
  it('reconnects with backoff after the acceptor restarts', async () => {
    const r1 = new Recorder();
    const r2 = new Recorder();
    const log = captureLogger();
    const a = await node(1, { handler: r1.handler(1), logger: log.logger });
    let b = await node(2, { handler: r2.handler(2) });
    const port = b.port;
    a.setPeers([peer(2, b)]);
    b.setPeers([peer(1, a)]);
    await waitFor(() => connected(a, 2), 'first connection');
    await b.close();
    await waitFor(() => a.stats().peers[0]!.disconnects >= 6, 'several failed redials');
    const failures = log.lines.filter((l) => l.fields?.peer === 2 && l.fields?.kind === 'io');
    expect(failures.filter((l) => l.level === 'warn').length).toBeLessThanOrEqual(4);
    expect(failures.some((l) => l.level === 'debug')).toBe(true);
    b = await node(2, { handler: r2.handler(2), listenPort: port });
    b.setPeers([peer(1, a)]);
    await waitFor(() => connected(a, 2), 'reconnected');
    expect(a.send(2, [beat(1, 2, 3)])).toBe(true);
    expect(b.send(1, [beat(2, 1, 4)])).toBe(true);
    await waitFor(() => r2.messages(2).length === 1 && r1.messages(1).length === 1, 'traffic');
    expect(a.stats().peers[0]!.connects).toBe(4);
  });

  it('a restarted dialer replaces its half-open old connection', async () => {
    const b = await acceptor();
    // The first incarnation's socket stays open on the acceptor's side, as after a crash that
    // the acceptor has not noticed yet.
    const old = await RawPeer.connect(b.t.port);
    await old.dialHandshake(1, 2);
    await waitFor(() => b.t.stats().peers[0]!.connects === 1, 'first incarnation admitted');
    const restarted = await RawPeer.connect(b.t.port);
    await restarted.dialHandshake(1, 2);
    await old.closed;
    expect(logged(b.lines, 'replaced by a newer connection')).toBe(true);
    restarted.send(encodeRaftFrame(1, 2, [beat(1, 2, 8)]));
    await waitFor(() => b.recorder.messages(2).length === 1, 'traffic on the new connection');
    expect(b.t.stats().peers[0]!.state).toBe('connected');
    expect(b.t.stats().peers[0]!.connects).toBe(2);
    restarted.destroy();
  });

  it('drops and counts once the queue to a dead peer is full, without harm', async () => {
    const log = captureLogger();
    const a = await node(1, {
      handler: new Recorder().handler(1),
      logger: log.logger,
      tuning: { sendQueueMessagesMax: 50 },
    });
    a.setPeers([peer(2, await deadPort())]);
    const results: boolean[] = [];
    for (let i = 0; i < 20; i++) {
      for (let j = 0; j < 5; j++) results.push(a.send(2, [beat(1, 2, i * 5 + j)]));
      await sleep(5);
    }
    expect(results.filter(Boolean).length).toBe(50);
    const s = a.stats().peers[0]!;
    expect(s.droppedMessages).toBe(50);
    expect(s.queuedMessages).toBe(50);
    expect(s.sentMessages).toBe(0);
    expect(s.state).toBe('connecting');
    expect(s.disconnects).toBeGreaterThan(0);
  });

  it('stops writing while the peer does not read, and drains when it reads again', async () => {
    const recorder = new Recorder();
    const b = await node(2, {
      handler: recorder.handler(2),
      tuning: { sendQueueBytesMax: 1024 * 1024, idleTimeoutMs: 60_000 },
    });
    b.setPeers([peer(1, await deadPort())]);
    const raw = await RawPeer.connect(b.port);
    await raw.dialHandshake(1, 2);
    await waitFor(() => b.stats().peers[0]!.state === 'connected', 'raw peer admitted');
    raw.socket.pause();
    const data = new Uint8Array(64 * 1024);
    let index = 0;
    let refused = 0;
    for (let turn = 0; turn < 400 && refused < 20; turn++) {
      const entries = [{ term: 1, index: ++index, type: EntryType.Normal, data }];
      const app = message({ type: MessageType.App, from: 2, to: 1, group: 1, term: 1, entries });
      if (!b.send(1, [app])) refused++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const s = b.stats().peers[0]!;
    expect(refused).toBe(20);
    expect(s.droppedMessages).toBe(20);
    expect(s.queuedBytes).toBeLessThanOrEqual(1024 * 1024);
    expect(s.sentMessages + s.queuedMessages + s.droppedMessages).toBe(index);
    raw.socket.resume();
    await waitFor(() => b.stats().peers[0]!.queuedMessages === 0, 'the queue drains');
    raw.destroy();
  });
});

describe('TCP flush', () => {
  it('flush writes what is queued at once, in one frame per peer, before its own turn', async () => {
    const r2 = new Recorder();
    const a = await node(1, { handler: new Recorder().handler(1) });
    const b = await node(2, { handler: r2.handler(2) });
    a.setPeers([peer(2, b)]);
    b.setPeers([peer(1, a)]);
    await waitFor(() => connected(a, 2), 'connected');
    const framesBefore = a.stats().peers[0]!.sentFrames;
    expect(a.send(2, [beat(1, 2, 1)])).toBe(true);
    expect(a.send(2, [beat(1, 2, 2), beat(1, 2, 3)])).toBe(true);
    // Nothing leaves before the transport's own turn, unless flushed.
    expect(a.stats().peers[0]!.sentFrames).toBe(framesBefore);
    a.flush();
    expect(a.stats().peers[0]!.sentFrames).toBe(framesBefore + 1);
    expect(a.stats().peers[0]!.queuedMessages).toBe(0);
    // The flush already scheduled finds nothing left; a flush with nothing queued writes none.
    a.flush();
    await sleep(20);
    expect(a.stats().peers[0]!.sentFrames).toBe(framesBefore + 1);
    await waitFor(() => r2.messages(2).length === 3, 'the three heartbeats');
    expect(a.send(2, [beat(1, 2, 4)])).toBe(true);
    await waitFor(() => r2.messages(2).length === 4, 'a send without flush still leaves');
  });
});

describe('TCP configuration', () => {
  it('refuses malformed options and addresses with CONFIG errors', async () => {
    const handler = new Recorder().handler(1);
    await expect(startNode(1, { handler, secret: 'short' })).rejects.toSatisfy((e) =>
      isFlotillaError(e, 'CONFIG'),
    );
    await expect(startNode(0, { handler })).rejects.toSatisfy((e) => isFlotillaError(e, 'CONFIG'));
    const tuning = { keepaliveIntervalMs: 1000, idleTimeoutMs: 1500 };
    await expect(startNode(1, { handler, tuning })).rejects.toThrow(/twice keepalive/);
    const t = await node(1, { handler });
    expect(() => t.setPeers([{ id: 2, address: 'nowhere' }])).toThrow(/host:port/);
    expect(() => t.setPeers([{ id: 1, address: '127.0.0.1:1' }])).toThrow(/another node/);
    expect(parseAddress('[::1]:7000')).toEqual({ host: '::1', port: 7000 });
  });

  it('keeps both lanes apart: a chunk frame on the Raft lane is a protocol error', async () => {
    const b = await acceptor();
    const raw = await RawPeer.connect(b.t.port);
    await raw.dialHandshake(1, 2, { lane: Lane.Snapshot });
    await waitFor(() => b.t.stats().peers[0]!.snapshotState === 'connected', 'snapshot lane up');
    raw.send(encodeRaftFrame(1, 2, [beat(1, 2, 1)]));
    await raw.closed;
    expect(logged(b.lines, 'raft frame on lane 1')).toBe(true);
  });
});
