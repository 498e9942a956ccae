/**
 * The reconfiguring part of the nemesis: leadership transfers and replica moves, through the
 * host's own API (NodeHost.transferLeader, changeMembership, addGroup, removeGroup), interleaved
 * with the other faults.
 *
 * A transfer hands a shard's leadership to another voter: the most caught-up one, the one that
 * lags most (the leader first has to bring it up to date, or gives up after an election
 * timeout), or a follower that asks for itself.
 *
 * A move replaces one voter of a shard by a node that does not host it (so only clusters with
 * more nodes than replicas move anything), one step at a time, each step chosen from the
 * membership the shard's leader has applied, so a step that failed or timed out is simply tried
 * again: the spare node starts hosting the shard as a joining replica; a learner is added there;
 * once it has caught up it is promoted to voter; the old voter is removed (sometimes after
 * handing its leadership away, sometimes as the leader itself); once the removal is in force the
 * old node stops hosting the shard. One move runs at a time; it goes on after the chaos ends
 * until it is done.
 */
import { FlotillaError } from '../../../engine/errors.js';
import { isJoint, singleConfChange } from '../../../engine/raft/conf-change.js';
import type { SeededRandom } from '../../../engine/random.js';
import type { TimerHandle } from '../../../engine/scheduler.js';
import type { SimCluster } from './cluster.js';
import { describeError } from './node.js';

/** Simulated ms between two steps of a replica move. */
export const moveStepMs = 150;

const addLearner = (node: number) => singleConfChange('addLearner', node);
const addVoter = (node: number) => singleConfChange('addVoter', node);
const removeVoter = (node: number) => singleConfChange('removeVoter', node);

/** A replica move in progress. */
interface Move {
  shard: number;
  from: number;
  to: number;
}

/** Leadership transfers and replica moves; see the module comment. */
export class Reconfigurer {
  private move: Move | undefined;
  private stepping = false;
  private timer: TimerHandle | undefined;
  /** Moves finished, transfers that completed, and steps that failed (and were retried). */
  readonly stats = { moves: 0, transfers: 0, stepsFailed: 0 };

  constructor(
    private readonly cluster: SimCluster,
    private readonly random: SeededRandom,
  ) {}

  /** Whether no move is under way. */
  get idle(): boolean {
    return this.move === undefined;
  }

  /** Hands a random shard's leadership to another voter; see the module comment. */
  transfer(): void {
    const { cluster, random } = this;
    const shards = cluster.shardIds();
    const shard = shards[random.intBelow(shards.length)]!;
    const leader = cluster.leaderOf(shard);
    const host = leader === 0 ? undefined : cluster.node(leader).host;
    if (host === undefined) return;
    const status = host.status(shard);
    const voters = status.conf.voters.filter((id) => id !== leader);
    if (voters.length === 0) return;
    const match = (id: number) => status.progress.find((p) => p.id === id)?.match ?? 0;
    let target = voters[random.intBelow(voters.length)]!;
    if (random.chance(0.4)) target = voters.reduce((a, b) => (match(b) < match(a) ? b : a));
    const lag = status.lastIndex - match(target);
    // A follower may also ask the leader for the leadership itself.
    const asker = random.chance(0.2) ? cluster.node(target).host : undefined;
    const via = asker ?? host;
    cluster.trace.add(
      `transfer s${shard} n${leader} -> n${target} (${lag} behind${asker ? ', asked by it' : ''})`,
    );
    let pending: Promise<void>;
    try {
      pending = via.transferLeader(shard, target);
    } catch (err) {
      this.failed(`transfer s${shard} -> n${target}`, err);
      return;
    }
    pending.then(
      () => {
        this.stats.transfers++;
        cluster.trace.add(`transfer s${shard} -> n${target} done`);
      },
      (err: unknown) => this.failed(`transfer s${shard} -> n${target}`, err),
    );
  }

