import { describe, expect, it } from 'vitest';
import { MessageType, type NodeId } from '../../../engine/raft/types.js';
import { SeededRandom } from '../../../engine/random.js';
import { MemoryNetwork } from '../../../engine/transport/memory-transport.js';
import type { PeerInfo, QueueTuning, Transport } from '../../../engine/transport/transport.js';
import {
  type Cluster,
  describeTransportConformance,
  type Harness,
  message,
  plain,
  Recorder,
} from './conformance.js';

function memoryHarness(codec: boolean): Harness {
  return {
    create(nodes: NodeId[], tuning: Partial<QueueTuning> = {}): Promise<Cluster> {
      const network = new MemoryNetwork({ random: new SeededRandom(1), codec });
      const recorder = new Recorder();
      const transports = new Map<NodeId, Transport>();
      const peers = (node: NodeId): PeerInfo[] =>
        nodes.filter((n) => n !== node).map((id) => ({ id, address: '' }));
      for (const node of nodes) {
        const t = network.attach(node, recorder.handler(node), tuning);
        t.setPeers(peers(node));
        transports.set(node, t);
      }
      const cluster: Cluster = {
        transport: (node) => transports.get(node)!,
        peers,
        recorder,
        turn: () => {
          network.step();
          network.advance(1);
          return Promise.resolve();
        },
        until: (done, what) => {
          for (let steps = 0; steps < 10_000; steps++) {
            network.step();
            if (done()) return Promise.resolve();
            network.advance(1);
          }
          return Promise.reject(new Error(`never happened: ${what}`));
        },
        quiesce: () => {
          network.settle();
          return Promise.resolve();
        },
        close: async () => {
          for (const t of transports.values()) await t.close();
        },
      };
      return Promise.resolve(cluster);
    },
  };
}

describeTransportConformance('memory transport (codec on)', memoryHarness(true));
describeTransportConformance('memory transport (codec off)', memoryHarness(false));

function beat(from: NodeId, to: NodeId, group: number) {
  return message({ type: MessageType.Heartbeat, from, to, group, term: 1 });
}

function threeNodes(seed: number) {
  const network = new MemoryNetwork({ random: new SeededRandom(seed) });
  const recorder = new Recorder();
  const nodes = [1, 2, 3];
  const transports = nodes.map((n) => {
    const t = network.attach(n, recorder.handler(n));
    t.setPeers(nodes.filter((p) => p !== n).map((id) => ({ id, address: '' })));
    return t;
  });
  return { network, recorder, transports };
}

