/**
 * The in-memory twin of SegmentedLog, for the simulator and for tests of the layers above: the
 * same LogStore contract (it passes the same conformance suite), no files. A write is "durable"
 * once its promise resolves (a microtask later); crash behaviour is the file log's business, run
 * on the fault-injecting file system.
 */
import { assert } from '../assert.js';
import { ErrorCode, FlotillaError } from '../errors.js';
import type { Entry, GroupId, HardState, SnapshotMeta } from '../raft/types.js';
import type { GroupWrite, LogStore } from './log-store.js';
import {
  entryRecordBytes,
  type GroupBounds,
  type LogOpSink,
  planCompact,
  planTruncate,
  planWrite,
} from './plan.js';

class MemoryGroup implements GroupBounds {
  // Invariant: entries[k].index === compacted + 1 + k.
  compacted = 0;
  compactedTerm = 0;
  entries: Entry[] = [];
  hardState: HardState = { term: 0, vote: 0, commit: 0 };
  snapshot: SnapshotMeta | undefined;

  get firstIndex(): number {
    return this.compacted + 1;
  }

  get lastIndex(): number {
    return this.compacted + this.entries.length;
  }

  /** Whether the group holds anything beyond the initial state (as GroupState.isEmpty). */
  get isEmpty(): boolean {
    const hs = this.hardState;
    return (
      this.lastIndex === 0 &&
      this.snapshot === undefined &&
      hs.term === 0 &&
      hs.vote === 0 &&
      hs.commit === 0
    );
  }

  installSnapshot(meta: SnapshotMeta): void {
    this.snapshot = meta;
    this.compacted = meta.index;
    this.compactedTerm = meta.term;
    this.entries = [];
  }

  compactTo(index: number): void {
    const drop = index - this.compacted;
    this.compactedTerm = this.entries[drop - 1]!.term;
    this.entries = this.entries.slice(drop);
    this.compacted = index;
  }
}

const emptyGroup = new MemoryGroup();

/** A LogStore held entirely in memory. */
export class MemoryLogStore implements LogStore {
  private readonly state = new Map<GroupId, MemoryGroup>();
  private closed = false;

  append(writes: readonly GroupWrite[]): Promise<void> {
    try {
      this.checkOpen();
      for (const w of writes) planWrite(this.peek(w.group), w, this.sink);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  truncateSuffix(group: GroupId, index: number): Promise<void> {
    return this.control(() => planTruncate(this.peek(group), group, index, this.sink));
  }

  compact(group: GroupId, index: number): Promise<void> {
    return this.control(() => planCompact(this.peek(group), group, index, this.sink));
  }

  entries(group: GroupId, lo: number, hi: number, maxBytes: number): Entry[] {
    this.checkOpen();
    const g = this.peek(group);
    assert(lo >= g.firstIndex, 'entries below firstIndex are compacted');
    assert(hi <= g.lastIndex + 1, 'entries above lastIndex do not exist');
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = g.entries[i - g.firstIndex]!;
      bytes += entryRecordBytes(e);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  term(group: GroupId, index: number): number | undefined {
    this.checkOpen();
    const g = this.peek(group);
    if (index === g.compacted) return g.compactedTerm;
    if (index < g.firstIndex || index > g.lastIndex) return undefined;
    return g.entries[index - g.firstIndex]!.term;
  }

  firstIndex(group: GroupId): number {
    this.checkOpen();
    return this.peek(group).firstIndex;
  }

  lastIndex(group: GroupId): number {
    this.checkOpen();
    return this.peek(group).lastIndex;
  }

  hardState(group: GroupId): HardState {
    this.checkOpen();
    return { ...this.peek(group).hardState };
  }

  snapshot(group: GroupId): SnapshotMeta | undefined {
    this.checkOpen();
    return this.peek(group).snapshot;
  }

  groups(): GroupId[] {
    this.checkOpen();
    const ids: GroupId[] = [];
    for (const [id, g] of this.state) if (!g.isEmpty) ids.push(id);
    return ids.sort((a, b) => a - b);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  private control(plan: () => void): Promise<void> {
    try {
      this.checkOpen();
      plan();
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Applies planned operations; a group is created only when something happens to it. */
  private readonly sink: LogOpSink = {
    snapshot: (group, meta) => this.group(group).installSnapshot(meta),
    truncate: (group, from) => {
      const g = this.group(group);
      g.entries.length = from - g.firstIndex;
    },
    entries: (group, entries, skip) => {
      const g = this.group(group);
      for (let k = skip; k < entries.length; k++) g.entries.push(entries[k]!);
    },
    hardState: (group, hs) => {
      this.group(group).hardState = { term: hs.term, vote: hs.vote, commit: hs.commit };
    },
    compact: (group, index) => this.group(group).compactTo(index),
  };

  private checkOpen(): void {
    if (this.closed) throw new FlotillaError(ErrorCode.CLOSED, 'the log is closed; open it again');
  }

  private peek(group: GroupId): MemoryGroup {
    return this.state.get(group) ?? emptyGroup;
  }

  private group(group: GroupId): MemoryGroup {
    assert(Number.isInteger(group) && group >= 0 && group <= 0xffffffff, 'a group id is a u32');
    let g = this.state.get(group);
    if (g === undefined) {
      g = new MemoryGroup();
      this.state.set(group, g);
    }
    return g;
  }
}
