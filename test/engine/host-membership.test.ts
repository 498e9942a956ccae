/**
 * NodeHost membership and leadership API on the real engine (log on the fault-injecting file
 * system, LMDB, memory transport) under simulated time, with no faults: a replica joins a
 * running shard from a snapshot, is promoted, the voter it replaces is removed and stops hosting
 * the shard; leadership is handed over; every misuse gets its typed error.
 */

import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FlotillaError } from '../../engine/errors.js';
import type { NodeHost } from '../../engine/host.js';
import { proposalTimeoutMs } from '../../engine/limits.js';
import { singleConfChange } from '../../engine/raft/conf-change.js';
import { SeededRandom } from '../../engine/random.js';
import { encodeCommand } from '../../engine/state/commands.js';
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

/** 4 nodes, one shard on n1..n3, no faults; started and led. */
async function startCluster(): Promise<SimCluster> {
  const options = optionsForSeed(7, {
    profile: 'mixed',
    nodes: 4,
    shards: 1,
    faultEveryMs: 0,
    clockDrift: 0,
    leaseReadRate: 0,
    compactionSlackEntries: 1024,
  });
  const dir = mkdtempSync(join(simTempRoot(), 'host-membership-'));
  const c = new SimCluster(options, new SeededRandom(7), dir);
  cluster = c;
  for (const node of c.nodes) node.start();
  expect(await c.runUntil(() => c.leaderOf(shard) !== 0, limitMs)).toBe(true);
  await drive(c, hostOf(c, c.leaderOf(shard)).propose(shard, rangeCommand()));
  return c;
}

function hostOf(c: SimCluster, id: number): NodeHost {
  const host = c.node(id).host;
  if (host === undefined) throw new Error(`n${id} is not up`);
  return host;
}

function rangeCommand(): Uint8Array {
  return encodeCommand({ type: 'shardRange', hashLow: 0, hashHigh: 2 ** 32 });
}

