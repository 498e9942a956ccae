/**
 * NodeHost pipelining: a group that only this node replicates keeps appending while its earlier
 * appends are being synced, and still acknowledges only what is durable. The log runs on the
 * fault-injecting file system, whose fdatasyncs the tests hold and release.
 */
import { describe, expect, it } from 'vitest';
import { type HostTransport, NodeHost } from '../../engine/host.js';
import { SegmentedLog } from '../../engine/log/segmented-log.js';
import { EntryType, type Message, MessageType } from '../../engine/raft/types.js';
import { SeededRandom } from '../../engine/random.js';
import { encodeCommand } from '../../engine/state/commands.js';
import type { KvState } from '../../engine/state/kv-state.js';
import { FaultFs, type FaultOp } from '../support/fault-fs.js';
import { closeState, openState, tempDir } from './state/helpers.js';

/** A file system whose fdatasyncs wait until released. */
class HeldSyncs {
  private waiting: (() => void)[] = [];
  holding = true;
  readonly fs = new FaultFs({ seed: 7, delay: (op) => this.delay(op) });

  private delay(op: FaultOp): Promise<void> {
    if (op !== 'datasync' || !this.holding) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Syncs waiting now. */
  get held(): number {
    return this.waiting.length;
  }

  /** Lets the waiting syncs complete. */
  release(): void {
    for (const go of this.waiting.splice(0)) go();
  }
}

const group = 1;

async function startHost(fs: FaultFs, stateDir: string) {
  const log = await SegmentedLog.open({ dir: '/log', fs, segmentBytes: 64 * 1024 });
  const state = openState({ dir: stateDir, durability: 'sync' });
  const host = new NodeHost({ nodeId: 1, log, state, random: new SeededRandom(1) });
  host.addGroup({ group, voters: [1] });
  await host.whenLocalReadsReady(group);
  return { log, state, host };
}

async function stop(parts: { log: SegmentedLog; state: KvState; host: NodeHost }) {
  await parts.host.close();
  await parts.log.close().catch(() => undefined);
  await closeState(parts.state);
}

function put(host: NodeHost, key: string, value: number): Promise<unknown> {
  return host.propose(group, encodeCommand({ type: 'put', key, value }));
}

/** Lets the host run its pending turns (setImmediate) and microtasks. */
async function turns(n = 3): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe('NodeHost pipelining (a group only this node replicates)', () => {
  it('appends the next proposals while the previous append is being synced', async () => {
    const disk = new HeldSyncs();
    disk.holding = false;
    const parts = await startHost(disk.fs, tempDir());
    // Let the appends of the election settle.
    await turns(10);
    disk.holding = true;
    const first = put(parts.host, 'a', 1);
    await turns();
    expect(disk.held).toBe(1);
    const lastBefore = parts.log.lastIndex(group);
    const second = put(parts.host, 'b', 2);
    await turns();
    // The second proposal reached the log although the first sync has not completed.
    expect(parts.log.lastIndex(group)).toBe(lastBefore + 1);
    let settled = false;
    void Promise.all([first, second]).then(() => {
      settled = true;
    });
    await turns();
    expect(settled).toBe(false);
    expect(parts.state.get(group, 'a')).toBeUndefined();
    disk.holding = false;
    disk.release();
    await Promise.all([first, second]);
    expect(parts.state.get(group, 'a')?.value).toBe(1);
    expect(parts.state.get(group, 'b')?.value).toBe(2);
    await stop(parts);
  });

  it('keeps every acknowledged write across a crash with appends in flight', async () => {
    for (let seed = 1; seed <= 12; seed++) {
      const disk = new HeldSyncs();
      disk.holding = false;
      const stateDir = tempDir();
      const parts = await startHost(disk.fs, stateDir);
      disk.holding = true;
      const random = new SeededRandom(seed);
      const acked = new Map<string, number>();
      const waves = 2 + random.intBelow(6);
      for (let wave = 0; wave < waves; wave++) {
        for (let k = 0; k < 1 + random.intBelow(20); k++) {
          const key = `k${random.intBelow(40)}`;
          const value = wave * 100 + k;
          put(parts.host, key, value).then(
            () => acked.set(key, Math.max(acked.get(key) ?? -1, value)),
            () => undefined,
          );
        }
        await turns(1 + random.intBelow(3));
        if (random.chance(0.6)) disk.release();
        await turns(1 + random.intBelow(3));
      }
      const survivor = disk.fs.crash();
      disk.holding = false;
      disk.release();
      await turns();
      await stop(parts);
      const restarted = await startHost(survivor, stateDir);
      for (const [key, value] of acked) {
        // A later unacknowledged write may have won; an acknowledged one is never lost.
        expect(restarted.state.get(group, key)?.value as number).toBeGreaterThanOrEqual(value);
      }
      await stop(restarted);
    }
  });
});

/** A transport that records what the host sends and when it flushes. */
class RecordingTransport implements HostTransport {
  readonly events: ({ kind: 'send'; messages: Message[] } | { kind: 'flush' })[] = [];
  send(_to: number, messages: Message[]): boolean {
    this.events.push({ kind: 'send', messages });
    return true;
  }
  sendSnapshotChunk(): boolean {
    return false;
  }
  flush(): void {
    this.events.push({ kind: 'flush' });
  }
  responses(): Message[] {
    return this.events.flatMap((e) => (e.kind === 'send' ? e.messages : []));
  }
}

describe('NodeHost as a follower', () => {
  it('answers an append only once it is durable, and flushes the answer in its turn', async () => {
    const disk = new HeldSyncs();
    disk.holding = false;
    const log = await SegmentedLog.open({ dir: '/log', fs: disk.fs, segmentBytes: 64 * 1024 });
    const state = openState({ dir: tempDir(), durability: 'sync' });
    const transport = new RecordingTransport();
    const host = new NodeHost({ nodeId: 1, log, state, random: new SeededRandom(1), transport });
    host.addGroup({ group, voters: [1, 2] });
    await turns(10);
    disk.holding = true;
    const data = encodeCommand({ type: 'put', key: 'a', value: 1 });
    const append: Message = {
      type: MessageType.App,
      from: 2,
      to: 1,
      group,
      term: 1,
      logTerm: 0,
      index: 0,
      entries: [{ term: 1, index: 1, type: EntryType.Normal, data }],
      commit: 0,
      reject: false,
      rejectHint: 0,
      logTermHint: 0,
    };
    host.receive([append]);
    await turns();
    expect(disk.held).toBeGreaterThan(0);
    expect(transport.responses().some((m) => m.type === MessageType.AppResp)).toBe(false);
    disk.holding = false;
    disk.release();
    await turns();
    const answer = transport.events.findIndex(
      (e) => e.kind === 'send' && e.messages.some((m) => m.type === MessageType.AppResp),
    );
    expect(answer).toBeGreaterThanOrEqual(0);
    const resp = transport.responses().find((m) => m.type === MessageType.AppResp)!;
    expect(resp).toMatchObject({ to: 2, group, index: 1, reject: false });
    // The turn that sent it flushed the transport before it ended.
    expect(transport.events.slice(answer + 1).some((e) => e.kind === 'flush')).toBe(true);
    await host.close();
    await log.close().catch(() => undefined);
    await closeState(state);
  });
});