describe('memory network faults', () => {
  it('cuts both directions with a symmetric partition, and heals', () => {
    const { network, recorder, transports } = threeNodes(1);
    network.partition([1], [2, 3]);
    transports[0]!.send(2, [beat(1, 2, 1)]);
    transports[1]!.send(1, [beat(2, 1, 1)]);
    transports[1]!.send(3, [beat(2, 3, 1)]);
    network.settle();
    expect(recorder.messages(2).length).toBe(0);
    expect(recorder.messages(1).length).toBe(0);
    expect(recorder.messages(3).length).toBe(1);
    expect(transports[0]!.stats().peers[0]!.state).toBe('disconnected');
    network.heal();
    transports[0]!.send(2, [beat(1, 2, 2)]);
    network.settle();
    expect(recorder.messages(2).map((m) => m.group)).toEqual([2]);
  });

  it('cuts one direction only with a one-way partition', () => {
    const { network, recorder, transports } = threeNodes(2);
    network.cut(1, 2);
    transports[0]!.send(2, [beat(1, 2, 1)]);
    transports[1]!.send(1, [beat(2, 1, 1)]);
    network.settle();
    expect(recorder.messages(2).length).toBe(0);
    expect(recorder.messages(1).length).toBe(1);
  });

  it('loses everything to and from a node that is down, until it is up', () => {
    const { network, recorder, transports } = threeNodes(3);
    transports[0]!.send(2, [beat(1, 2, 1)]);
    network.flush();
    network.down(2);
    network.deliver();
    transports[2]!.send(2, [beat(3, 2, 1)]);
    network.settle();
    expect(recorder.messages(2).length).toBe(0);
    network.up(2);
    transports[2]!.send(2, [beat(3, 2, 2)]);
    network.settle();
    expect(recorder.messages(2).map((m) => m.group)).toEqual([2]);
    expect(network.stats().framesDropped).toBe(2);
  });

  it('drops, duplicates, delays and reorders frames at the configured rates', () => {
    const { network, recorder, transports } = threeNodes(4);
    network.setFaults({ dropRate: 0.2, duplicateRate: 0.2, delayTicksMin: 1, delayTicksMax: 4 });
    network.setFaults({ reorderRate: 0.3, reorderTicksMax: 5 });
    const frames = 1000;
    for (let i = 0; i < frames; i++) {
      transports[0]!.send(2, [beat(1, 2, i)]);
      network.step();
      network.advance(1);
    }
    network.settle();
    const stats = network.stats();
    expect(stats.framesSent).toBe(frames);
    expect(stats.framesDropped).toBeGreaterThan(150);
    expect(stats.framesDropped).toBeLessThan(250);
    expect(stats.framesDuplicated).toBeGreaterThan(110);
    expect(stats.framesDelivered).toBe(frames - stats.framesDropped + stats.framesDuplicated);
    const groups = recorder.messages(2).map((m) => m.group);
    const inversions = groups.filter((g, i) => i > 0 && g < groups[i - 1]!).length;
    expect(inversions).toBeGreaterThan(50);
  });

  it('keeps the snapshot lane in order and free of duplicates under every fault', () => {
    const { network, recorder, transports } = threeNodes(7);
    network.setFaults({ duplicateRate: 0.5, delayTicksMin: 1, delayTicksMax: 6 });
    network.setFaults({ reorderRate: 0.5, reorderTicksMax: 8 });
    const snapshot = {
      index: 9,
      term: 2,
      conf: {
        voters: [1, 2],
        votersOutgoing: [],
        learners: [],
        learnersNext: [],
        autoLeave: false,
      },
    };
    for (let seq = 0; seq < 200; seq++) {
      const chunk = {
        group: 1,
        from: 1,
        to: 2,
        term: 2,
        snapshot,
        seq,
        last: seq === 199,
        data: Uint8Array.of(seq & 0xff),
      };
      expect(transports[0]!.sendSnapshotChunk(2, chunk)).toBe(true);
      transports[0]!.send(2, [beat(1, 2, seq)]);
      network.step();
      network.advance(1);
    }
    network.settle();
    expect(recorder.chunks(2).map((c) => c.chunk.seq)).toEqual([...Array(200).keys()]);
    const groups = recorder.messages(2).map((m) => m.group);
    expect(groups.filter((g, i) => i > 0 && g < groups[i - 1]!).length).toBeGreaterThan(10);
  });

  it('replays exactly from the same seed', () => {
    const run = (seed: number) => {
      const { network, recorder, transports } = threeNodes(seed);
      network.setFaults({ dropRate: 0.1, duplicateRate: 0.1, delayTicksMax: 3, reorderRate: 0.2 });
      for (let i = 0; i < 200; i++) {
        transports[i % 3]!.send(((i + 1) % 3) + 1, [beat((i % 3) + 1, ((i + 1) % 3) + 1, i)]);
        network.step();
        network.advance(1);
      }
      network.settle();
      return [1, 2, 3].map((n) => recorder.messages(n).map(plain));
    };
    expect(run(42)).toEqual(run(42));
    expect(run(42)).not.toEqual(run(43));
  });

  it('reads its time from an injected clock', () => {
    let now = 0;
    const network = new MemoryNetwork({ random: new SeededRandom(5), now: () => now });
    const recorder = new Recorder();
    const a = network.attach(1, recorder.handler(1));
    const b = network.attach(2, recorder.handler(2));
    a.setPeers([{ id: 2, address: '' }]);
    b.setPeers([{ id: 1, address: '' }]);
    network.setFaults({ delayTicksMin: 10, delayTicksMax: 10 });
    a.send(2, [beat(1, 2, 1)]);
    network.step();
    now = 9;
    expect(network.step()).toBe(0);
    now = 10;
    expect(network.step()).toBe(1);
    expect(() => network.advance(1)).toThrow(/injected clock/);
  });

  it('lets a restarted node attach again after its old transport closed', async () => {
    const { network, recorder, transports } = threeNodes(6);
    await transports[1]!.close();
    const again = network.attach(2, recorder.handler(2));
    again.setPeers([{ id: 1, address: '' }]);
    transports[0]!.send(2, [beat(1, 2, 8)]);
    network.settle();
    expect(recorder.messages(2).map((m) => m.group)).toEqual([8]);
  });
});
