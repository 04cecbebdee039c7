/**
 * Deletes one-time profile downloads nobody took before they expired (src/store/
 * profile-downloads.ts). A download is refused after its expiry whether or not this ran; what
 * the prune adds is that the sealed copy of the password leaves the database within a minute of
 * it, rather than sitting there until somebody presents the token. One process per database does
 * it (the app's maintenance worker). The table holds one row per recent Generate: no batches.
 */
import type { Logger } from '../log.js';
import type { Store } from './index.js';
import { runPeriodically } from './periodic.js';

const PRUNE_EVERY_MS = 60_000;

export function startProfileDownloadPrune(store: Store, log: Logger, options: { everyMs?: number; clock?: () => number } = {}): { stop(): void } {
  const { everyMs = PRUNE_EVERY_MS, clock = Date.now } = options;
  const job = async () => {
    try {
      await store.profileDownloads.pruneExpired(clock());
    } catch (err) {
      log.warn({ event: 'profile.prune_failed', err: (err as Error).message }, 'expired profile downloads could not be deleted; retried later');
    }
  };
  return { stop: runPeriodically(job, everyMs) };
}
