/**
 * Hooks a change feed (PostgreSQL LISTEN/NOTIFY, src/store/postgres/change-feed.ts) to a
 * revocation watcher: a notified password is read at once, and every watched one after each
 * (re)connect, since what was notified while the feed was down is lost. While the feed listens the
 * watcher's timer only runs a slow safety-net poll; while it is down the timer polls at the full
 * rate again, so a revoke still ends its sessions within a second (issue 14).
 *
 * The feed is described here rather than imported: auth does not depend on a storage engine.
 */
import { REVOCATION_POLL_MS, type RevocationWatcher } from './revocation-watcher.js';

/** The safety net's period while the feed listens: NOTIFY does the work, this catches the rest. */
export const SAFETY_NET_POLL_MS = 5_000;

export interface ChangeFeed {
  /** Ids notified in one event-loop turn (one socket read's worth). */
  onChange(listener: (passwordIds: ReadonlySet<number>) => void): () => void;
  /** After every successful (re)connect, the first included. */
  onResync(listener: () => void): () => void;
  onLost(listener: () => void): () => void;
}

export interface ChangeFeedWiring {
  safetyNetPollMs?: number;
  /** The rate while the feed is down (the watcher's own rate, unless told). */
  pollMs?: number;
}

/** Returns the undo (for a feed replaced or closed before the watcher). */
export function connectChangeFeed(watcher: RevocationWatcher, feed: ChangeFeed, wiring: ChangeFeedWiring = {}): () => void {
  const safetyNetMs = wiring.safetyNetPollMs ?? SAFETY_NET_POLL_MS;
  const fastMs = wiring.pollMs ?? REVOCATION_POLL_MS;
  const offs = [
    feed.onChange((ids) => {
      watcher.recheck(ids);
      watcher.pollNow();
    }),
    feed.onResync(() => {
      watcher.setPollInterval(safetyNetMs);
      watcher.resyncAll();
      watcher.pollNow();
    }),
    feed.onLost(() => watcher.setPollInterval(fastMs)),
  ];
  return () => {
    for (const off of offs) off();
    watcher.setPollInterval(fastMs);
  };
}
