/**
 * A k-way merge of sorted async sources with a binary heap: how a scan yields one key order from
 * the independent key orders of many shards. Sources are pulled lazily, one item ahead each,
 * and every source is closed when the consumer stops early.
 */

interface Head<T> {
  item: T;
  source: number;
}

/** A binary min-heap of source heads, ties broken by source position (a stable merge). */
class HeadHeap<T> {
  private readonly heap: Head<T>[] = [];

  constructor(private readonly compare: (a: T, b: T) => number) {}

  get size(): number {
    return this.heap.length;
  }

  private less(a: Head<T>, b: Head<T>): boolean {
    const c = this.compare(a.item, b.item);
    return c < 0 || (c === 0 && a.source < b.source);
  }

  push(h: Head<T>): void {
    const heap = this.heap;
    heap.push(h);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  pop(): Head<T> {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length === 0) return top;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && this.less(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && this.less(heap[r]!, heap[m]!)) m = r;
      if (m === i) return top;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  }
}

/** Items of `sources` (each sorted by `compare`) in one sorted sequence, ties by source order. */
export async function* mergeSortedAsync<T>(
  sources: (AsyncIterable<T> | Iterable<T>)[],
  compare: (a: T, b: T) => number,
): AsyncGenerator<T> {
  const iterators = sources.map((s) =>
    Symbol.asyncIterator in s ? s[Symbol.asyncIterator]() : toAsync(s[Symbol.iterator]()),
  );
  const heap = new HeadHeap<T>(compare);
  try {
    const firsts = await Promise.all(iterators.map((it) => it.next()));
    for (const [source, next] of firsts.entries()) {
      if (!next.done) heap.push({ item: next.value, source });
    }
    while (heap.size > 0) {
      const top = heap.pop();
      yield top.item;
      const next = await iterators[top.source]!.next();
      if (!next.done) heap.push({ item: next.value, source: top.source });
    }
  } finally {
    await Promise.all(iterators.map((it) => it.return?.()));
  }
}

function toAsync<T>(it: Iterator<T>): AsyncIterator<T> {
  return {
    next: async () => it.next(),
    return: async () => it.return?.() ?? { done: true, value: undefined },
  };
}

/** Byte-wise comparison of two keys (the order LMDB keeps them in). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}
