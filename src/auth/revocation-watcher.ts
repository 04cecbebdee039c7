/**
 * Signs apps out when their password stops being valid. Polling the shared SQLite file every
 * 250 ms (only while sessions exist) sees revocations committed by any process — a separate
 * `postern password revoke` included — without IPC. It only reads, and in WAL mode a read never
 * waits for a writer: a write lock held elsewhere cannot blind it.
 *
 * A poll costs the same at 10 or 10,000 watched passwords when nothing changed: one read of the
 * change log's revision (migration 3, kept by triggers, so it moves on revocations, expiry
 * changes and deletions only — not on the proxy's own history and last-use writes). When it moved,
 * the poll reads the changes after the last revision it saw and the state of just those of them it
 * watches. Expiry is the clock's business, not a commit's: the watched expiry instants wait in a
 * min-heap and fire at the first poll past them, with no query.
 *
 * Race: a session is verified, then its password is revoked, then (after the upstream login) the
 * session is watched — the revocation's revision may already be behind the watcher. So a password
 * watched afresh has its whole state read once, at the next poll, not just its changes since.
 *
 * On PostgreSQL a change feed (LISTEN/NOTIFY, connect-change-feed.ts) calls recheck() with the
 * notified ids and pollNow(), and resyncAll() after each reconnect; the timer then only runs a
 * slow safety-net poll. The notified ids are read directly because a sequence's revisions are
 * not in commit order there: a transaction holding revision 6 may commit after one holding 7
 * was polled past, and `changedSince` would never show it.
 *
 * A poll awaits the store (the async interface, or the sync SQLite repository as it is): polls never
 * overlap; one asked for while one runs happens right after it, since the running one may have read
 * the revision before the commit that asked.
 */
import type { PasswordChange, PasswordState } from '../store/app-passwords.js';
import { ExpiryQueue } from './expiry-queue.js';
import type { RevocationListener } from './types.js';

export const REVOCATION_POLL_MS = 250;

type Reason = Parameters<RevocationListener>[0];
/** What a poll reads: the SQLite repository's methods or the async store's (src/store/api.ts). */
export interface RevocationSource {
  revision(): number | Promise<number>;
  changedSince(revision: number): PasswordChange[] | Promise<PasswordChange[]>;
  states(ids: readonly number[]): PasswordState[] | Promise<PasswordState[]>;
}

interface Watched {
  listeners: Set<RevocationListener>;
  /** As last read from the database; null until then, and for a password that never expires. */
  expiresAt: number | null;
}

export class RevocationWatcher {
  private readonly watched = new Map<number, Watched>();
  /** Watched (or rechecked) since the last poll began: their full state is still to be read (see the race above). */
  private fresh = new Set<number>();
  private readonly expiries = new ExpiryQueue();
  /** The change-log revision the watched states are known up to; null while nothing is watched. */
  private seen: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;
  private pollAgain = false;

  constructor(
    private readonly source: RevocationSource,
    private readonly clock: () => number = Date.now,
    private pollMs = REVOCATION_POLL_MS,
    /** A failed poll (database unreachable) leaves its work to the next one; this hears of it. */
    private readonly onPollError: (err: unknown) => void = () => {},
  ) {}

  watch(passwordId: number, listener: RevocationListener): () => void {
    let entry = this.watched.get(passwordId);
    if (!entry) {
      this.watched.set(passwordId, (entry = { listeners: new Set(), expiresAt: null }));
      this.fresh.add(passwordId);
    }
    entry.listeners.add(listener);
    this.ensureTimer();
    return () => this.unwatch(passwordId, listener);
  }

  /**
   * Polls now, or right after the poll running (see the header); rejects if that poll failed.
   * Settles once a poll that began after this call has finished.
   */
  check(): Promise<void> {
    if (this.polling) {
      this.pollAgain = true;
      return this.polling;
    }
    this.polling = this.pollWhileAsked();
    return this.polling;
  }

  /** check() for a caller that does not wait (a notification, the timer): a failure goes to onPollError. */
  pollNow(): void {
    this.check().catch(this.onPollError);
  }

  /** The state of these watched passwords is read whole at the next poll (a notification named them). */
  recheck(ids: Iterable<number>): void {
    for (const id of ids) if (this.watched.has(id)) this.fresh.add(id);
  }

  /** Every watched password is read whole at the next poll (the notifications of an outage are lost). */
  resyncAll(): void {
    this.recheck(this.watched.keys());
  }

  /** The timer's period: fast while polling is all there is, slow as a safety net behind a change feed. */
  setPollInterval(ms: number): void {
    if (ms === this.pollMs) return;
    this.pollMs = ms;
    if (this.timer) {
      this.stopTimer();
      this.ensureTimer();
    }
  }

