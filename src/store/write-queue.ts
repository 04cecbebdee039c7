/**
 * The proxy's writes on behalf of clients (failed logins, primary-password refusals, password
 * use, upstream-status flips) go through this queue, never straight to SQLite. better-sqlite3 is
 * synchronous: a write that waits for the lock waits on the event loop. While any process held a
 * write transaction (an admin command, a backup, anyone with access to the file), each such write
 * froze every relayed session and the revocation watcher for up to the 5 s busy timeout, and
 * unauthenticated clients could trigger one per failed login (issue 9, item 4).
 *
 * Here records wait in memory and are written in batches, one transaction each, on a connection
 * whose busy timeout is near zero (WRITER_BUSY_TIMEOUT_MS): a held lock costs one failed attempt
 * of at most that long, and the batch is retried with backoff. The queue is bounded: past
 * `maxQueued` a new record is dropped, counted (`stats().dropped`, for metrics) and logged at most
 * once per interval with the number lost since the last line. A record the database refuses on
 * its own (a constraint) is dropped the same way, without taking its batch with it: the batch is
 * rolled back and its records written one transaction each, which needs no savepoint and so works
 * the same on every engine. One batch is written at a time (the next waits for its commit). close()
 * writes what is left, waiting off the event loop up to a deadline; what still cannot be written
 * is counted and logged, never lost silently.
 */
import type { Logger } from '../log.js';
import { isPosternError } from '../errors.js';
import { openStore, type Store } from './index.js';
import { applyQueuedWrite, type QueuedWrite, type QueuedWriteKind } from './queued-writes.js';

export type { QueuedWrite } from './queued-writes.js';

/**
 * Busy timeout of the proxy's writer connection: the longest the event loop may stall per write
 * attempt. Not zero, so that an admin command's millisecond-long transaction does not cost a retry.
 */
export const WRITER_BUSY_TIMEOUT_MS = 5;
export const DEFAULT_MAX_QUEUED_WRITES = 10_000;

/** The proxy's writer: its own connection to the file, with WRITER_BUSY_TIMEOUT_MS. */
export function openWriterStore(file: string): Store {
  return openStore(file, { busyTimeoutMs: WRITER_BUSY_TIMEOUT_MS });
}
const DROP_LOG_EVERY_MS = 10_000;
/** Contention for a few milliseconds is ordinary (an admin command); a lock held this long is news. */
const STALL_WARN_AFTER_MS = 1_000;

export interface WriteQueueOptions {
  log: Logger;
  /** Records waiting at most; more are dropped (and counted, and logged). */
  maxQueued?: number;
  /** Records per transaction: a long backlog is written in slices, the event loop free between. */
  batchSize?: number;
  /** First retry delay after finding the database locked; doubles up to `retryMaxMs`. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** How long close() keeps retrying before it gives up on what is left. */
  closeTimeoutMs?: number;
  clock?: () => number;
}

export interface WriteQueueStats {
  /** Waiting now. */
  queued: number;
  written: number;
  /** Lost for good: queue full, queued after close, refused by the database, or left at close. */
  dropped: number;
  /** Batches written (one transaction each, unless a record in it was refused). */
  batches: number;
  /** Attempts that could not take the write lock (or failed as a whole) and were tried again later. */
  retries: number;
}

type DropReason = 'queue_full' | 'closed' | 'refused';

export class WriteQueue {
  private readonly pending: QueuedWrite[] = [];
  private readonly maxQueued: number;
  private readonly batchSize: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly closeTimeoutMs: number;
  private readonly clock: () => number;
  private readonly log: Logger;
  private readonly counts = { written: 0, dropped: 0, batches: 0, retries: 0 };
  private readonly idleWaiters: Array<() => void> = [];
  /** Records accepted and records written or dropped since: pending is FIFO, so these order them. */
  private accepted = 0;
  private settled = 0;
  private readonly flushWaiters: Array<{ upTo: number; resolve: () => void }> = [];
  private retryDelayMs = 0;
  private cancelWake: (() => void) | null = null;
  /** The batch being written: the next one waits for it, and so does close(). */
  private inFlight: Promise<boolean> | null = null;
  private wake: { ref(): unknown } | null = null;
  private closing: Promise<void> | null = null;
  private drained = false;
  private unreportedDrops = 0;
  private lastDrop: { kind: QueuedWriteKind; reason: DropReason; err?: string } | null = null;
  private lastDropLog = -Infinity;
  private dropReportTimer: NodeJS.Timeout | null = null;
  private stalledSince: number | null = null;
  private stallWarned = false;

