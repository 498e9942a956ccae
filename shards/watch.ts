/**
 * `watch`: the committed change feed of every shard, merged as it arrives, resumable from a
 * cursor across restarts.
 *
 * A cursor records, for every shard, how far the feed has been delivered: the index of the last
 * entry whose changes were (partly) delivered and how many of that entry's changes were (a batch
 * writes several keys at one index). It is encoded as `w1.` + base64url of varints, shard by
 * shard in ascending order: shard delta, index, count.
 */
import { FlotillaError } from '../engine/errors.js';
import type { Change } from '../engine/state/change-feed.js';
import type { ChangeSource } from './store-api.js';
import type { WatchEvent } from './types.js';

const cursorPrefix = 'w1.';
/** Events between two rebases of the cursor journal (bounds its memory). */
const journalEventsMax = 1024;
/** Changes buffered by one watcher before it stops reading ahead. */
const bufferedChangesMax = 4096;

/** How far the feed of one shard has been delivered. */
interface Position {
  index: number;
  count: number;
}

function pushVarint(out: number[], n: number): void {
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

/** Encodes per-shard positions (slot i = shards[i], ascending ids) as a cursor string. */
export function encodeCursor(
  shards: readonly number[],
  indexes: Float64Array,
  counts: Uint32Array,
): string {
  const bytes: number[] = [];
  let previous = 0;
  for (let i = 0; i < indexes.length; i++) {
    const shard = shards[i]!;
    pushVarint(bytes, shard - previous);
    pushVarint(bytes, indexes[i]!);
    pushVarint(bytes, counts[i]!);
    previous = shard;
  }
  return cursorPrefix + Buffer.from(bytes).toString('base64url');
}

function badCursor(why: string): FlotillaError {
  return new FlotillaError('INVALID_ARGUMENT', `not a watch cursor (${why}); pass event.cursor`);
}

/** Decodes a cursor into per-shard positions; its shards must be exactly `shards` (ascending). */
export function decodeCursor(cursor: unknown, shards: readonly number[]): Position[] {
  if (typeof cursor !== 'string' || !cursor.startsWith(cursorPrefix)) throw badCursor('prefix');
  const bytes = Buffer.from(cursor.slice(cursorPrefix.length), 'base64url');
  let at = 0;
  const varint = () => {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (at >= bytes.length) throw badCursor('truncated');
      const b = bytes[at++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 0x80;
      if (scale > 2 ** 56) throw badCursor('varint too long');
    }
  };
  const positions: Position[] = [];
  let shard = 0;
  while (at < bytes.length) {
    shard += varint();
    const index = varint();
    const count = varint();
    if (shard !== shards[positions.length]) {
      throw badCursor(`it names shard ${shard} where the store has ${shards[positions.length]}`);
    }
    positions.push({ index, count });
  }
  if (positions.length !== shards.length) {
    throw badCursor(`it covers ${positions.length} shards, the store has ${shards.length}`);
  }
  return positions;
}

/**
 * Cursors of delivered events, computed only when asked for: a base snapshot of every shard's
 * position plus the (shard, index, count) steps taken since, replaced every journalEventsMax
 * events so its memory stays bounded.
 */
class Journal {
  /** (slot, index, count) triples, in delivery order. */
  readonly steps: number[] = [];
  constructor(
    readonly shards: readonly number[],
    readonly baseIndexes: Float64Array,
    readonly baseCounts: Uint32Array,
  ) {}

  cursorAt(stepCount: number): string {
    const indexes = this.baseIndexes.slice();
    const counts = this.baseCounts.slice();
    for (let i = 0; i < stepCount * 3; i += 3) {
      const slot = this.steps[i]!;
      indexes[slot] = this.steps[i + 1]!;
      counts[slot] = this.steps[i + 2]!;
    }
    return encodeCursor(this.shards, indexes, counts);
  }
}

/** One watch: an async iterator of committed changes; see the module comment. */
export class Watcher implements AsyncIterableIterator<WatchEvent> {
  private readonly shards: number[];
  private readonly slots = new Map<number, number>();
  private readonly indexes: Float64Array;
  private readonly counts: Uint32Array;
  private readonly notified = new Set<number>();
  private readonly buffer: Change[] = [];
  private wake: (() => void) | undefined;
  private unsubscribe: (() => void) | undefined;
  private done = false;
  private started: Promise<void> | undefined;
  private journal: Journal;

  constructor(
    private readonly source: ChangeSource,
    shardIds: readonly number[],
    private readonly options: { prefix?: Uint8Array; from?: string; asBytes: boolean },
  ) {
    this.shards = [...shardIds].sort((a, b) => a - b);
    for (const [slot, shard] of this.shards.entries()) this.slots.set(shard, slot);
    this.indexes = new Float64Array(this.shards.length);
    this.counts = new Uint32Array(this.shards.length);
    if (options.from !== undefined) {
      const positions = decodeCursor(options.from, this.shards);
      for (const [slot, p] of positions.entries()) {
        this.indexes[slot] = p.index;
        this.counts[slot] = p.count;
        this.notified.add(this.shards[slot]!);
      }
    }
    this.journal = new Journal(this.shards, this.indexes.slice(), this.counts.slice());
    this.unsubscribe = source.onChanges((shards) => {
      for (const shard of shards) if (this.slots.has(shard)) this.notified.add(shard);
      const wake = this.wake;
      this.wake = undefined;
      wake?.();
    });
    // Without a cursor, the feed starts after what each shard has applied now.
    if (options.from === undefined) {
      const applied = this.shards.map((s) => this.source.appliedIndex(s));
      if (applied.every((a) => typeof a === 'number')) this.startAt(applied as number[]);
      else this.started = Promise.all(applied).then((a) => this.startAt(a));
    }
  }

  private startAt(applied: readonly number[]): void {
    for (const [slot, index] of applied.entries()) {
      this.indexes[slot] = index;
      this.counts[slot] = 0;
    }
    this.journal = new Journal(this.shards, this.indexes.slice(), this.counts.slice());
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** A cursor that resumes the feed right after the last event delivered. */
  cursor(): string {
    return encodeCursor(this.shards, this.indexes, this.counts);
  }

  async next(): Promise<IteratorResult<WatchEvent>> {
    if (this.started !== undefined) {
      await this.started;
      this.started = undefined;
    }
    for (;;) {
      if (this.done) return { done: true, value: undefined };
      const change = this.buffer.shift();
      if (change !== undefined) {
        const event = this.deliver(change);
        if (event !== undefined) return { done: false, value: event };
        continue;
      }
      if (!(await this.fill())) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
      }
    }
  }

  async return(): Promise<IteratorResult<WatchEvent>> {
    this.stop();
    return { done: true, value: undefined };
  }

  /** Reads the next changes of one notified shard into the buffer; false when none is left. */
  private async fill(): Promise<boolean> {
    for (const shard of [...this.notified]) {
      const slot = this.slots.get(shard)!;
      const at = this.indexes[slot]!;
      const skip = this.counts[slot]!;
      // Re-read the entry we are inside of, so that its undelivered changes are not skipped.
      const after = skip > 0 ? at - 1 : at;
      const changes = await this.source.changes(shard, after, bufferedChangesMax);
      let skipped = 0;
      for (const c of changes) {
        if (skip > 0 && c.index === at && skipped < skip) {
          skipped++;
          continue;
        }
        this.buffer.push(c);
      }
      if (changes.length < bufferedChangesMax) this.notified.delete(shard);
      if (this.buffer.length > 0) return true;
    }
    return false;
  }

  /** Records `change` as delivered; returns its event unless the prefix filters it out. */
  private deliver(change: Change): WatchEvent | undefined {
    const slot = this.slots.get(change.shard)!;
    if (this.indexes[slot] === change.index) this.counts[slot]!++;
    else {
      this.indexes[slot] = change.index;
      this.counts[slot] = 1;
    }
    const prefix = this.options.prefix;
    if (prefix !== undefined && !startsWith(change.key, prefix)) return undefined;
    if (this.journal.steps.length >= journalEventsMax * 3) {
      this.journal = new Journal(this.shards, this.indexes.slice(), this.counts.slice());
    } else {
      this.journal.steps.push(slot, change.index, this.counts[slot]!);
    }
    const journal = this.journal;
    const step = journal.steps.length / 3;
    const event = {
      key: this.options.asBytes ? change.key : change.key.toString('utf8'),
      type: change.type,
      version: change.version,
      shard: change.shard,
    } as WatchEvent;
    if (change.type === 'put') event.value = change.value;
    Object.defineProperty(event, 'cursor', {
      enumerable: true,
      get: () => journal.cursorAt(step),
    });
    return event;
  }

  private stop(): void {
    this.done = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

function startsWith(key: Uint8Array, prefix: Uint8Array): boolean {
  if (key.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (key[i] !== prefix[i]) return false;
  return true;
}
