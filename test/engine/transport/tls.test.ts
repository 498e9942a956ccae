import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { EntryType, MessageType, type NodeId } from '../../../engine/raft/types.js';
import type { TcpTlsOptions, TcpTransport } from '../../../engine/transport/tcp-transport.js';
import { certificateMaker, hasOpenssl } from '../../support/tls-certs.js';
import { expectVerifiedRecords, message, plain, Recorder } from './conformance.js';
import { captureLogger, connected, RawPeer, startNode, waitFor } from './tcp-support.js';

const certs = certificateMaker();
const selfSigned = certs.selfSigned;

const started: TcpTransport[] = [];
afterEach(async () => {
  for (const t of started.splice(0)) await t.close();
});
afterAll(() => certs.dispose());

async function tlsNode(id: NodeId, tls: TcpTlsOptions, recorder: Recorder) {
  const log = captureLogger();
  const t = await startNode(id, { handler: recorder.handler(id), tls, logger: log.logger });
  started.push(t);
  return { t, lines: log.lines };
}

describe.skipIf(!hasOpenssl)('TCP transport over TLS', () => {
  const cluster = hasOpenssl ? selfSigned('flotilla-cluster') : { key: '', cert: '' };
  const tls: TcpTlsOptions = { key: cluster.key, cert: cluster.cert, ca: cluster.cert };

  it('carries messages and entries between mutually authenticated nodes', async () => {
    const recorder = new Recorder();
    const a = await tlsNode(1, tls, recorder);
    const b = await tlsNode(2, tls, recorder);
    a.t.setPeers([{ id: 2, address: `127.0.0.1:${b.t.port}` }]);
    b.t.setPeers([{ id: 1, address: `127.0.0.1:${a.t.port}` }]);
    await waitFor(() => connected(a.t, 2) && connected(b.t, 1), 'TLS connections up');
    const entries = [{ term: 1, index: 1, type: EntryType.Normal, data: Uint8Array.of(4, 2) }];
    const app = message({ type: MessageType.App, from: 1, to: 2, group: 3, term: 1, entries });
    expect(a.t.send(2, [app])).toBe(true);
    await waitFor(() => recorder.messages(2).length === 1, 'the message arrives');
    expect(recorder.messages(2).map(plain)).toEqual([app]);
    expectVerifiedRecords(recorder.messages(2)[0]!);
  });

  it('refuses a node whose certificate the cluster does not trust', async () => {
    const recorder = new Recorder();
    const b = await tlsNode(2, tls, recorder);
    const stranger = selfSigned('stranger');
    const intruder = await tlsNode(1, { ...stranger, ca: stranger.cert }, recorder);
    b.t.setPeers([{ id: 1, address: `127.0.0.1:${intruder.t.port}` }]);
    intruder.t.setPeers([{ id: 2, address: `127.0.0.1:${b.t.port}` }]);
    await waitFor(() => intruder.t.stats().peers[0]!.disconnects >= 2, 'refused twice');
    expect(connected(intruder.t, 2)).toBe(false);
    expect(b.t.stats().peers[0]!.connects).toBe(0);
    expect(intruder.t.stats().authFailures).toBeGreaterThanOrEqual(2);
    expect(intruder.lines.some((l) => l.msg.includes('self-signed certificate'))).toBe(true);
  });

  it('refuses a plaintext peer without harm', async () => {
    const recorder = new Recorder();
    const b = await tlsNode(2, tls, recorder);
    b.t.setPeers([{ id: 1, address: '127.0.0.1:1' }]);
    const raw = await RawPeer.connect(b.t.port);
    await expect(raw.dialHandshake(1, 2)).rejects.toThrow();
    await raw.closed;
    await waitFor(() => b.t.stats().authFailures === 1, 'the TLS failure is counted');
    expect(b.lines.some((l) => l.msg === 'TLS handshake failed')).toBe(true);
  });
});
