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
 * The source is the async store (src/store/api.ts): a poll may take a round trip, so polls never
 * overlap — a tick that finds one running is skipped, an explicit check() waits for it and then
 * polls afresh — and a password watched or unwatched while a poll awaits its reads is left for
 * the next one rather than lost. A failed poll leaves the same work for the next one.
 */
import type { Async } from '../store/api.js';
import type { AppPasswordRepo, PasswordState } from '../store/app-passwords.js';
import { ExpiryQueue } from './expiry-queue.js';
import type { RevocationListener } from './types.js';

export const REVOCATION_POLL_MS = 250;

type Reason = Parameters<RevocationListener>[0];
export type RevocationSource = Pick<Async<AppPasswordRepo>, 'revision' | 'changedSince' | 'states'>;

interface Watched {
  listeners: Set<RevocationListener>;
  /** As last read from the database; null until then, and for a password that never expires. */
  expiresAt: number | null;
}

export class RevocationWatcher {
  private readonly watched = new Map<number, Watched>();
  /** Watched since the last poll: their full state is still to be read (see the race above). */
  private readonly fresh = new Set<number>();
  private readonly expiries = new ExpiryQueue();
  /** The change-log revision the watched states are known up to; null while nothing is watched. */
  private seen: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** The poll under way, if any: the next waits for it (see the header). */
  private polling: Promise<void> | null = null;

  constructor(
    private readonly source: RevocationSource,
    private readonly clock: () => number = Date.now,
    private readonly pollMs = REVOCATION_POLL_MS,
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

  /** Checks now, after the poll under way if there is one; rejects if the reads fail. */
  async check(): Promise<void> {
    while (this.polling) await this.polling.catch(() => undefined);
    const poll = this.poll();
    this.polling = poll;
    try {
      await poll;
    } finally {
      this.polling = null;
    }
  }

  /** What the timer runs: skipped while a poll is under way (a slow database must not pile them up). */
  private tick(): void {
    if (this.polling) return;
    // A failed poll changes nothing; the next tick does the same work again.
    this.check().catch(() => undefined);
  }

  private async poll(): Promise<void> {
    if (this.watched.size === 0) return;
    const fresh = [...this.fresh];
    const { ids, revision } = await this.idsToRead();
    const states = ids.size > 0 ? await this.source.states([...ids]) : [];
    // Stopped or gone idle while reading: what is watched next is fresh anyway.
    if (this.watched.size === 0) return;
    // Only once every read has succeeded: a failed one leaves the same work for the next poll.
    this.seen = revision;
    // Only the ids this poll read: one watched while it awaited is still to be read in full.
    for (const id of fresh) this.fresh.delete(id);
    const now = this.clock();
    if (ids.size > 0) this.apply(ids, states, now);
    this.fireExpired(now);
  }

  get watchedCount(): number {
    return this.watched.size;
  }

  stop(): void {
    this.stopTimer();
    this.watched.clear();
    this.forget();
  }

  /**
   * The fresh ids plus the watched ids changed since `seen`, and the revision they bring the
   * watcher up to. Reads the revision before any state, so a commit racing this poll is either in
   * the states read now or after the revision kept.
   */
  private async idsToRead(): Promise<{ ids: Set<number>; revision: number }> {
    const ids = new Set(this.fresh);
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
    this.timer = setInterval(() => this.tick(), this.pollMs);
    this.timer.unref();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
