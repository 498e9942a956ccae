/**
 * The Wing & Gong linearizability search with Lowe's improvements, over any deterministic model.
 *
 * Calls and returns of operations with a known outcome form a doubly linked list in time order.
 * The search walks it: at a call it tries to linearize that operation next (the model must allow
 * it, and the configuration — set of linearized operations, model state — must be new: Lowe's
 * memoization, which keeps the search polynomial on histories of bounded concurrency); the
 * operation is lifted out of the list and pushed on the undo stack, and the walk restarts.
 * Reaching a return means that operation should already have been linearized: undo the latest
 * choice and try the next candidate after it.
 *
 * Operations with an unknown outcome have no return, so they never force a backtrack; the search
 * succeeds once every known-outcome operation is linearized (the rest took effect after
 * everything, or never). They sit in a second list, tried only after the known-outcome
 * candidates. Three reductions keep histories with many timeouts tractable, all exact: the memo
 * prunes a configuration that applied a superset of another's unknown outcomes (Memo); identical
 * unknown outcomes are applied in call order only (Twins); and timeouts that never took effect
 * do not lengthen the walk over the known-outcome list. A step budget bounds the work.
 */
import { assert } from '../../engine/assert.js';

/** An operation's interval; `ret` is Infinity when its outcome is unknown. */
export interface SearchOp {
  readonly call: number;
  readonly ret: number;
  /**
   * Unknown-outcome operations with the same class (>= 0) have identical effects, so once called
   * they are interchangeable: the search applies them in call order only.
   */
  readonly symmetry?: number;
}

/** A deterministic model over operations indexed 0..ops.length-1. */
export interface SearchProblem<S> {
  readonly ops: readonly SearchOp[];
  readonly init: S;
  /** The state after operation `op` in `state`, or null if it cannot be linearized there. */
  step(state: S, op: number): S | null;
  /** Equal for states with the same future behaviour. */
  stateKey(state: S): string;
}

/** The verdict of one search. */
export type SearchResult =
  | { kind: 'ok'; steps: number; order: number[] }
  | { kind: 'fail'; steps: number; longest: number[]; stuck: number }
  | { kind: 'timeout'; steps: number };

/** A time-ordered list of call and return entries of some operations, with dancing links. */
class EntryList {
  /** Entry ids 0..entries-1; `head` is the sentinel of the circular list. */
  readonly head: number;
  readonly next: Int32Array;
  readonly prev: Int32Array;
  readonly opOf: Int32Array;
  readonly isCall: Uint8Array;
  readonly time: Float64Array;
  /** -1 for an operation not in this list. */
  readonly callEntry: Int32Array;
  /** -1 for an operation not in this list or with an unknown outcome. */
  readonly returnEntry: Int32Array;

  constructor(ops: readonly SearchOp[], include: (op: number) => boolean) {
    const events: { time: number; op: number; call: boolean }[] = [];
    ops.forEach((o, op) => {
      assert(o.call < o.ret, 'an operation is called before it returns');
      if (!include(op)) return;
      events.push({ time: o.call, op, call: true });
      if (o.ret !== Number.POSITIVE_INFINITY) events.push({ time: o.ret, op, call: false });
    });
    // Calls sort before returns at equal times: equal times are concurrent.
    events.sort((a, b) => a.time - b.time || Number(b.call) - Number(a.call) || a.op - b.op);
    const n = events.length;
    this.head = n;
    this.next = new Int32Array(n + 1);
    this.prev = new Int32Array(n + 1);
    this.opOf = new Int32Array(n);
    this.isCall = new Uint8Array(n);
    this.time = new Float64Array(n);
    this.callEntry = new Int32Array(ops.length).fill(-1);
    this.returnEntry = new Int32Array(ops.length).fill(-1);
    events.forEach((e, i) => {
      this.opOf[i] = e.op;
      this.isCall[i] = e.call ? 1 : 0;
      this.time[i] = e.time;
      if (e.call) this.callEntry[e.op] = i;
      else this.returnEntry[e.op] = i;
    });
    for (let i = 0; i <= n; i++) {
      this.next[i] = (i + 1) % (n + 1);
      this.prev[(i + 1) % (n + 1)] = i;
    }
  }

