/**
 * A deterministic in-memory network of Raft replicas for the core alone (no log, no transport):
 * nodes host one replica per group; every replica is a RaftNode over a MemoryRaftStorage driven
 * exactly as the Ready/advance contract (engine/raft/ready.ts) asks. Everything random comes from
 * one seed, so a run replays exactly.
 *
 * Faults: drop, duplicate, delay (hence reorder), directed link cuts (partitions), crash and
 * restart (only what was persisted before the crash survives; a Ready may be held "in flight"
 * for a few turns after its early messages left, and a crash then loses its writes).
 *
 * Checked on every Ready: at most one leader per term; leader completeness (a new leader holds
 * every entry applied anywhere); log matching (one (index, term) means one prefix, across every
 * replica and incarnation); a leader never loses an entry of its own term; committed entries
 * never change and every replica applies the same sequence (state machine safety); commit is
 * monotonic; every accepted proposal is delivered with its data or reported dropped, and a
 * 'superseded' drop really lost its index; every read's index covers every write completed
 * before it was requested.
 */
import { RaftNode } from '../../engine/raft/raft-node.js';
import type { RaftConfig, Ready } from '../../engine/raft/ready.js';
import { copyConfState, MemoryRaftStorage } from '../../engine/raft/storage.js';
import {
  type ConfState,
  type Entry,
  EntryType,
  type Message,
  MessageType,
  type ReadState,
} from '../../engine/raft/types.js';
import { SeededRandom } from '../../engine/random.js';
import { raftTestConfig } from './raft-config.js';

/** A broken Raft safety property (or harness contract). */
export class InvariantViolation extends Error {
  constructor(message: string) {
    super(`invariant violated: ${message}`);
    this.name = 'InvariantViolation';
  }
}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantViolation(message);
}

/** FNV-1a over bytes. */
export function hashBytes(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193) >>> 0;
  return h;
}

