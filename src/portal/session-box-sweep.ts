/**
 * Clears the account page's sealed session boxes (session-boxes.ts) once their time is up: the
 * recent-auth password past its window, a pending Connect request past its lifetime. A stale box
 * is refused on read whether or not this ran; what the sweep adds is that the sealed copy leaves
 * rows nobody reads again. One process per database does it (the app's maintenance worker, with
 * the other housekeeping jobs), not every worker's page: the proxy's event loops are not asked to
 * write for a page nobody may be using.
 */
import type { Logger } from '../log.js';
import type { Store } from '../store/index.js';
import { runPeriodically } from '../store/periodic.js';
import { CONNECT_TTL_MS } from './connect-flows.js';

const SWEEP_EVERY_MS = 60_000;

export function startSessionBoxSweep(store: Store, recentAuthMs: number, log: Logger, options: { everyMs?: number; clock?: () => number } = {}): { stop(): void } {
  const { everyMs = SWEEP_EVERY_MS, clock = Date.now } = options;
  const job = async () => {
    const now = clock();
    try {
      await store.portalSessions.forgetStaleBoxes(now - recentAuthMs, now - CONNECT_TTL_MS);
    } catch (err) {
      log.warn({ event: 'portal.box_sweep_failed', err: (err as Error).message }, 'stale account-page session boxes could not be cleared; retried later');
    }
  };
  return { stop: runPeriodically(job, everyMs) };
}
