/**
 * History retention. The events table grows with every failed login against a known account, so
 * an account under attack would grow it without end. The running proxy deletes events older than
 * `history.keepDays` shortly after start-up and then every hour, in small batches with the event
 * loop free between them, so that logins and admin commands never wait long for the write lock.
 * `keepDays: 0` keeps everything. Last use stays on each password's own row either way.
 */
import type { Logger } from '../log.js';
import type { Store } from './index.js';
import { runPeriodically } from './periodic.js';

const DAY_MS = 86_400_000;
const BATCH = 5_000;

export interface RetentionOptions {
  keepDays: number;
  /** How often to prune; an hour unless a test says otherwise. */
  everyMs?: number;
  clock?: () => number;
}

export interface HistoryRetention {
  /** Runs one pruning pass now and resolves with the number of events deleted. */
  pruneNow(): Promise<number>;
  /** Stops the timer; a pass in progress ends before its next batch. */
  stop(): void;
}

export function startHistoryRetention(store: Store, options: RetentionOptions, log: Logger): HistoryRetention {
  const { keepDays, everyMs = 3_600_000, clock = Date.now } = options;
  let stopped = false;
  let running: Promise<number> | null = null;

  const pass = async (): Promise<number> => {
    const before = clock() - keepDays * DAY_MS;
    let deleted = 0;
    while (!stopped) {
      const n = await store.events.pruneBefore(before, BATCH);
      deleted += n;
      if (n < BATCH) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (deleted > 0) {
      log.info({ event: 'history.pruned', deleted, keepDays }, `deleted ${deleted} history events older than ${keepDays} days`);
    }
    return deleted;
  };

  const pruneNow = (): Promise<number> => {
    if (keepDays === 0 || stopped) return Promise.resolve(0);
    // One pass at a time: a slow pass must not be overlapped by the next tick.
    running ??= pass().finally(() => {
      running = null;
    });
    return running;
  };

  const tick = () => {
    pruneNow().catch((err: unknown) => {
      // A busy database (a long admin transaction) is not fatal: the next tick tries again.
      log.warn({ event: 'history.prune_failed', err }, 'could not prune the history; will retry');
    });
  };

  const stopTimer = runPeriodically(tick, everyMs);
  return {
    pruneNow,
    stop() {
      stopped = true;
      stopTimer();
    },
  };
}
