/**
 * NodeHost's follower apply: a follower applies the committed entries it holds durably in
 * batches (one state transaction for many entries) instead of one transaction per turn, and
 * still applies every entry within hostFollowerApplyDelayMs of simulated time when the traffic
 * stops. Real engine (log on the fault-injecting file system, LMDB, memory transport), simulated
 * time, no faults.
 */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { NodeHost } from '../../engine/host.js';
import { hostFollowerApplyDelayMs } from '../../engine/limits.js';
import { SeededRandom } from '../../engine/random.js';
import { encodeCommand } from '../../engine/state/commands.js';
import type { KvState } from '../../engine/state/kv-state.js';
import { SimCluster } from '../support/sim/cluster.js';
import { optionsForSeed } from '../support/sim/options.js';
import { simTempRoot } from '../support/sim/run.js';

const shard = 1;
const limitMs = 20_000;
let cluster: SimCluster | undefined;

afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

async function startCluster(): Promise<SimCluster> {
  const options = optionsForSeed(11, {
    profile: 'mixed',
    nodes: 3,
    shards: 1,
    faultEveryMs: 0,
    clockDrift: 0,
    leaseReadRate: 0,
    fsyncMsMax: 1,
  });
  const dir = mkdtempSync(join(simTempRoot(), 'host-follower-apply-'));
  const c = new SimCluster(options, new SeededRandom(11), dir);
  cluster = c;
  for (const node of c.nodes) node.start();
  expect(await c.runUntil(() => c.leaderOf(shard) !== 0, limitMs)).toBe(true);
  const range = encodeCommand({ type: 'shardRange', hashLow: 0, hashHigh: 2 ** 32 });
  await drive(c, hostOf(c, c.leaderOf(shard)).propose(shard, range));
  return c;
}

function hostOf(c: SimCluster, id: number): NodeHost {
  const host = c.node(id).host;
  if (host === undefined) throw new Error(`n${id} is not up`);
  return host;
}

function stateOf(c: SimCluster, id: number): KvState {
  const state = c.node(id).state;
  if (state === undefined) throw new Error(`n${id} is not up`);
  return state;
}

/** Runs the simulation until `promise` settles; returns its value or throws its error. */
async function drive<T>(c: SimCluster, promise: Promise<T>): Promise<T> {
  let outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
  promise.then(
    (value) => {
      outcome = { ok: true, value };
    },
    (error: unknown) => {
      outcome = { ok: false, error };
    },
  );
  expect(await c.runUntil(() => outcome !== undefined, limitMs)).toBe(true);
  if (!outcome!.ok) throw outcome!.error;
  return outcome!.value;
}

/** Counts the state transactions of `state` (the real applyBatch still does the work). */
function countTransactions(state: KvState): { calls: number; items: number } {
  const count = { calls: 0, items: 0 };
  const real = state.applyBatch.bind(state);
  state.applyBatch = (items, confs) => {
    if (items.length > 0) {
      count.calls++;
      count.items += items.length;
    }
    return real(items, confs);
  };
  return count;
}

describe('NodeHost follower apply', () => {
  it('applies a follower’s entries in batches, and all of them once the traffic stops', async () => {
    const c = await startCluster();
    const leader = c.leaderOf(shard);
    const follower = [1, 2, 3].find((id) => id !== leader)!;
    const leaderTxns = countTransactions(stateOf(c, leader));
    const followerTxns = countTransactions(stateOf(c, follower));
    const writes = 60;
    for (let i = 0; i < writes; i++) {
      const put = encodeCommand({ type: 'put', key: `k${i}`, value: i });
      await drive(c, hostOf(c, leader).propose(shard, put));
    }
    // One write at a time: the leader applies each in a transaction of its own (its caller
    // waits for it); the follower gathers many into one.
    expect(leaderTxns.calls).toBeGreaterThanOrEqual(writes);
    expect(followerTxns.calls).toBeLessThan(writes / 4);
    const leaderApplied = stateOf(c, leader).appliedIndex(shard);
    await c.runFor(hostFollowerApplyDelayMs + 1);
    expect(stateOf(c, follower).appliedIndex(shard)).toBe(leaderApplied);
    for (let i = 0; i < writes; i++) {
      expect(stateOf(c, follower).get(shard, `k${i}`)?.value).toBe(i);
    }
  });

  it('a follower that becomes leader applies what it held before it serves', async () => {
    const c = await startCluster();
    const leader = c.leaderOf(shard);
    const follower = [1, 2, 3].find((id) => id !== leader)!;
    for (let i = 0; i < 10; i++) {
      const put = encodeCommand({ type: 'put', key: `k${i}`, value: i });
      await drive(c, hostOf(c, leader).propose(shard, put));
    }
    await drive(c, hostOf(c, leader).transferLeader(shard, follower));
    await drive(c, hostOf(c, follower).readBarrier(shard));
    expect(stateOf(c, follower).get(shard, 'k9')?.value).toBe(9);
  });
});
