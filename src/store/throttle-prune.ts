/**
 * Deletes the shared throttle's counts once they are out of every window, and blocks once over
 * (src/store/throttle-counts.ts), so that a flood leaves rows for one window, not for ever. One
 * process per database does it (the app's maintenance worker); slices go in bounded batches so
 * the write lock is never held for long, on the writer connection (a held lock: retried later).
 */
import type { Logger } from '../log.js';
import { sliceMs } from '../auth/shared-throttle.js';
import type { Store } from './index.js';
import { runPeriodically } from './periodic.js';

const PRUNE_EVERY_MS = 60_000;
const BATCH = 1_000;

export function startThrottlePrune(store: Store, options: { windowMs: number; clock?: () => number }, log: Logger): { stop(): void } {
  const clock = options.clock ?? Date.now;
  const slice = sliceMs(options.windowMs);
  const job = async () => {
    try {
      const now = clock();
      const before = Math.floor((now - options.windowMs) / slice) * slice;
      while ((await store.transaction((tx) => tx.throttle.prune(before, now, BATCH))) === BATCH);
    } catch (err) {
      log.warn({ event: 'throttle.prune_failed', err: (err as Error).message }, 'old throttle counts could not be deleted; retried later');
    }
  };
  return { stop: runPeriodically(job, PRUNE_EVERY_MS) };
}
