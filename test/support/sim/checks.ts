/**
 * The safety checks of the cluster simulator, fed from what the real engine does:
 *
 * - election safety: at most one leader per shard and term (polled at every quiescent point);
 * - log matching: replicas holding an entry with the same (index, term) hold the same log up to
 *   it (prefix hashes over every replica's LogStore, across incarnations);
 * - committed entries never change: an entry at or below a replica's durable commit index is
 *   the same on every replica, forever; and every leader holds all of them;
 * - state-machine safety: every replica applies the same sequence of writes per shard (the
 *   change feed of each KvState, compared position by position), and replicas at the same
 *   applied index have the same state checksum;
 * - exactly once: no (session, sequence number) took effect at two log indexes;
 * - no lost write: every acknowledged write is in the committed log (at its version's index).
 *
 * A check records the first failure (see failure.ts) rather than throwing where it runs.
 */
import type { GroupSpec, NodeHost } from '../../../engine/host.js';
import type { LogStore } from '../../../engine/log/log-store.js';
import { EntryType } from '../../../engine/raft/types.js';
import type { Change } from '../../../engine/state/change-feed.js';
import { decodeCommand } from '../../../engine/state/commands.js';
import type { KvState } from '../../../engine/state/kv-state.js';
import { hashBytes } from '../raft-network.js';
import { type FailureKind, SimFailure } from './failure.js';
import type { Trace } from './trace.js';

/** What the checks read of a node (a SimNode; unit tests build one over a MemoryLogStore). */
export interface CheckedNode {
  readonly id: number;
  readonly groups: readonly GroupSpec[];
  /** Undefined while the node is down. */
  readonly log: LogStore | undefined;
  readonly host: Pick<NodeHost, 'isLeader' | 'status'> | undefined;
  readonly state: Pick<KvState, 'appliedIndex' | 'checksum'> | undefined;
}

