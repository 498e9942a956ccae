/**
 * A k-way merge of sorted sources with a binary heap: how a scan yields one key order from the
 * independent key orders of many shards. Sources are pulled lazily, one item ahead each.
 */

interface Head<T> {
  item: T;
  source: number;
}

/** Items of `sources` (each sorted by `compare`) in one sorted sequence, ties by source order. */
export function* mergeSorted<T>(
  sources: Iterable<T>[],
  compare: (a: T, b: T) => number,
): Generator<T> {
  const iterators = sources.map((s) => s[Symbol.iterator]());
  const heap: Head<T>[] = [];
  const less = (a: Head<T>, b: Head<T>) => {
    const c = compare(a.item, b.item);
    return c < 0 || (c === 0 && a.source < b.source);
  };
  const push = (h: Head<T>) => {
    heap.push(h);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!less(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  };
  const popTop = () => {
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && less(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  };
  try {
    for (const [source, it] of iterators.entries()) {
      const next = it.next();
      if (!next.done) push({ item: next.value, source });
    }
    while (heap.length > 0) {
      const top = popTop();
      yield top.item;
      const next = iterators[top.source]!.next();
      if (!next.done) push({ item: next.value, source: top.source });
    }
  } finally {
    for (const it of iterators) it.return?.();
  }
}

/** Byte-wise comparison of two keys (the order LMDB keeps them in). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}