  constructor(private readonly store: Store, options: WriteQueueOptions) {
    this.log = options.log;
    this.maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED_WRITES;
    this.batchSize = options.batchSize ?? 500;
    this.retryBaseMs = options.retryBaseMs ?? 10;
    this.retryMaxMs = options.retryMaxMs ?? 1_000;
    this.closeTimeoutMs = options.closeTimeoutMs ?? 5_000;
    this.clock = options.clock ?? Date.now;
  }

  /** Queues a record; false if it was dropped instead (already counted and logged). Never blocks. */
  enqueue(write: QueuedWrite): boolean {
    if (this.closing) return this.drop(write, 'closed');
    if (this.pending.length >= this.maxQueued) return this.drop(write, 'queue_full');
    this.pending.push(write);
    this.accepted++;
    this.schedule();
    return true;
  }

  /**
   * Resolves once every record accepted so far is written (or given up on), however busy the
   * queue stays after: what a caller waits on when others must see its record (the shared
   * throttle's counts), without waiting for records queued after it.
   */
  flushed(): Promise<void> {
    if (this.settled >= this.accepted) return Promise.resolve();
    this.wake?.ref();
    return new Promise((resolve) => this.flushWaiters.push({ upTo: this.accepted, resolve }));
  }

  stats(): WriteQueueStats {
    return { queued: this.pending.length, ...this.counts };
  }