function mix(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ b;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** `session#seq` of a command entry, undefined for entries without a session. */
export function sessionKeyOf(type: number, data: Uint8Array): string | undefined {
  if (type !== EntryType.Normal || data.length === 0) return undefined;
  const command = decodeCommand(data);
  if (!('session' in command) || command.session === null) return undefined;
  return `${Buffer.from(command.session.id).toString('utf8')}#${command.session.seq}`;
}

/** An acknowledged write, as the client saw it. */
export interface AckedWrite {
  shard: number;
  session: string;
  /** The log index that wrote it, when the result says. */
  version: number | undefined;
  what: string;
}

function fingerprint(c: Change): string {
  const value = c.type === 'put' ? JSON.stringify(c.value) : '-';
  return `${c.index}:${c.type}:${c.key.toString('latin1')}=${value}`;
}

/** Collects what the engine does and checks it; see the module comment. */
export class SafetyChecker {
  failure: SimFailure | undefined;
  /** `${shard}:${term}` → the node that led it. */
  private readonly leaders = new Map<string, number>();
  /** shard → the writes applied, in apply order (the first replica to apply one sets it). */
  private readonly applySequence = new Map<number, string[]>();
  /** shard → log indexes that wrote something. */
  private readonly writingIndexes = new Map<number, Set<number>>();
  /** `${node}:${shard}` → writes that replica has applied. */
  private readonly applyPosition = new Map<string, number>();
  /** `${shard}:${index}:${term}` → hash of the log up to that entry. */
  private readonly prefixes = new Map<string, number>();
  /**
   * shard → index → the entry's term, and the lowest term of a replica seen holding it at or
   * below its durable commit index: it was committed by then, so every leader of a later term
   * must hold it.
   */
  private readonly committed = new Map<number, Map<number, { term: number; by: number }>>();
  private readonly acked: AckedWrite[] = [];
  /** Checks run, for the statistics. */
  logChecks = 0;
  /** Told when a shard gets a leader in a term not seen before. */
  onNewLeader: ((shard: number, node: number, term: number) => void) | undefined;

  constructor(private readonly trace: Trace) {}

  /** Records a failure (the first one wins). */
  fail(kind: FailureKind, message: string): void {
    if (this.failure !== undefined) return;
    this.failure = new SimFailure(kind, message);
    this.trace.add(`FAILURE ${kind}: ${message}`);
  }

  /** Election safety, polled at a quiescent point. */
  observeLeaders(nodes: readonly CheckedNode[]): void {
    for (const node of nodes) {
      const host = node.host;
      if (host === undefined) continue;
      for (const { group } of node.groups) {
        if (!host.isLeader(group)) continue;
        const term = host.status(group).term;
        const key = `${group}:${term}`;
        const other = this.leaders.get(key);
        if (other !== undefined && other !== node.id) {
          this.fail(
            'election-safety',
            `shard ${group} has leaders n${other} and n${node.id} in term ${term}`,
          );
        }
        this.leaders.set(key, node.id);
        if (other === undefined) {
          this.trace.add(`s${group} led by n${node.id} in term ${term}`);
          this.onNewLeader?.(group, node.id, term);
        }
      }
    }
  }

  /**
   * The election-restriction invariant behind Raft's safety (§5.4): a replica that lacks the
   * highest entry any replica knows committed must not be able to win an election, i.e. fewer
   * than a quorum of the shard's live replicas may hold logs no more up to date than its own.
   * A leader that commits an entry of an earlier term by counting replicas breaks it as soon as
   * another replica holds a conflicting entry of a later term (the Figure 8 state), long before
   * that replica happens to win. Checked on the logs as written (LogStore), at every step.
   */
  checkCommitSafety(nodes: readonly CheckedNode[], replicas: (shard: number) => number[]): void {
    const shards = new Set(nodes.flatMap((n) => n.groups.map((g) => g.group)));
    for (const shard of shards) {
      const logs: { id: number; last: number; lastTerm: number; log: LogStore }[] = [];
      let commit = 0;
      let commitTerm = 0;
      for (const id of replicas(shard)) {
        const log = nodes[id - 1]?.log;
        if (log === undefined) continue;
        const last = log.lastIndex(shard);
        logs.push({ id, last, lastTerm: log.term(shard, last) ?? 0, log });
        const c = log.hardState(shard).commit;
        if (c > commit) {
          commit = c;
          commitTerm = log.term(shard, c) ?? 0;
        }
      }
      if (commit === 0 || commitTerm === 0) continue;
      const quorum = Math.floor(replicas(shard).length / 2) + 1;
      for (const r of logs) {
        if (r.log.term(shard, commit) === commitTerm) continue;
        const voters = logs.filter(
          (v) => r.lastTerm > v.lastTerm || (r.lastTerm === v.lastTerm && r.last >= v.last),
        );
        if (voters.length < quorum) continue;
        this.fail(
          'committed-unsafe',
          `shard ${shard}: entry ${commit} (term ${commitTerm}) is committed, but n${r.id} ` +
            `lacks it and could be elected by [${voters.map((v) => `n${v.id}`)}] ` +
            `(logs: ${logs.map((v) => `n${v.id} ${v.last}@t${v.lastTerm}`).join(', ')})`,
        );
      }
    }
  }

  /** The change feed of `node`: its writes must extend the shard's common apply sequence. */
  onChanges(node: number, changes: readonly Change[]): void {
    for (const c of changes) {
      const key = `${node}:${c.shard}`;
      const at = this.applyPosition.get(key) ?? 0;
      this.applyPosition.set(key, at + 1);
      let sequence = this.applySequence.get(c.shard);
      if (sequence === undefined) {
        sequence = [];
        this.applySequence.set(c.shard, sequence);
      }
      const mine = fingerprint(c);
      if (at < sequence.length) {
        if (sequence[at] !== mine) {
          this.fail(
            'apply-order',
            `shard ${c.shard}: write #${at} is ${sequence[at]} elsewhere but ${mine} on n${node}`,
          );
        }
        continue;
      }
      sequence.push(mine);
      let indexes = this.writingIndexes.get(c.shard);
      if (indexes === undefined) {
        indexes = new Set();
        this.writingIndexes.set(c.shard, indexes);
      }
      indexes.add(c.index);
    }
  }

  /** Log matching, committed entries, leader completeness, checksums at equal applied index. */
  checkLogs(nodes: readonly CheckedNode[]): void {
    this.logChecks++;
    for (const node of nodes) {
      if (node.log === undefined) continue;
      for (const { group } of node.groups) this.checkReplicaLog(node, group);
    }
    const shards = new Set(nodes.flatMap((n) => n.groups.map((g) => g.group)));
    for (const shard of shards) this.checkChecksums(nodes, shard, false);
  }

  private checkReplicaLog(node: CheckedNode, group: number): void {
    const log = node.log!;
    const host = node.host;
    const first = log.firstIndex(group);
    const last = log.lastIndex(group);
    let truth = this.committed.get(group);
    if (truth === undefined) {
      truth = new Map();
      this.committed.set(group, truth);
    }
    const where = `shard ${group} on n${node.id}`;
    let h =
      first === 1 ? 0 : this.prefixes.get(`${group}:${first - 1}:${log.term(group, first - 1)}`);
    if (h !== undefined && last >= first) {
      const hard = log.hardState(group);
      const commitLimit = Math.min(hard.commit, last);
      for (const e of log.entries(group, first, last + 1, Number.MAX_SAFE_INTEGER)) {
        h = mix(mix(h, e.term), mix(e.type, hashBytes(e.data)));
        const key = `${group}:${e.index}:${e.term}`;
        const known = this.prefixes.get(key);
        if (known !== undefined && known !== h) {
          this.fail(
            'log-matching',
            `${where}: entry ${e.index} of term ${e.term} follows another log`,
          );
        }
        this.prefixes.set(key, h);
        if (e.index > commitLimit) continue;
        const committed = truth.get(e.index);
        if (committed !== undefined && committed.term !== e.term) {
          this.fail(
            'committed-changed',
            `${where}: committed entry ${e.index} has term ${committed.term}; this replica holds ` +
              `term ${e.term} there, at or below its durable commit index ${commitLimit}`,
          );
        }
        if (committed === undefined || hard.term < committed.by) {
          truth.set(e.index, { term: e.term, by: hard.term });
        }
      }
    }
    if (host === undefined || !host.isLeader(group)) return;
    const status = host.status(group);
    for (const [index, { term, by }] of truth) {
      if (index < first || by >= status.term) continue;
      const held =
        index <= last ? log.term(group, index) : index <= status.lastIndex ? term : undefined;
      if (held !== term) {
        this.fail(
          'leader-completeness',
          `${where} leads in term ${status.term} without entry ${index} of term ${term}, ` +
            `committed by term ${by} (holds term ${held})`,
        );
      }
    }
  }

  /** Replicas of `shard` at the same applied index must have the same checksum. */
  checkChecksums(nodes: readonly CheckedNode[], shard: number, requireAll: boolean): void {
    const byApplied = new Map<number, { node: number; sum: number }>();
    const seen: string[] = [];
    for (const node of nodes) {
      const state = node.state;
      if (state === undefined || !node.groups.some((g) => g.group === shard)) continue;
      const applied = state.appliedIndex(shard);
      const sum = state.checksum(shard);
      seen.push(`n${node.id}@${applied}:${sum.toString(16)}`);
      const other = byApplied.get(applied);
      if (other !== undefined && other.sum !== sum) {
        this.fail(
          'state-divergence',
          `shard ${shard}: n${other.node} and n${node.id} applied up to ${applied} but their ` +
            `states differ (${seen.join(' ')})`,
        );
      }
      byApplied.set(applied, { node: node.id, sum });
    }
    if (requireAll && byApplied.size > 1) {
      this.fail('liveness', `shard ${shard}: replicas did not converge (${seen.join(' ')})`);
    }
  }

  /** Records a write whose result the client received. */
  acknowledged(write: AckedWrite): void {
    this.acked.push(write);
  }

  /**
   * At the end, with `node` holding the shard's whole committed log: no request took effect at
   * two indexes, and every acknowledged write of the shard is committed (at its version).
   */
  checkWrites(node: CheckedNode, shard: number): void {
    const log = node.log!;
    const commit = log.hardState(shard).commit;
    const first = log.firstIndex(shard);
    const sessions = new Map<number, string>();
    const committedSessions = new Set<string>();
    for (const e of log.entries(shard, first, commit + 1, Number.MAX_SAFE_INTEGER)) {
      const key = sessionKeyOf(e.type, e.data);
      if (key === undefined) continue;
      sessions.set(e.index, key);
      committedSessions.add(key);
    }
    const wroteAt = new Map<string, number>();
    for (const index of this.writingIndexes.get(shard) ?? []) {
      const key = sessions.get(index);
      if (key === undefined) continue;
      const earlier = wroteAt.get(key);
      if (earlier !== undefined) {
        this.fail(
          'exactly-once',
          `shard ${shard}: request ${key} wrote at ${earlier} and ${index}`,
        );
      }
      wroteAt.set(key, index);
    }
    for (const w of this.acked) {
      if (w.shard !== shard) continue;
      const lost =
        w.version !== undefined && w.version >= first
          ? sessions.get(w.version) !== w.session
          : !committedSessions.has(w.session) && first === 1;
      if (lost) {
        this.fail(
          'lost-write',
          `shard ${shard}: acknowledged ${w.what} (${w.session}) is not committed`,
        );
      }
    }
  }
}