  /** The first entry still in the list (`head` if none). */
  first(): number {
    return this.next[this.head]!;
  }

  private remove(entry: number): void {
    this.next[this.prev[entry]!] = this.next[entry]!;
    this.prev[this.next[entry]!] = this.prev[entry]!;
  }

  private restore(entry: number): void {
    this.next[this.prev[entry]!] = entry;
    this.prev[this.next[entry]!] = entry;
  }

  /** Removes an operation's entries. */
  lift(op: number): void {
    this.remove(this.callEntry[op]!);
    const ret = this.returnEntry[op]!;
    if (ret >= 0) this.remove(ret);
  }

  /** Undoes the latest lift, which must be of `op` (entries come back in reverse order). */
  unlift(op: number): void {
    const ret = this.returnEntry[op]!;
    if (ret >= 0) this.restore(ret);
    this.restore(this.callEntry[op]!);
  }
}

/**
 * The set of linearized operations, with an exact compact key: a run-length encoding of the bits.
 * Linearized sets are a long run of ones, a window of concurrency, then zeros, so the key stays
 * short even for long histories; `low`/`high` bound the window that must be scanned.
 */
class LinearizedSet {
  private readonly words: Uint32Array;
  /** Invariant: every word below `low` is all ones. */
  private low = 0;
  /** Invariant: every word from `high` on is zero. */
  private high = 0;

  constructor(size: number) {
    this.words = new Uint32Array((size + 31) >>> 5);
  }

  /** Flips membership of `op`. */
  toggle(op: number): void {
    const w = op >>> 5;
    this.words[w]! ^= 1 << (op & 31);
    if (this.words[w] !== 0xffffffff && w < this.low) this.low = w;
    if (this.words[w] !== 0 && w >= this.high) this.high = w + 1;
  }

  /** Run lengths of alternating ones and zeros from bit 0, up to the last one bit's word. */
  key(): string {
    while (this.low < this.high && this.words[this.low] === 0xffffffff) this.low++;
    while (this.high > this.low && this.words[this.high - 1] === 0) this.high--;
    const runs: number[] = [];
    let bit = 1;
    let run = this.low * 32;
    for (let w = this.low; w < this.high; w++) {
      const word = this.words[w]!;
      if (word === (bit === 1 ? 0xffffffff : 0)) {
        run += 32;
        continue;
      }
      for (let b = 0; b < 32; b++) {
        if (((word >>> b) & 1) === bit) {
          run++;
        } else {
          runs.push(run);
          bit ^= 1;
          run = 1;
        }
      }
    }
    runs.push(run);
    return runs.join(',');
  }
}

/**
 * Memo of visited configurations with subsumption. A configuration is (linearized operations,
 * state); those with the same known-outcome operations and state are compared by the set of
 * unknown-outcome operations already applied: one that applied a superset of another's has no
 * future the other lacks (the other may still apply them, or never), so it is pruned. With no
 * unknown outcomes this is Lowe's exact memo.
 */
class Memo {
  private readonly seen = new Map<string, Uint32Array[]>();
  /** The exact memo, when there are no unknown outcomes to compare. */
  private readonly seenExactly = new Set<string>();
  private readonly unknowns: Uint32Array;

  constructor(unknownCount: number) {
    this.unknowns = new Uint32Array((unknownCount + 31) >>> 5);
  }

  /** Flips membership of the unknown-outcome operation with unknown-index `u`. */
  toggleUnknown(u: number): void {
    this.unknowns[u >>> 5]! ^= 1 << (u & 31);
  }

  /** Records the current configuration; false if it is subsumed by one already seen. */
  visit(key: string): boolean {
    if (this.unknowns.length === 0) {
      if (this.seenExactly.has(key)) return false;
      this.seenExactly.add(key);
      return true;
    }
    const current = this.unknowns;
    const kept = this.seen.get(key);
    if (kept === undefined) {
      this.seen.set(key, [current.slice()]);
      return true;
    }
    if (kept.some((old) => isSubset(old, current))) return false;
    // The new configuration subsumes those that applied more; forget them.
    const antichain = kept.filter((old) => !isSubset(current, old));
    antichain.push(current.slice());
    this.seen.set(key, antichain);
    return true;
  }
}