  /** Resolves once nothing waits (for tests and for callers that want their record on disk). */
  idle(): Promise<void> {
    if (this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops taking records, writes what is left (retrying up to closeTimeoutMs), reports any loss. */
  close(): Promise<void> {
    return (this.closing ??= this.drain());
  }

  private schedule(): void {
    if (this.cancelWake || this.inFlight || this.closing) return;
    // Unref'd, so a queue never keeps a stopping process alive; but an unref'd immediate does not
    // stop libuv from blocking in poll either, so while someone waits on flushed() it is ref'd.
    if (this.retryDelayMs === 0) {
      const immediate = setImmediate(() => this.run());
      if (this.flushWaiters.length === 0) immediate.unref();
      this.wake = immediate;
      this.cancelWake = () => clearImmediate(immediate);
    } else {
      const timer = setTimeout(() => this.run(), this.retryDelayMs);
      if (this.flushWaiters.length === 0) timer.unref();
      this.wake = timer;
      this.cancelWake = () => clearTimeout(timer);
    }
  }

  private run(): void {
    this.cancelWake = null;
    this.wake = null;
    void this.writeBatch().then((written) => {
      this.retryDelayMs = written ? 0 : Math.min(Math.max(this.retryBaseMs, this.retryDelayMs * 2), this.retryMaxMs);
      if (this.closing) return; // drain() carries on from here
      if (this.pending.length > 0) this.schedule();
      else this.settle();
    });
  }

  /** The oldest records, in one transaction; false (records kept) if the database could not take them. Never rejects. */
  private writeBatch(): Promise<boolean> {
    const run = this.attemptBatch().finally(() => {
      this.inFlight = null;
    });
    this.inFlight = run;
    return run;
  }

  private async attemptBatch(): Promise<boolean> {
    const batch = this.pending.slice(0, this.batchSize);
    try {
      await this.store.transaction(async (tx) => {
        for (const write of batch) await applyQueuedWrite(tx, write);
      });
    } catch (err) {
      if (isUnavailable(err)) return this.noteFailedAttempt(err as Error);
      // The database refused a record (a constraint, a trigger): the batch was rolled back whole.
      return this.writeEachOf(batch);
    }
    this.pending.splice(0, batch.length);
    this.noteSettled(batch.length);
    this.counts.batches++;
    this.counts.written += batch.length;
    this.noteResumed();
    return true;
  }

  /**
   * A batch the database refused, one record per transaction, so that only the refused record
   * is dropped. An unavailable database is not a record's fault: it stops here, and what is not
   * yet written stays queued for the retry (what is, is off the queue: nothing is written twice).
   */
  private async writeEachOf(batch: readonly QueuedWrite[]): Promise<boolean> {
    for (const write of batch) {
      try {
        await this.store.transaction((tx) => applyQueuedWrite(tx, write));
        this.counts.written++;
      } catch (err) {
        if (isUnavailable(err)) return this.noteFailedAttempt(err as Error);
        this.drop(write, 'refused', err as Error);
      }
      this.pending.shift();
      this.noteSettled(1);
    }
    this.counts.batches++;
    this.noteResumed();
    return true;
  }

  private noteFailedAttempt(err: Error): false {
    this.counts.retries++;
    this.noteStall(err);
    return false;
  }

  private async drain(): Promise<void> {
    this.cancelWake?.();
    this.cancelWake = null;
    this.wake = null;
    await this.inFlight;
    const deadline = this.clock() + this.closeTimeoutMs;
    let delay = this.retryBaseMs;
    while (this.pending.length > 0) {
      if (await this.writeBatch()) {
        delay = this.retryBaseMs;
        continue;
      }
      const left = deadline - this.clock();
      if (left <= 0) break;
      // Shutdown may wait for the lock, but on a timer: the event loop stays free meanwhile.
      await new Promise((resolve) => setTimeout(resolve, Math.min(delay, left)));
      delay = Math.min(delay * 2, this.retryMaxMs);
    }
    const left = this.pending.splice(0);
    for (const write of left) this.drop(write, 'closed');
    this.noteSettled(left.length);
    this.reportDrops();
    this.drained = true;
    this.settle();
  }

  private drop(write: QueuedWrite, reason: DropReason, err?: Error): false {
    this.counts.dropped++;
    this.unreportedDrops++;
    this.lastDrop = { kind: write.kind, reason, err: err?.message };
    const wait = this.lastDropLog + DROP_LOG_EVERY_MS - this.clock();
    // After close() no timer may outlive the queue: a straggler's record is reported at once.
    if (wait <= 0 || this.drained) this.reportDrops();
    else if (!this.dropReportTimer && !this.closing) {
      // Drops inside the interval are summed into one line when it ends.
      this.dropReportTimer = setTimeout(() => this.reportDrops(), wait);
      this.dropReportTimer.unref();
    }
    return false;
  }

  private reportDrops(): void {
    if (this.dropReportTimer) clearTimeout(this.dropReportTimer);
    this.dropReportTimer = null;
    if (this.unreportedDrops === 0 || !this.lastDrop) return;
    const { kind, reason, err } = this.lastDrop;
    this.log.warn({ event: 'store.write_dropped', dropped: this.unreportedDrops, droppedTotal: this.counts.dropped, kind, reason, err },
      `${this.unreportedDrops} history records could not be written and were dropped (last: ${kind}, ${reason})`);
    this.lastDropLog = this.clock();
    this.unreportedDrops = 0;
  }

  /** One warning per stall, once it has lasted STALL_WARN_AFTER_MS, and one line when it ends. */
  private noteStall(err: Error): void {
    const now = this.clock();
    this.stalledSince ??= now;
    if (this.stallWarned || now - this.stalledSince < STALL_WARN_AFTER_MS) return;
    this.stallWarned = true;
    // The engine's own code (SQLITE_BUSY…) says more than STORE_UNAVAILABLE around it.
    const code = ((err.cause ?? err) as { code?: string }).code;
    this.log.warn({ event: 'store.writes_waiting', queued: this.pending.length, code, err: err.message },
      'the database has been locked by another connection (or failing) for a while; records are queued and retried');
  }

  private noteResumed(): void {
    if (this.stallWarned && this.stalledSince !== null) {
      this.log.info({ event: 'store.writes_resumed', waitedMs: this.clock() - this.stalledSince, queued: this.pending.length },
        'the database accepts writes again; the queued records are being written');
    }
    this.stalledSince = null;
    this.stallWarned = false;
  }

  private noteSettled(count: number): void {
    this.settled += count;
    while (this.flushWaiters.length > 0 && this.flushWaiters[0]!.upTo <= this.settled) this.flushWaiters.shift()!.resolve();
  }

  private settle(): void {
    if (this.pending.length > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}

/** The database could not take the batch (SQLite: another connection has the lock): retried later, nothing dropped. */
function isUnavailable(err: unknown): boolean {
  return isPosternError(err, 'STORE_UNAVAILABLE');
}
