/**
 * Expiry instants of the watched passwords, earliest first (a binary min-heap), so that the
 * revocation watcher fires an expiry at its instant without asking the database: expiry is a
 * matter of the clock, and no commit announces it. Entries are never removed in place; the
 * watcher skips those that no longer match its own record of the password (unwatched, or given
 * another expiry) and rebuilds the heap when stale entries outnumber the live ones.
 */
export interface ExpiryEntry {
  at: number;
  id: number;
}

export class ExpiryQueue {
  private heap: ExpiryEntry[] = [];

  get size(): number {
    return this.heap.length;
  }

  push(entry: ExpiryEntry): void {
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= entry.at) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = entry;
  }

  /** Removes and returns the earliest entry due at `now`, if any. */
  popDue(now: number): ExpiryEntry | undefined {
    const heap = this.heap;
    const top = heap[0];
    if (!top || top.at > now) return undefined;
    const last = heap.pop()!;
    if (heap.length > 0) this.siftDown(last);
    return top;
  }

  /** Replaces the content with `entries` (used to drop stale ones). */
  rebuild(entries: Iterable<ExpiryEntry>): void {
    this.heap = [];
    for (const entry of entries) this.push(entry);
  }

  clear(): void {
    this.heap = [];
  }

  private siftDown(entry: ExpiryEntry): void {
    const heap = this.heap;
    const n = heap.length;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && heap[child + 1]!.at < heap[child]!.at) child++;
      if (heap[child]!.at >= entry.at) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = entry;
  }
}