function mix(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ b;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Bytes of a string (proposal payloads in tests are strings). */
export function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/** A string from bytes. */
export function text(data: Uint8Array): string {
  return decoder.decode(data);
}

/** Message faults applied when a message is sent. */
export interface Faults {
  /** Probability that a message is lost. */
  drop: number;
  /** Probability that a message is delivered twice. */
  duplicate: number;
  /** Delivery delay, uniform in [0, delayMax] turns (reorders messages). */
  delayMax: number;
}

/** How a network is built. */
export interface NetworkOptions {
  /** Node ids (one replica of every group on each). */
  nodes: number[];
  /** Number of groups (ids 1..groups). */
  groups?: number;
  /** Initial voters (default: every node). */
  voters?: number[];
  /** Initial learners. */
  learners?: number[];
  /** Nodes that start as joining replicas: no membership until a snapshot brings one. */
  joining?: number[];
  seed?: number;
  /** Overrides of every replica's RaftConfig. */
  config?: Partial<RaftConfig>;
  faults?: Partial<Faults>;
  /** Probability that a Ready's writes stay in flight for 1..3 turns after its messages leave. */
  holdReadyChance?: number;
  /** Pre-existing logs (group 1..n alike): per node, the terms of entries 1, 2, ... */
  initialLogs?: Record<number, number[]>;
  /** Pre-existing hard state per node (term defaults to the last log term). */
  initialTerms?: Record<number, number>;
  /** Compact a replica's log once it has applied this many entries past its first index. */
  compactAfter?: number;
}

/** The membership of a joining replica: none yet. */
function emptyConf(): ConfState {
  return { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
}

interface InFlight {
  at: number;
  seq: number;
  msg: Message;
}

interface PendingProposal {
  term: number;
  data: string;
}

/** What the whole group has agreed on, learned from every replica's Ready. */
interface GroupTruth {
  /** `${index}:${term}` → prefix hash of the log up to that entry. */
  logPrefix: Map<string, number>;
  /** index → (term, data hash) of the entry applied there. */
  applied: Map<number, { term: number; dataHash: number }>;
  /** index → state machine hash after applying it. */
  smHashAt: Map<number, number>;
  /** term → its leader. */
  leaders: Map<number, number>;
  /** Highest index applied anywhere (a completed write). */
  maxApplied: number;
}

/** One group's replica on one node, with its "host" state (disk, state machine, clients). */
export class Replica {
  readonly node: number;
  readonly group: number;
  /** The disk: survives crashes. */
  readonly storage: MemoryRaftStorage;
  /** The current incarnation's core (replaced on restart). */
  raft!: RaftNode;
  incarnation = 0;
  /** State machine (persisted atomically with its applied index). */
  smIndex = 0;
  smHash = 0;
  /** Every entry this replica applied, in order (across incarnations). */
  readonly appliedEntries: Entry[] = [];
  /** Prefix hash of the persisted log at each index. */
  readonly prefix = new Map<number, number>();
  /** The hard state as of the last fsync (a crash loses later unsynced writes). */
  syncedHardState = { term: 0, vote: 0, commit: 0 };
  /** A Ready whose writes are in flight, and the turn they complete. */
  held: Ready | null = null;
  heldUntil = 0;
  /** Role and term as of the latest Ready's soft state. */
  role = 'follower';
  /** Accepted proposals awaiting their outcome (this incarnation). */
  readonly proposals = new Map<number, PendingProposal>();
  /** Outstanding reads: context key → highest index applied anywhere when requested. */
  readonly reads = new Map<string, number>();
  /** Every ReadState and dropped read/proposal delivered (for scenario tests). */
  readonly readStates: ReadState[] = [];
  readonly droppedReads: string[] = [];
  readonly dropped: Ready['dropped'] = [];

  constructor(node: number, group: number, storage: MemoryRaftStorage) {
    this.node = node;
    this.group = group;
    this.storage = storage;
  }
}

function readKey(context: Uint8Array): string {
  return text(context);
}

/** The network. */
export class RaftNetwork {
  /** The current turn (simulated time). */
  now = 0;
  readonly rng: SeededRandom;
  readonly nodes: number[];
  readonly groups: number;
  faults: Faults;
  holdReadyChance: number;
  /** Optional test hook at send time: false drops the message, a Message replaces it. */
  filter: ((m: Message) => boolean | Message) | undefined = undefined;
  private readonly options: NetworkOptions;
  private readonly replicas = new Map<string, Replica>();
  private readonly truths = new Map<number, GroupTruth>();
  private readonly down = new Set<number>();
  private readonly cut = new Set<string>();
  private inflight: InFlight[] = [];
  private seq = 0;
  private readCounter = 0;
  private proposalCounter = 0;
  /** Messages sent, by type (for tests counting round trips). */
  readonly sent = new Map<MessageType, number>();

  constructor(options: NetworkOptions) {
    this.options = options;
    this.nodes = options.nodes;
    this.groups = options.groups ?? 1;
    this.rng = new SeededRandom(options.seed ?? 1);
    this.faults = { drop: 0, duplicate: 0, delayMax: 0, ...options.faults };
    this.holdReadyChance = options.holdReadyChance ?? 0;
    const conf: ConfState = {
      voters: (options.voters ?? options.nodes).slice().sort((a, b) => a - b),
      votersOutgoing: [],
      learners: (options.learners ?? []).slice().sort((a, b) => a - b),
      learnersNext: [],
      autoLeave: false,
    };
    for (let group = 1; group <= this.groups; group++) {
      this.truths.set(group, {
        logPrefix: new Map(),
        applied: new Map(),
        smHashAt: new Map([[0, 0]]),
        leaders: new Map(),
        maxApplied: 0,
      });
      for (const node of options.nodes) {
        const joining = options.joining?.includes(node) === true;
        this.createReplica(node, group, joining ? emptyConf() : conf);
      }
    }
  }

  private createReplica(node: number, group: number, conf: ConfState): void {
    const storage = new MemoryRaftStorage(copyConfState(conf));
    const terms = this.options.initialLogs?.[node] ?? [];
    const entries: Entry[] = terms.map((term, k) => ({
      term,
      index: k + 1,
      type: EntryType.Normal,
      data: bytes(`i${k + 1}t${term}`),
    }));
    storage.append(entries);
    const term = this.options.initialTerms?.[node] ?? terms[terms.length - 1] ?? 0;
    storage.setHardState({ term, vote: 0, commit: 0 });
    const replica = new Replica(node, group, storage);
    replica.syncedHardState = storage.getHardState();
    this.replicas.set(`${node}/${group}`, replica);
    this.recordPersisted(replica, entries, 0);
    replica.raft = this.newRaft(replica);
  }

  private newRaft(r: Replica): RaftNode {
    const seed = mix(mix(this.options.seed ?? 1, r.node), mix(r.group, r.incarnation));
    const config = raftTestConfig(r.node, r.group, {
      random: new SeededRandom(seed),
      ...this.options.config,
      applied: r.smIndex,
    });
    return new RaftNode(config, r.storage);
  }

  // ---- Access ----------------------------------------------------------------------------------

  /** The replica of `group` on `node`. */
  replica(node: number, group = 1): Replica {
    const r = this.replicas.get(`${node}/${group}`);
    if (r === undefined) throw new Error(`no replica ${node}/${group}`);
    return r;
  }

  /** The RaftNode of `group` on `node`. */
  raft(node: number, group = 1): RaftNode {
    return this.replica(node, group).raft;
  }

  /** The persisted log of `group` on `node` (what survives a crash). */
  logOf(node: number, group = 1): Entry[] {
    const storage = this.replica(node, group).storage;
    return storage.entries(storage.firstIndex(), storage.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
  }

  /** Terms of the persisted log of `group` on `node`, from its first index. */
  termsOf(node: number, group = 1): number[] {
    return this.logOf(node, group).map((e) => e.term);
  }

  /** Whether `node` is up. */
  isUp(node: number): boolean {
    return !this.down.has(node);
  }

  /** The leader of `group` with the highest term among live replicas, 0 if none. */
  leaderOf(group = 1): number {
    let best = 0;
    let bestTerm = -1;
    for (const node of this.nodes) {
      if (this.down.has(node)) continue;
      const raft = this.raft(node, group);
      const term = raft.hardState().term;
      if (raft.isLeader() && term > bestTerm) {
        best = node;
        bestTerm = term;
      }
    }
    return best;
  }

  /** Messages of `type` in flight. */
  inflightOf(type: MessageType): Message[] {
    return this.inflight.filter((f) => f.msg.type === type).map((f) => f.msg);
  }

  /** Number of messages in flight. */
  inflightCount(): number {
    return this.inflight.length;
  }

  /** The highest index applied by any replica of `group` (a completed write). */
  maxApplied(group = 1): number {
    return this.truths.get(group)!.maxApplied;
  }

  // ---- Faults ----------------------------------------------------------------------------------

  /** Cuts every link between the sets `a` and `b` (both directions). */
  partition(a: number[], b: number[]): void {
    for (const x of a) {
      for (const y of b) {
        this.cut.add(`${x}>${y}`);
        this.cut.add(`${y}>${x}`);
      }
    }
  }

  /** Cuts `node` off from every other node. */
  isolate(node: number): void {
    this.partition(
      [node],
      this.nodes.filter((n) => n !== node),
    );
  }

  /** Cuts the one-way link from → to. */
  cutLink(from: number, to: number): void {
    this.cut.add(`${from}>${to}`);
  }

  /** Restores every link. */
  heal(): void {
    this.cut.clear();
  }

  /** Crashes `node`: unpersisted writes, in-flight Readies and client state are lost. */
  crash(node: number): void {
    if (this.down.has(node)) return;
    this.down.add(node);
    for (let group = 1; group <= this.groups; group++) {
      const r = this.replica(node, group);
      r.held = null;
      r.storage.setHardState(r.syncedHardState); // a commit-only write was not fsynced
      r.proposals.clear();
      r.reads.clear();
    }
  }

  /** Restarts `node` from what it persisted. */
  restart(node: number): void {
    if (!this.down.has(node)) return;
    this.down.delete(node);
    for (let group = 1; group <= this.groups; group++) {
      const r = this.replica(node, group);
      r.incarnation++;
      r.role = 'follower';
      r.raft = this.newRaft(r);
    }
  }

  // ---- Clients ---------------------------------------------------------------------------------

  /** Proposes `data` at `node`; accepted proposals are tracked until their outcome. */
  propose(node: number, data: string, group = 1): ReturnType<RaftNode['propose']> {
    const r = this.replica(node, group);
    const result = r.raft.propose(bytes(data));
    if (result.ok) r.proposals.set(result.index, { term: result.term, data });
    return result;
  }

  /** Proposes a unique payload at `node`. */
  proposeNext(node: number, group = 1): ReturnType<RaftNode['propose']> {
    return this.propose(node, `p${++this.proposalCounter}@${node}`, group);
  }

  /** Requests a read at `node`; returns its context key, or undefined if refused. */
  read(node: number, group = 1, mode?: 'safe' | 'lease'): string | undefined {
    const r = this.replica(node, group);
    const key = `r${++this.readCounter}@${node}`;
    const result = r.raft.readIndex(bytes(key), mode);
    if (!result.ok) return undefined;
    r.reads.set(key, this.truths.get(group)!.maxApplied);
    return key;
  }

  /** Proposals accepted at live replicas whose outcome is still unknown. */
  unresolvedProposals(group = 1): number {
    let n = 0;
    for (const node of this.nodes) {
      if (!this.down.has(node)) n += this.replica(node, group).proposals.size;
    }
    return n;
  }

  // ---- Driving ---------------------------------------------------------------------------------

  /** Ticks `node` (every group) `times` times. */
  tick(node: number, times = 1): void {
    if (this.down.has(node)) return;
    for (let i = 0; i < times; i++) {
      for (let group = 1; group <= this.groups; group++) this.replica(node, group).raft.tick();
    }
  }

  /** Ticks every live node once. */
  tickAll(): void {
    for (const node of this.nodes) this.tick(node);
  }

  /** Drains every live replica's Ready once (held writes complete when due). */
  processAll(): boolean {
    let any = false;
    for (const r of this.replicas.values()) {
      if (!this.down.has(r.node) && this.process(r)) any = true;
    }
    return any;
  }

  /** Delivers every in-flight message due by now, in delivery order. */
  deliverDue(): number {
    const due = this.inflight.filter((f) => f.at <= this.now);
    if (due.length === 0) return 0;
    this.inflight = this.inflight.filter((f) => f.at > this.now);
    due.sort((a, b) => a.at - b.at || a.seq - b.seq);
    for (const f of due) this.deliver(f.msg);
    return due.length;
  }

  /**
   * Runs Readies and delivers every message (ignoring delays, not cuts) until nothing moves.
   * Time does not advance: no ticks. Returns the rounds taken.
   */
  stabilize(maxRounds = 10_000): number {
    for (let round = 0; round < maxRounds; round++) {
      const processed = this.processAll();
      const pending = this.inflight;
      this.inflight = [];
      pending.sort((a, b) => a.at - b.at || a.seq - b.seq);
      for (const f of pending) this.deliver(f.msg);
      const held = [...this.replicas.values()].some((r) => r.held !== null);
      if (!processed && pending.length === 0 && !held) return round;
      if (held) this.now++;
    }
    throw new Error('network did not stabilize');
  }

  /** Makes `node` campaign, then stabilizes (it wins if a quorum is reachable and agrees). */
  elect(node: number, group = 1): void {
    const result = this.raft(node, group).campaign();
    if (!result.ok) throw new Error(`campaign refused: ${result.reason}`);
    this.stabilize();
  }

  /** One simulated turn: deliver due messages, then drain Readies. */
  turn(): void {
    this.now++;
    this.deliverDue();
    this.processAll();
  }

  private deliver(msg: Message): void {
    const sender = this.replicas.get(`${msg.from}/${msg.group}`);
    if (this.down.has(msg.to) || this.cut.has(`${msg.from}>${msg.to}`)) {
      if (msg.type === MessageType.Snap && sender !== undefined && !this.down.has(msg.from)) {
        sender.raft.reportSnapshot(msg.to, false);
      }
      return;
    }
    this.replica(msg.to, msg.group).raft.step(msg);
    if (msg.type === MessageType.Snap && sender !== undefined && !this.down.has(msg.from)) {
      sender.raft.reportSnapshot(msg.to, true);
    }
  }

  private post(original: Message): void {
    this.sent.set(original.type, (this.sent.get(original.type) ?? 0) + 1);
    let msg = original;
    if (this.filter !== undefined) {
      const verdict = this.filter(msg);
      if (verdict === false) {
        this.lose(msg);
        return;
      }
      if (verdict !== true) msg = verdict;
    }
    const f = this.faults;
    if (f.drop > 0 && this.rng.chance(f.drop)) {
      this.lose(msg);
      return;
    }
    const copies = f.duplicate > 0 && this.rng.chance(f.duplicate) ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      const delay = f.delayMax > 0 ? this.rng.intBelow(f.delayMax + 1) : 0;
      this.inflight.push({ at: this.now + delay, seq: this.seq++, msg });
    }
  }

  /** A lost message; the sender's transport notices a failed snapshot stream. */
  private lose(msg: Message): void {
    if (msg.type === MessageType.Snap) this.raft(msg.from, msg.group).reportSnapshot(msg.to, false);
  }

  // ---- The host loop of one replica ------------------------------------------------------------

  private process(r: Replica): boolean {
    if (r.held !== null) {
      if (this.now < r.heldUntil) return false;
      const rd = r.held;
      r.held = null;
      this.complete(r, rd);
      return true;
    }
    if (!r.raft.hasReady()) return false;
    const rd = r.raft.ready();
    this.observeSoftState(r, rd);
    for (const m of rd.messages) this.post(m);
    if (this.holdReadyChance > 0 && this.rng.chance(this.holdReadyChance)) {
      r.held = rd;
      r.heldUntil = this.now + 1 + this.rng.intBelow(3);
      return true;
    }
    this.complete(r, rd);
    return true;
  }

  private complete(r: Replica, rd: Ready): void {
    this.persist(r, rd);
    for (const m of rd.messagesAfterPersist) this.post(m);
    this.apply(r, rd);
    r.raft.advance(rd);
  }

  private observeSoftState(r: Replica, rd: Ready): void {
    const soft = rd.softState;
    if (soft === undefined) return;
    r.role = soft.role;
    if (soft.role !== 'leader') return;
    const truth = this.truths.get(r.group)!;
    const other = truth.leaders.get(soft.term);
    check(
      other === undefined || other === r.node,
      `group ${r.group}: two leaders in term ${soft.term}: ${other} and ${r.node}`,
    );
    truth.leaders.set(soft.term, r.node);
    // Leader completeness: every entry applied anywhere is in the new leader's log.
    const firstNew = rd.entries[0]?.index ?? Number.POSITIVE_INFINITY;
    for (const [index, applied] of truth.applied) {
      let term: number | undefined;
      if (index >= firstNew) term = rd.entries[index - firstNew]?.term;
      else term = r.storage.term(index);
      if (term === undefined && index < r.storage.firstIndex()) continue; // compacted
      check(
        term === applied.term,
        `group ${r.group}: leader ${r.node} of term ${soft.term} lacks committed entry ${index}`,
      );
    }
  }

  private persist(r: Replica, rd: Ready): void {
    const truth = this.truths.get(r.group)!;
    if (rd.snapshot !== undefined) {
      const snap = rd.snapshot;
      const logHash = truth.logPrefix.get(`${snap.index}:${snap.term}`);
      const smHash = truth.smHashAt.get(snap.index);
      check(logHash !== undefined, `snapshot ${snap.index}:${snap.term} of an unknown entry`);
      check(smHash !== undefined, `snapshot ${snap.index} of a state nobody applied`);
      r.storage.applySnapshot(snap);
      r.prefix.clear();
      r.prefix.set(snap.index, logHash);
      r.smIndex = snap.index;
      r.smHash = smHash;
    }
    if (rd.entries.length > 0) {
      this.checkLeaderAppendOnly(r, rd);
      const first = rd.entries[0]!.index;
      for (let i = first; i <= r.storage.lastIndex(); i++) r.prefix.delete(i);
      r.storage.append(rd.entries);
      this.recordPersisted(r, rd.entries, first);
    }
    if (rd.hardState !== undefined) {
      const old = r.storage.getHardState();
      check(rd.hardState.commit >= old.commit, `${r.node}/${r.group}: durable commit went back`);
      check(rd.hardState.term >= old.term, `${r.node}/${r.group}: durable term went back`);
      r.storage.setHardState(rd.hardState);
    }
    if (rd.mustSync) r.syncedHardState = r.storage.getHardState();
    const commit = r.storage.getHardState().commit;
    check(commit <= r.storage.lastIndex(), `${r.node}/${r.group}: commit beyond durable log`);
  }

  /** A leader never drops or rewrites an entry of its own term. */
  private checkLeaderAppendOnly(r: Replica, rd: Ready): void {
    if (r.role !== 'leader') return;
    const term = r.raft.hardState().term;
    const first = rd.entries[0]!.index;
    const last = rd.entries[rd.entries.length - 1]!.index;
    for (let i = first; i <= r.storage.lastIndex(); i++) {
      if (r.storage.term(i) !== term) continue;
      check(i <= last, `${r.node}/${r.group}: leader of term ${term} truncated its entry ${i}`);
      check(rd.entries[i - first]!.term === term, `leader rewrote its entry ${i}`);
    }
  }

  private recordPersisted(r: Replica, entries: Entry[], first: number): void {
    if (entries.length === 0) return;
    const truth = this.truths.get(r.group)!;
    let h = first <= 1 ? 0 : r.prefix.get(first - 1);
    check(h !== undefined, `${r.node}/${r.group}: no prefix below ${first}`);
    for (const e of entries) {
      h = mix(mix(h, e.term), mix(e.type, hashBytes(e.data)));
      r.prefix.set(e.index, h);
      const key = `${e.index}:${e.term}`;
      const known = truth.logPrefix.get(key);
      check(known === undefined || known === h, `group ${r.group}: log matching broken at ${key}`);
      truth.logPrefix.set(key, h);
    }
  }

  private apply(r: Replica, rd: Ready): void {
    const truth = this.truths.get(r.group)!;
    const dropped = new Map<number, string>();
    for (const d of rd.dropped) {
      r.dropped.push(d);
      for (let i = d.fromIndex; i <= d.toIndex; i++) {
        const p = r.proposals.get(i);
        if (p !== undefined && p.term === d.term) dropped.set(i, d.reason);
      }
    }
    for (const e of rd.committedEntries) this.applyEntry(r, truth, e, dropped);
    for (const [index, reason] of dropped) {
      if (reason === 'superseded') {
        const applied = truth.applied.get(index);
        const p = r.proposals.get(index)!;
        check(applied === undefined || applied.term !== p.term, `dropped entry ${index} committed`);
      }
      r.proposals.delete(index);
    }
    for (const [index] of r.proposals) {
      check(index > r.smIndex, `${r.node}/${r.group}: proposal ${index} silently lost`);
    }
    if (rd.confState !== undefined) r.storage.setConfState(rd.confState);
    for (const rs of rd.readStates) {
      const key = readKey(rs.context);
      const floor = r.reads.get(key);
      check(floor === undefined || rs.index >= floor, `read ${key} at ${rs.index} < ${floor}`);
      r.reads.delete(key);
      r.readStates.push(rs);
    }
    for (const d of rd.droppedReads) {
      r.reads.delete(readKey(d.context));
      r.droppedReads.push(readKey(d.context));
    }
    this.maybeCompact(r);
  }

  private applyEntry(r: Replica, truth: GroupTruth, e: Entry, dropped: Map<number, string>): void {
    check(e.index === r.smIndex + 1, `${r.node}/${r.group}: applied ${e.index} after ${r.smIndex}`);
    const dataHash = mix(e.type, hashBytes(e.data));
    const known = truth.applied.get(e.index);
    check(
      known === undefined || (known.term === e.term && known.dataHash === dataHash),
      `group ${r.group}: entry ${e.index} applied differently at ${r.node}`,
    );
    truth.applied.set(e.index, { term: e.term, dataHash });
    r.smHash = mix(r.smHash, dataHash);
    r.smIndex = e.index;
    const smKnown = truth.smHashAt.get(e.index);
    check(smKnown === undefined || smKnown === r.smHash, `state machines diverge at ${e.index}`);
    truth.smHashAt.set(e.index, r.smHash);
    if (e.index > truth.maxApplied) truth.maxApplied = e.index;
    r.appliedEntries.push(e);
    const p = r.proposals.get(e.index);
    if (p === undefined) return;
    if (p.term === e.term) {
      check(text(e.data) === p.data, `proposal ${e.index} delivered with other data`);
      check(!dropped.has(e.index), `proposal ${e.index} both delivered and dropped`);
      r.proposals.delete(e.index);
    } else {
      check(dropped.get(e.index) === 'superseded', `superseded proposal ${e.index} not reported`);
    }
  }

  private maybeCompact(r: Replica): void {
    const after = this.options.compactAfter;
    if (after === undefined || r.smIndex - r.storage.firstIndex() < after) return;
    r.storage.compact(r.smIndex, r.storage.initialState().confState);
  }
}