  /** Starts moving a random replica to a node that does not host its shard, if none is moving. */
  startMove(): void {
    const { cluster, random } = this;
    if (this.move !== undefined) return;
    const candidates = cluster.shardIds().filter((s) => {
      return cluster.replicasOf(s).length < cluster.nodes.length;
    });
    if (candidates.length === 0) return;
    const shard = candidates[random.intBelow(candidates.length)]!;
    const replicas = cluster.replicasOf(shard);
    const spare = cluster.nodes.map((n) => n.id).filter((id) => !replicas.includes(id));
    const move: Move = {
      shard,
      from: replicas[random.intBelow(replicas.length)]!,
      to: spare[random.intBelow(spare.length)]!,
    };
    this.move = move;
    cluster.trace.add(`move s${shard} n${move.from} -> n${move.to} starts`);
    this.timer = cluster.harness.every(moveStepMs, () => {
      if (this.stepping) return;
      this.stepping = true;
      this.step(move)
        .then((done) => {
          if (!done) return;
          this.timer?.cancel();
          this.move = undefined;
          this.stats.moves++;
          cluster.trace.add(`move s${shard} n${move.from} -> n${move.to} done`);
        })
        .catch((err: unknown) => this.failed(`move s${shard}`, err))
        .finally(() => {
          this.stepping = false;
        });
    });
  }

  /** One step of `move`, chosen from the membership its leader applied; true once done. */
  private async step(move: Move): Promise<boolean> {
    const { cluster, random } = this;
    const { shard, from, to } = move;
    const leader = cluster.leaderOf(shard);
    const host = leader === 0 ? undefined : cluster.node(leader).host;
    if (host === undefined) return false;
    const status = host.status(shard);
    const conf = status.conf;
    if (isJoint(conf)) return false; // the leader leaves it on its own
    const what = `move s${shard} n${from} -> n${to}`;
    try {
      if (!conf.voters.includes(to) && !conf.learners.includes(to)) {
        cluster.hostOn(shard, to);
        await this.unlessCrashed(leader, host.changeMembership(shard, addLearner(to)));
        cluster.trace.add(`${what}: learner added`);
      } else if (conf.learners.includes(to)) {
        const match = status.progress.find((p) => p.id === to)?.match ?? 0;
        if (match < status.commit) return false;
        await this.unlessCrashed(leader, host.changeMembership(shard, addVoter(to)));
        cluster.trace.add(`${what}: learner promoted`);
      } else if (conf.voters.includes(from)) {
        if (leader === from && random.chance(0.5)) {
          const others = conf.voters.filter((id) => id !== from);
          const target = others[random.intBelow(others.length)]!;
          await this.unlessCrashed(leader, host.transferLeader(shard, target));
          return false;
        }
        await this.unlessCrashed(leader, host.changeMembership(shard, removeVoter(from)));
        cluster.trace.add(`${what}: old voter removed`);
      } else {
        // The removal is committed: the old replica is no longer needed by any quorum.
        await this.unlessCrashed(from, cluster.unhostFrom(shard, from));
        return true;
      }
    } catch (err) {
      this.failed(what, err);
    }
    return false;
  }

  /** `pending`, or a CLOSED error once `node` crashes (a dead node never answers). */
  private unlessCrashed<T>(node: number, pending: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const off = this.cluster.node(node).onNextCrash(() => {
        reject(new FlotillaError('CLOSED', `n${node} crashed`, { outcome: 'unknown' }));
      });
      pending.then(
        (value) => {
          off();
          resolve(value);
        },
        (err: unknown) => {
          off();
          reject(err);
        },
      );
    });
  }

  /** Stops the current move's timer (at the end of a run). */
  stop(): void {
    this.timer?.cancel();
  }

  /**
   * A failed step or transfer is expected under faults when it is a typed error (it is traced
   * and retried); anything else is a bug.
   */
  private failed(what: string, err: unknown): void {
    this.stats.stepsFailed++;
    if (!(err instanceof FlotillaError)) {
      this.cluster.checker.fail('exception', `${what}: ${describeError(err)}`);
      return;
    }
    this.cluster.trace.add(`${what}: ${err.code}`);
  }
}
