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
import { FlotillaError } from '../../../engine/errors.js';
import type { GroupSpec, LeaderChange, NodeHost } from '../../../engine/host.js';
import type { LogStore } from '../../../engine/log/log-store.js';
import { type Entry, EntryType } from '../../../engine/raft/types.js';
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

/** `session#seq` of a command entry; undefined for entries without one (or not a command). */
export function sessionKeyOf(type: number, data: Uint8Array): string | undefined {
  if (type !== EntryType.Normal || data.length === 0) return undefined;
  let command: ReturnType<typeof decodeCommand>;
  try {
    command = decodeCommand(data);
  } catch (err) {
    // The state machine answers such an entry with an error result; it has no session.
    if (err instanceof FlotillaError) return undefined;
    throw err;
  }
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
  /** shard → index → the writes its entry made (the first replica to apply it sets them). */
  private readonly applied = new Map<number, Map<number, string>>();
  /** `${node}:${shard}` → the last index that replica applied a write at. */
  private readonly lastApplied = new Map<string, number>();
  /** shard → index → `session#seq` of the committed entry there (null: no session). */
  private readonly sessions = new Map<number, Map<number, string | null>>();
  /** `${node}:${shard}` → the highest committed index whose session was recorded. */
  private readonly recorded = new Map<string, number>();
  /** `${shard}:${index}:${term}` → hash of the entry's type and data. */
  private readonly entryHashes = new Map<string, number>();
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
        if (host.isLeader(group)) this.leading(group, node.id, host.status(group).term);
      }
    }
  }

  /** Election safety, as each host announces its own leadership (even a short-lived one). */
  leaderAnnounced(node: number, change: LeaderChange): void {
    if (change.leader === node) this.leading(change.group, node, change.term);
  }

  private leading(group: number, node: number, term: number): void {
    const key = `${group}:${term}`;
    const other = this.leaders.get(key);
    if (other !== undefined && other !== node) {
      this.fail(
        'election-safety',
        `shard ${group} has leaders n${other} and n${node} in term ${term}`,
      );
    }
    if (other !== undefined) return;
    this.leaders.set(key, node);
    this.trace.add(`s${group} led by n${node} in term ${term}`);
    this.onNewLeader?.(group, node, term);
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
        // An entry below the compaction point was applied: the replica holds it in its state.
        if (commit < r.log.firstIndex(shard) || r.log.term(shard, commit) === commitTerm) continue;
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

  /**
   * The change feed of `node`: the writes of each log index must be the same on every replica
   * that applies it, and a replica applies indexes in increasing order, each at most once. (A
   * replica that installs a snapshot skips the indexes it covers; the checksums compare states.)
   */
  onChanges(node: number, changes: readonly Change[]): void {
    const byEntry = new Map<string, { shard: number; index: number; writes: string[] }>();
    for (const c of changes) {
      const key = `${c.shard}:${c.index}`;
      const entry = byEntry.get(key) ?? { shard: c.shard, index: c.index, writes: [] };
      entry.writes.push(fingerprint(c));
      byEntry.set(key, entry);
    }
    for (const { shard, index, writes } of byEntry.values()) {
      const replica = `${node}:${shard}`;
      const last = this.lastApplied.get(replica) ?? 0;
      if (index <= last) {
        this.fail('apply-order', `shard ${shard}: n${node} applied ${index} after ${last}`);
      }
      this.lastApplied.set(replica, index);
      let truth = this.applied.get(shard);
      if (truth === undefined) {
        truth = new Map();
        this.applied.set(shard, truth);
      }
      const mine = writes.join(' ');
      const known = truth.get(index);
      if (known !== undefined && known !== mine) {
        this.fail(
          'apply-order',
          `shard ${shard}: entry ${index} wrote ${known} elsewhere but ${mine} on n${node}`,
        );
      }
      truth.set(index, mine);
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
    const first = log.firstIndex(group);
    const last = log.lastIndex(group);
    if (last < first) return;
    const where = `shard ${group} on n${node.id}`;
    const hard = log.hardState(group);
    const commitLimit = Math.min(hard.commit, last);
    // The prefix chain starts at the compaction point when some earlier check saw that entry.
    let h: number | undefined =
      first === 1 ? 0 : this.prefixes.get(`${group}:${first - 1}:${log.term(group, first - 1)}`);
    for (const e of log.entries(group, first, last + 1, Number.MAX_SAFE_INTEGER)) {
      const key = `${group}:${e.index}:${e.term}`;
      const data = mix(e.type, hashBytes(e.data));
      const seen = this.entryHashes.get(key);
      if (seen !== undefined && seen !== data) {
        this.fail('log-matching', `${where}: entry ${e.index} of term ${e.term} differs`);
      }
      this.entryHashes.set(key, data);
      if (h !== undefined) {
        h = mix(mix(h, e.term), data);
        const known = this.prefixes.get(key);
        if (known !== undefined && known !== h) {
          this.fail(
            'log-matching',
            `${where}: entry ${e.index} of term ${e.term} follows another log`,
          );
        }
        this.prefixes.set(key, h);
      }
      if (e.index <= commitLimit) this.committedEntry(where, group, e, hard.term, commitLimit);
    }
    this.checkLeaderHolds(node, group, first, last);
  }

  /** Records a committed entry (and its session); a different term there was committed before. */
  private committedEntry(
    where: string,
    group: number,
    e: Entry,
    term: number,
    commitLimit: number,
  ): void {
    const truth = mapOf(this.committed, group);
    const committed = truth.get(e.index);
    if (committed !== undefined && committed.term !== e.term) {
      this.fail(
        'committed-changed',
        `${where}: committed entry ${e.index} has term ${committed.term}; this replica holds ` +
          `term ${e.term} there, at or below its durable commit index ${commitLimit}`,
      );
    }
    if (committed === undefined || term < committed.by) {
      truth.set(e.index, { term: e.term, by: term });
    }
    this.recordSession(group, e);
  }

  private recordSession(group: number, e: Entry): void {
    const sessions = mapOf(this.sessions, group);
    if (!sessions.has(e.index)) sessions.set(e.index, sessionKeyOf(e.type, e.data) ?? null);
  }

  /**
   * Records the session of every entry newly committed on each replica's log, at every step:
   * the host compacts only applied entries, so none is compacted before this has seen it.
   */
  recordSessions(nodes: readonly CheckedNode[]): void {
    for (const node of nodes) {
      const log = node.log;
      if (log === undefined) continue;
      for (const { group } of node.groups) {
        const cursor = `${node.id}:${group}`;
        const from = Math.max(log.firstIndex(group), (this.recorded.get(cursor) ?? 0) + 1);
        const to = Math.min(log.hardState(group).commit, log.lastIndex(group));
        if (to < from) continue;
        for (const e of log.entries(group, from, to + 1, Number.MAX_SAFE_INTEGER)) {
          this.recordSession(group, e);
        }
        this.recorded.set(cursor, to);
      }
    }
  }

  /** Leader completeness: a leader holds every entry committed before its term. */
  private checkLeaderHolds(node: CheckedNode, group: number, first: number, last: number): void {
    const host = node.host;
    if (host === undefined || !host.isLeader(group)) return;
    const log = node.log!;
    const status = host.status(group);
    for (const [index, { term, by }] of this.committed.get(group) ?? []) {
      if (index < first || by >= status.term) continue;
      const held =
        index <= last ? log.term(group, index) : index <= status.lastIndex ? term : undefined;
      if (held !== term) {
        this.fail(
          'leader-completeness',
          `shard ${group} on n${node.id} leads in term ${status.term} without entry ${index} ` +
            `of term ${term}, committed by term ${by} (holds term ${held})`,
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
   * At the end, with `node` holding the shard's committed log (as far as it was not compacted):
   * no request took effect at two indexes, and every acknowledged write of the shard is
   * committed, at its version's index when the result named one. Sessions of entries compacted
   * away come from what earlier checks recorded.
   */
  checkWrites(node: CheckedNode, shard: number): void {
    const log = node.log!;
    const commit = log.hardState(shard).commit;
    const first = log.firstIndex(shard);
    const sessions = mapOf(this.sessions, shard);
    for (const e of log.entries(shard, first, commit + 1, Number.MAX_SAFE_INTEGER)) {
      sessions.set(e.index, sessionKeyOf(e.type, e.data) ?? null);
    }
    const committedSessions = new Set<string>();
    for (const key of sessions.values()) if (key !== null) committedSessions.add(key);
    const wroteAt = new Map<string, number>();
    for (const index of this.applied.get(shard)?.keys() ?? []) {
      const key = sessions.get(index);
      if (key === undefined || key === null) continue;
      const earlier = wroteAt.get(key);
      if (earlier !== undefined) {
        this.fail(
          'exactly-once',
          `shard ${shard}: request ${key} wrote at ${earlier} and ${index}`,
        );
      }
      wroteAt.set(key, index);
    }
    let known = 0;
    for (const index of sessions.keys()) if (index <= commit) known++;
    const complete = known === commit;
    for (const w of this.acked) {
      if (w.shard !== shard) continue;
      const at = w.version === undefined ? undefined : sessions.get(w.version);
      const lost =
        at !== undefined
          ? at !== w.session
          : w.version !== undefined
            ? w.version > commit
            : complete && !committedSessions.has(w.session);
      if (lost) {
        this.fail(
          'lost-write',
          `shard ${shard}: acknowledged ${w.what} (${w.session}) is not committed`,
        );
      }
    }
  }
}

/** The inner map of `outer` at `key`, created empty if missing. */
function mapOf<K, V>(outer: Map<number, Map<K, V>>, key: number): Map<K, V> {
  let inner = outer.get(key);
  if (inner === undefined) {
    inner = new Map();
    outer.set(key, inner);
  }
  return inner;
}