  get watchedCount(): number {
    return this.watched.size;
  }

  stop(): void {
    this.stopTimer();
    this.watched.clear();
    this.forget();
  }

  /** Clears `polling` in the same step as it decides to stop: a later ask starts a new poll, never joins a finished one. */
  private async pollWhileAsked(): Promise<void> {
    try {
      do {
        this.pollAgain = false;
        await this.poll();
      } while (this.pollAgain);
    } finally {
      this.polling = null;
    }
  }

  private async poll(): Promise<void> {
    if (this.watched.size === 0) return;
    // Ids made fresh while this poll awaits are for the next one: its reads may predate them.
    const fresh = this.fresh;
    this.fresh = new Set();
    try {
      const { ids, revision } = await this.idsToRead(fresh);
      const states = ids.size > 0 ? await this.source.states([...ids]) : [];
      // Only once every read has succeeded: a failed one leaves the same work for the next poll.
      this.seen = revision;
      const now = this.clock();
      if (ids.size > 0) this.apply(ids, states, now);
      this.fireExpired(now);
    } catch (err) {
      for (const id of fresh) if (this.watched.has(id)) this.fresh.add(id);
      throw err;
    }
  }

  /**
   * The fresh ids plus the watched ids changed since `seen`, and the revision they bring the
   * watcher up to. Reads the revision before any state, so a commit racing this poll is either in
   * the states read now or after the revision kept.
   */
  private async idsToRead(fresh: ReadonlySet<number>): Promise<{ ids: Set<number>; revision: number }> {
    const ids = new Set(fresh);
    const seen = this.seen;
    const revision = await this.source.revision();
    if (seen === null || revision === seen) return { ids, revision };
    const changes = revision > seen ? await this.source.changedSince(seen) : [];
    // A gap (the log pruned past `seen`) or a revision gone back (a restored backup): what changed
    // is unknown, so read every watched password once.
    const complete = changes.length > 0 && changes[0]!.revision === seen + 1;
    if (!complete) for (const id of this.watched.keys()) ids.add(id);
    else for (const c of changes) if (this.watched.has(c.passwordId)) ids.add(c.passwordId);
    return { ids, revision: Math.max(revision, changes.at(-1)?.revision ?? revision) };
  }

  private apply(ids: ReadonlySet<number>, states: readonly PasswordState[], now: number): void {
    const byId = new Map(states.map((s) => [s.id, s]));
    for (const id of ids) {
      const entry = this.watched.get(id);
      if (!entry) continue;
      const state = byId.get(id);
      const reason: Reason | null = !state ? 'account-removed'
        : state.revokedAt !== null ? state.revokedReason ?? 'admin'
        : state.expiresAt !== null && state.expiresAt <= now ? 'expiry'
        : null;
      if (reason) this.fire(id, reason, state?.revokedAt ?? (reason === 'expiry' ? state?.expiresAt : null) ?? now);
      else if (state!.expiresAt !== entry.expiresAt) this.setExpiry(id, entry, state!.expiresAt);
    }
  }

  private setExpiry(id: number, entry: Watched, at: number | null): void {
    entry.expiresAt = at;
    if (at !== null) this.expiries.push({ at, id });
    // Entries of unwatched passwords and replaced expiries stay in the heap until popped.
    if (this.expiries.size > 2 * this.watched.size + 64) {
      this.expiries.rebuild([...this.watched].flatMap(([wid, w]) => (w.expiresAt === null ? [] : [{ at: w.expiresAt, id: wid }])));
    }
  }

  private fireExpired(now: number): void {
    for (let due = this.expiries.popDue(now); due; due = this.expiries.popDue(now)) {
      if (this.watched.get(due.id)?.expiresAt === due.at) this.fire(due.id, 'expiry', due.at);
    }
  }

  private fire(id: number, reason: Reason, at: number): void {
    const entry = this.watched.get(id);
    this.watched.delete(id);
    this.fresh.delete(id);
    for (const listener of entry?.listeners ?? []) listener(reason, at);
    if (this.watched.size === 0) this.idle();
  }

  private unwatch(id: number, listener: RevocationListener): void {
    const entry = this.watched.get(id);
    if (!entry) return;
    entry.listeners.delete(listener);
    if (entry.listeners.size > 0) return;
    this.watched.delete(id);
    this.fresh.delete(id);
    if (this.watched.size === 0) this.idle();
  }

  /** Nothing watched: stop polling; what is watched next is fresh, so nothing needs remembering. */
  private idle(): void {
    this.stopTimer();
    this.forget();
  }

  private forget(): void {
    this.fresh.clear();
    this.expiries.clear();
    this.seen = null;
  }

  private ensureTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.pollNow(), this.pollMs);
    this.timer.unref();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