function isSubset(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if ((a[i]! & ~b[i]!) !== 0) return false;
  return true;
}

interface Frame<S> {
  op: number;
  before: S;
  /** The phase and the return entry that bounded the candidates when `op` was chosen. */
  phase: Phase;
  blocking: number;
}

/**
 * Which candidates are tried at a configuration: known-outcome operations first, then
 * unknown-outcome ones. Every candidate is tried once either way; the order makes the first
 * configurations met the ones with the fewest unknown outcomes applied, which subsume the rest.
 */
const enum Phase {
  Known = 0,
  Unknown = 1,
}

/** Signals from choosing a candidate: none is left, or the walk moved without choosing. */
const exhausted = -1;
const moved = -2;

/** One search: the WGL walk over two entry lists with the undo stack. */
class Search<S> {
  private readonly known: boolean[];
  private readonly definite: EntryList;
  private readonly timeouts: EntryList;
  private readonly index: { of: Int32Array; knownCount: number };
  private readonly linearized: LinearizedSet;
  private readonly memo: Memo;
  private readonly twins: Twins;
  private readonly stack: Frame<S>[] = [];
  private state: S;
  private remaining: number;
  private longest: number[] = [];
  private stuck = -1;
  private cursor: number;
  private phase = Phase.Known;
  /** The first return entry of the known-outcome list; valid outside Phase.Known. */
  private blocking = -1;
  private steps = 0;

  constructor(
    private readonly problem: SearchProblem<S>,
    private readonly stepsMax: number,
  ) {
    const ops = problem.ops;
    this.known = ops.map((o) => o.ret !== Number.POSITIVE_INFINITY);
    this.definite = new EntryList(ops, (op) => this.known[op]!);
    this.timeouts = new EntryList(ops, (op) => !this.known[op]);
    this.index = denseIndexes(this.known);
    this.linearized = new LinearizedSet(this.index.knownCount);
    this.memo = new Memo(ops.length - this.index.knownCount);
    this.twins = new Twins(ops, this.timeouts);
    this.state = problem.init;
    this.remaining = this.index.knownCount;
    this.cursor = this.definite.first();
  }

  run(): SearchResult {
    while (this.remaining > 0) {
      if (this.steps >= this.stepsMax) return { kind: 'timeout', steps: this.steps };
      this.steps++;
      const op = this.candidate();
      if (op === moved) continue;
      if (op === exhausted) {
        if (!this.backtrack()) {
          return { kind: 'fail', steps: this.steps, longest: this.longest, stuck: this.stuck };
        }
        continue;
      }
      this.attempt(op);
    }
    return { kind: 'ok', steps: this.steps, order: this.stack.map((frame) => frame.op) };
  }

  private list(op: number): EntryList {
    return this.known[op] ? this.definite : this.timeouts;
  }

  private toggle(op: number): void {
    if (this.known[op]) this.linearized.toggle(this.index.of[op]!);
    else this.memo.toggleUnknown(this.index.of[op]!);
  }

  /** The operation at the cursor if it is a candidate of this phase, or a signal. */
  private candidate(): number {
    const { definite, timeouts } = this;
    if (this.phase === Phase.Known) {
      assert(this.cursor !== definite.head, 'a known-outcome operation is left: a return is ahead');
      if (definite.isCall[this.cursor] === 1) return definite.opOf[this.cursor]!;
      this.blocking = this.cursor;
      this.phase = Phase.Unknown;
      this.cursor = timeouts.first();
      return moved;
    }
    // Unknown-outcome operations called by the blocking return are candidates.
    const end = this.cursor === timeouts.head;
    if (end || timeouts.time[this.cursor]! > definite.time[this.blocking]!) return exhausted;
    const op = timeouts.opOf[this.cursor]!;
    if (this.twins.isNext(op)) return op;
    this.cursor = timeouts.next[this.cursor]!;
    return moved;
  }

