/**
 * NodeHost linearizable reads (ReadIndex) in a real three-node group: real logs, real LMDB
 * states, and a transport that hands each turn's messages to the peer on the next turn and
 * counts the heartbeats that carry a leadership round.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { NodeHost } from '../../engine/host.js';
import { SegmentedLog } from '../../engine/log/segmented-log.js';
import { type Message, MessageType, type NodeId } from '../../engine/raft/types.js';
import { SeededRandom } from '../../engine/random.js';
import { encodeCommand } from '../../engine/state/commands.js';
import type { KvState } from '../../engine/state/kv-state.js';
import { FaultFs } from '../support/fault-fs.js';
import { closeState, openState } from './state/helpers.js';

const group = 1;
const voters = [1, 2, 3];

interface Member {
  host: NodeHost;
  log: SegmentedLog;
  state: KvState;
}

/** Three hosts of one group; messages travel on the next turn; round heartbeats are counted. */
class Trio {
  readonly members = new Map<NodeId, Member>();
  /** Heartbeats with a round context, by sender. */
  readonly roundBeats = new Map<NodeId, number>();

  static async start(): Promise<Trio> {
    const trio = new Trio();
    for (const id of voters) {
      const log = await SegmentedLog.open({ dir: '/log', fs: new FaultFs({ seed: id }) });
      const state = openState({ durability: 'sync' });
      const transport = {
        send: (to: NodeId, messages: Message[]) => trio.send(id, to, messages),
        sendSnapshotChunk: () => false,
      };
      // Ticks far apart: the only heartbeat rounds are the ones reads start.
      const host = new NodeHost({
        nodeId: id,
        log,
        state,
        random: new SeededRandom(id),
        transport,
        tickMs: 60_000,
      });
      host.addGroup({ group, voters });
      trio.members.set(id, { host, log, state });
    }
    return trio;
  }

  host(id: NodeId): NodeHost {
    return this.members.get(id)!.host;
  }

  private send(from: NodeId, to: NodeId, messages: Message[]): boolean {
    for (const m of messages) {
      if (m.type === MessageType.Heartbeat && m.context !== undefined) {
        this.roundBeats.set(from, (this.roundBeats.get(from) ?? 0) + 1);
      }
    }
    setImmediate(() => this.members.get(to)?.host.receive(messages));
    return true;
  }

  async stop(): Promise<void> {
    for (const m of this.members.values()) {
      await m.host.close();
      await m.log.close().catch(() => undefined);
      await closeState(m.state);
    }
    this.members.clear();
  }
}

let trio: Trio | undefined;

afterEach(async () => {
  await trio?.stop();
  trio = undefined;
});

/** Elects n1 and commits a first entry of its term, so that reads need only a round. */
async function ledByOne(): Promise<Trio> {
  const t = await Trio.start();
  trio = t;
  t.host(1).campaign(group);
  await t.host(1).whenLeader(group);
  const range = encodeCommand({ type: 'shardRange', hashLow: 0, hashHigh: 2 ** 32 });
  await t.host(1).propose(group, range);
  await t.host(1).readBarrier(group);
  return t;
}

describe('NodeHost ReadIndex', () => {
  it('many concurrent reads of a group share one leadership round', async () => {
    const t = await ledByOne();
    t.roundBeats.clear();
    const reads = Array.from({ length: 200 }, () => t.host(1).readBarrier(group));
    await Promise.all(reads);
    // One round: one heartbeat to each of the two followers, for all 200 reads.
    expect(t.roundBeats.get(1)).toBe(2);
  });

  it('a read sees every write acknowledged before it started', async () => {
    const t = await ledByOne();
    const leader = t.host(1);
    for (let i = 0; i < 5; i++) {
      await leader.propose(group, encodeCommand({ type: 'put', key: 'k', value: i }));
      // Reads queued in one turn, each after the write's acknowledgement.
      await Promise.all([leader.readBarrier(group), leader.readBarrier(group)]);
      expect(t.members.get(1)!.state.get(group, 'k')?.value).toBe(i);
    }
  });

  it('a follower forwards its batch of reads and serves them once it has applied', async () => {
    const t = await ledByOne();
    await t.host(1).propose(group, encodeCommand({ type: 'put', key: 'f', value: 7 }));
    t.roundBeats.clear();
    await Promise.all(Array.from({ length: 50 }, () => t.host(2).readBarrier(group)));
    expect(t.members.get(2)!.state.get(group, 'f')?.value).toBe(7);
    expect(t.roundBeats.get(1)).toBe(2);
  });
});
