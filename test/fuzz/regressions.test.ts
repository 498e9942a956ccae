/**
 * Regression tests for the bugs the fuzzers found, each with the smallest failing input as a
 * literal. Each one failed before its fix (named in the test) and passes after it.
 */
import { describe, expect, it } from 'vitest';
import { FrameKind } from '../../engine/transport/codec.js';
import { encodeHello, encodeProof, Lane } from '../../engine/transport/handshake.js';
import { Recorder } from '../engine/transport/conformance.js';
import {
  captureLogger,
  clusterId,
  connected,
  RawPeer,
  startNode,
  waitFor,
} from '../engine/transport/tcp-support.js';

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