  /** Linearizes `op` next if the model allows it and the configuration is new. */
  private attempt(op: number): void {
    const after = this.problem.step(this.state, op);
    if (after !== null) {
      this.toggle(op);
      if (this.memo.visit(`${this.linearized.key()}|${this.problem.stateKey(after)}`)) {
        this.stack.push({ op, before: this.state, phase: this.phase, blocking: this.blocking });
        this.state = after;
        this.list(op).lift(op);
        if (this.known[op]) this.remaining--;
        else this.twins.applied(op, 1);
        this.phase = Phase.Known;
        this.cursor = this.definite.first();
        return;
      }
      this.toggle(op);
    }
    this.cursor = this.list(op).next[this.cursor]!;
  }

  /** Nothing can precede the blocking return's operation: undo the latest choice. */
  private backtrack(): boolean {
    if (this.stuck < 0 || this.stack.length > this.longest.length) {
      this.longest = this.stack.map((frame) => frame.op);
      this.stuck = this.definite.opOf[this.blocking]!;
    }
    const frame = this.stack.pop();
    if (frame === undefined) return false;
    const list = this.list(frame.op);
    this.state = frame.before;
    this.toggle(frame.op);
    list.unlift(frame.op);
    if (this.known[frame.op]) this.remaining++;
    else this.twins.applied(frame.op, -1);
    this.phase = frame.phase;
    this.blocking = frame.blocking;
    this.cursor = list.next[list.callEntry[frame.op]!]!;
    return true;
  }
}

/**
 * Symmetry classes of unknown-outcome operations. Members of a class are applied in list (call)
 * order, so the applied members of each class are always a prefix of it.
 */
class Twins {
  /** Per operation: its class, or -1. */
  private readonly classOf: Int32Array;
  /** Per operation: its position among its class's members in call order. */
  private readonly rank: Int32Array;
  /** Per class: how many members are applied. */
  private readonly count: Int32Array;

  constructor(ops: readonly SearchOp[], timeouts: EntryList) {
    this.classOf = new Int32Array(ops.length).fill(-1);
    this.rank = new Int32Array(ops.length);
    const ids = new Map<number, number>();
    for (let e = timeouts.first(); e !== timeouts.head; e = timeouts.next[e]!) {
      const op = timeouts.opOf[e]!;
      const symmetry = ops[op]!.symmetry;
      if (symmetry === undefined || symmetry < 0) continue;
      const id = ids.get(symmetry) ?? ids.size;
      ids.set(symmetry, id);
      this.classOf[op] = id;
    }
    const members = new Int32Array(ids.size);
    for (let e = timeouts.first(); e !== timeouts.head; e = timeouts.next[e]!) {
      const op = timeouts.opOf[e]!;
      const id = this.classOf[op]!;
      if (id >= 0) this.rank[op] = members[id]!++;
    }
    this.count = new Int32Array(ids.size);
  }

  /** Whether `op` may be applied now: it has no class, or is its class's first unapplied member. */
  isNext(op: number): boolean {
    const id = this.classOf[op]!;
    return id < 0 || this.rank[op] === this.count[id];
  }

  /** Records that `op` was applied (+1) or undone (-1). */
  applied(op: number, delta: number): void {
    const id = this.classOf[op]!;
    if (id >= 0) this.count[id]! += delta;
  }
}

/** Searches for a linearization of `problem` within `stepsMax` steps (entries visited). */
export function searchLinearization<S>(problem: SearchProblem<S>, stepsMax: number): SearchResult {
  return new Search(problem, stepsMax).run();
}

/** Numbers known-outcome and unknown-outcome operations separately, densely. */
function denseIndexes(known: readonly boolean[]) {
  const of = new Int32Array(known.length);
  let knownCount = 0;
  let unknownCount = 0;
  known.forEach((k, op) => {
    of[op] = k ? knownCount++ : unknownCount++;
  });
  return { of, knownCount };
}