function put(key: string, value: number): Uint8Array {
  return encodeCommand({ type: 'put', key, value });
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

/** The FlotillaError code `promise` rejects with (under the driver). */
async function codeOf(c: SimCluster, promise: Promise<unknown>): Promise<string> {
  try {
    await drive(c, promise);
  } catch (err) {
    if (err instanceof FlotillaError) return err.code;
    throw err;
  }
  return 'resolved';
}

describe('NodeHost membership changes', () => {
  it('moves a replica: a joining node starts from a snapshot, is promoted, the old one leaves', async () => {
    const c = await startCluster();
    const leader = c.leaderOf(shard);
    for (let i = 0; i < 20; i++) await drive(c, hostOf(c, leader).propose(shard, put(`k${i}`, i)));
    c.hostOn(shard, 4);
    const asLearner = await drive(
      c,
      hostOf(c, leader).changeMembership(shard, singleConfChange('addLearner', 4)),
    );
    expect(asLearner).toMatchObject({ voters: [1, 2, 3], learners: [4] });
    const applied = () => c.node(leader).state!.appliedIndex(shard);
    expect(
      await c.runUntil(() => c.node(4).state!.appliedIndex(shard) === applied(), limitMs),
    ).toBe(true);
    expect(hostOf(c, 4).snapshotStats().installed).toBe(1);
    expect(c.node(4).state!.get(shard, 'k19')?.value).toBe(19);
    const promoted = await drive(
      c,
      hostOf(c, leader).changeMembership(shard, singleConfChange('addVoter', 4)),
    );
    expect(promoted.voters).toEqual([1, 2, 3, 4]);
    const out = [1, 2, 3].find((id) => id !== leader)!;
    const removed = await drive(
      c,
      hostOf(c, leader).changeMembership(shard, singleConfChange('removeVoter', out)),
    );
    expect(removed.voters).toEqual([1, 2, 3, 4].filter((id) => id !== out));
    await drive(c, c.unhostFrom(shard, out));
    expect(hostOf(c, out).hosts(shard)).toBe(false);
    expect(() => hostOf(c, out).propose(shard, put('x', 1))).toThrow(/not hosted/);
    await drive(c, hostOf(c, leader).propose(shard, put('after', 1)));
    expect(
      await c.runUntil(() => c.node(4).state!.get(shard, 'after') !== undefined, limitMs),
    ).toBe(true);
  }, 60_000);

  it('refuses a change at a follower, a second pending change, and a malformed change', async () => {
    const c = await startCluster();
    const leader = c.leaderOf(shard);
    const follower = [1, 2, 3].find((id) => id !== leader)!;
    const addLearner = singleConfChange('addLearner', 4);
    expect(await codeOf(c, hostOf(c, follower).changeMembership(shard, addLearner))).toBe(
      'NOT_LEADER',
    );
    const first = hostOf(c, leader).changeMembership(shard, addLearner);
    const second = hostOf(c, leader).changeMembership(shard, singleConfChange('addVoter', 4));
    expect(await codeOf(c, second)).toBe('BUSY');
    await drive(c, first);
    const bad = { changes: [{ type: 'addVoter' as const, node: 0 }], transition: 'auto' as const };
    expect(await codeOf(c, hostOf(c, leader).changeMembership(shard, bad))).toBe(
      'INVALID_ARGUMENT',
    );
    // Leaving a joint configuration when not in one does not apply.
    const leave = { changes: [], transition: 'auto' as const };
    expect(await codeOf(c, hostOf(c, leader).changeMembership(shard, leave))).toBe(
      'INVALID_ARGUMENT',
    );
  }, 60_000);
});

describe('NodeHost leadership transfer', () => {
  it('hands the leadership to a voter, or lets a follower ask for it', async () => {
    const c = await startCluster();
    const leader = c.leaderOf(shard);
    const target = [1, 2, 3].find((id) => id !== leader)!;
    await drive(c, hostOf(c, leader).transferLeader(shard, target));
    expect(c.leaderOf(shard)).toBe(target);
    await drive(c, hostOf(c, leader).transferLeader(shard, leader));
    expect(c.leaderOf(shard)).toBe(leader);
    await drive(c, hostOf(c, leader).propose(shard, put('k', 1)));
  }, 60_000);

  it('refuses a transfer from a follower to another node, and to a node that is no voter', async () => {
    const c = await startCluster();
    const leader = c.leaderOf(shard);
    const [a, b] = [1, 2, 3].filter((id) => id !== leader) as [number, number];
    expect(await codeOf(c, hostOf(c, a).transferLeader(shard, b))).toBe('NOT_LEADER');
    expect(await codeOf(c, hostOf(c, leader).transferLeader(shard, 4))).toBe('INVALID_ARGUMENT');
    expect(() => hostOf(c, 4).transferLeader(shard, 4)).toThrow(/not hosted/);
  }, 60_000);
});

describe('NodeHost when a leader is deposed', () => {
  it('tells callers of uncommitted proposals at once that the outcome is unknown', async () => {
    const c = await startCluster();
    const leader = c.leaderOf(shard);
    const others = [1, 2, 3, 4].filter((n) => n !== leader);
    c.network.partition([leader], others);
    const started = c.clock.now();
    let error: unknown;
    await drive(c, hostOf(c, leader).propose(shard, put('cut-off', 1))).catch((e: unknown) => {
      error = e;
    });
    expect(error).toBeInstanceOf(FlotillaError);
    const err = error as FlotillaError;
    expect(err.code).toBe('TIMEOUT');
    expect(err.details.outcome).toBe('unknown');
    expect(err.message).toContain('stopped leading');
    // CheckQuorum deposes it within two election timeouts, far inside the proposal deadline.
    expect(c.clock.now() - started).toBeLessThan(proposalTimeoutMs / 2);
    expect(hostOf(c, leader).isLeader(shard)).toBe(false);
  });
});
