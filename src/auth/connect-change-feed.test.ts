/**
 * The revocation watcher's side of a change feed: pollNow, recheck, resyncAll, setPollInterval
 * and connectChangeFeed. The store is an in-memory stand-in whose reads can be held open, which
 * a real database cannot do on cue: that is how a poll is caught mid-flight. Pins:
 * - polls never overlap; asking while one runs gives exactly one more, right after it (the running
 *   one may have read the revision before the commit that asked);
 * - a notified password is read whole even when the revision has not moved — a PostgreSQL commit
 *   holding a revision below one already polled past — which the poll alone would never see;
 * - resyncAll reads every watched password whole; ids made fresh during a poll are not dropped
 *   by it; a failed poll goes to onPollError and leaves its work to the next one;
 * - wired to a feed: a notification ends the session at once, the timer runs the slow safety net
 *   while the feed listens and the full rate while it is down.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { PasswordChange, PasswordState } from '../store/app-passwords.js';
import { connectChangeFeed, type ChangeFeed } from './connect-change-feed.js';
import { RevocationWatcher, type RevocationSource } from './revocation-watcher.js';

class MemorySource implements RevocationSource {
  rev = 0;
  log: PasswordChange[] = [];
  rows = new Map<number, PasswordState>();
  /** While set, revision() answers only when it resolves: a poll held open at its first read. */
  hold: Promise<void> | null = null;
  failNext = false;
  readonly revisionCalls = vi.fn();
  readonly stateCalls = vi.fn();

  constructor(ids: readonly number[]) {
    for (const id of ids) this.rows.set(id, { id, revokedAt: null, revokedReason: null, expiresAt: null });
  }

  async revision(): Promise<number> {
    this.revisionCalls();
    // Read first, answered later: a commit during the hold is not in this answer.
    const rev = this.rev;
    if (this.hold) await this.hold;
    if (this.failNext) {
      this.failNext = false;
      throw new Error('database unreachable');
    }
    return rev;
  }

  changedSince(revision: number): PasswordChange[] {
    return this.log.filter((c) => c.revision > revision);
  }

  async states(ids: readonly number[]): Promise<PasswordState[]> {
    this.stateCalls([...ids].sort((a, b) => a - b));
    return ids.flatMap((id) => (this.rows.has(id) ? [this.rows.get(id)!] : []));
  }

  /** A revoke as the triggers log it, at the given revision (not necessarily the next one). */
  revoke(id: number, revision = this.rev + 1): void {
    this.rows.set(id, { id, revokedAt: 1, revokedReason: 'admin', expiresAt: null });
    this.log.push({ revision, passwordId: id });
    this.log.sort((a, b) => a.revision - b.revision);
    this.rev = Math.max(this.rev, revision);
  }
}

function held(source: MemorySource): () => void {
  let release!: () => void;
  source.hold = new Promise((r) => (release = r));
  return () => {
    source.hold = null;
    release();
  };
}

let watcher: RevocationWatcher | undefined;
afterEach(() => {
  watcher?.stop();
  watcher = undefined;
  vi.useRealTimers();
});

function watchAll(w: RevocationWatcher, ids: readonly number[]): Map<number, string> {
  const fired = new Map<number, string>();
  for (const id of ids) w.watch(id, (reason) => fired.set(id, reason));
  return fired;
}

describe('pollNow and check', () => {
  it('a poll asked for while one runs is run once, right after it, and sees the commit that asked', async () => {
    const source = new MemorySource([1, 2]);
    watcher = new RevocationWatcher(source, Date.now, 60_000);
    const fired = watchAll(watcher, [1, 2]);
    await watcher.check();
    source.revisionCalls.mockClear();

    const release = held(source);
    const first = watcher.check();
    // The first poll is past its read of the revision; now a revoke commits and is notified, thrice.
    source.revoke(2);
    watcher.pollNow();
    watcher.pollNow();
    const asked = watcher.check();
    release();
    await Promise.all([first, asked]);
    expect(source.revisionCalls).toHaveBeenCalledTimes(2);
    expect([...fired]).toEqual([[2, 'admin']]);
  });

  it('a failed poll goes to onPollError and leaves its work to the next one', async () => {
    const source = new MemorySource([1]);
    const errors: unknown[] = [];
    watcher = new RevocationWatcher(source, Date.now, 60_000, (err) => errors.push(err));
    const fired = watchAll(watcher, [1]);
    source.revoke(1);
    source.failNext = true;
    watcher.pollNow();
    await expect.poll(() => errors.length).toBe(1);
    expect(fired.size).toBe(0);
    await watcher.check();
    expect([...fired]).toEqual([[1, 'admin']]);
  });
});

describe('recheck and resyncAll', () => {
  it('a commit whose revision is below one already polled past (PostgreSQL sequences) is applied when notified', async () => {
    const source = new MemorySource([1, 2, 3]);
    watcher = new RevocationWatcher(source, Date.now, 60_000);
    const fired = watchAll(watcher, [1, 2, 3]);
    await watcher.check();
    // Transaction A took revision 1, B took 2; B committed first and was polled past…
    source.revoke(3, 2);
    await watcher.check();
    expect([...fired]).toEqual([[3, 'admin']]);
    // …then A commits its revision 1: the revision does not move, so a poll alone never sees it.
    source.revoke(1, 1);
    await watcher.check();
    expect(fired.has(1)).toBe(false);
    watcher.recheck([1]);
    await watcher.check();
    expect(fired.get(1)).toBe('admin');
  });

  it('recheck ignores ids not watched; resyncAll reads every watched password whole', async () => {
    const source = new MemorySource([1, 2, 3]);
    watcher = new RevocationWatcher(source, Date.now, 60_000);
    watchAll(watcher, [1, 2, 3]);
    await watcher.check();
    source.stateCalls.mockClear();
    watcher.recheck([2, 99]);
    await watcher.check();
    expect(source.stateCalls).toHaveBeenCalledExactlyOnceWith([2]);
    watcher.resyncAll();
    await watcher.check();
    expect(source.stateCalls).toHaveBeenLastCalledWith([1, 2, 3]);
    await watcher.check();
    expect(source.stateCalls).toHaveBeenCalledTimes(2);
  });

  it('a password made fresh while a poll runs is read by the next poll, not dropped by this one', async () => {
    const source = new MemorySource([1, 2]);
    watcher = new RevocationWatcher(source, Date.now, 60_000);
    watchAll(watcher, [1]);
    await watcher.check();
    source.stateCalls.mockClear();
    const release = held(source);
    const running = watcher.check();
    watcher.recheck([1]);
    watchAll(watcher, [2]);
    release();
    await running;
    expect(source.stateCalls).not.toHaveBeenCalled();
    await watcher.check();
    expect(source.stateCalls).toHaveBeenCalledExactlyOnceWith([1, 2]);
  });
});

class FakeFeed implements ChangeFeed {
  change = new Set<(ids: ReadonlySet<number>) => void>();
  resync = new Set<() => void>();
  lost = new Set<() => void>();
  onChange(l: (ids: ReadonlySet<number>) => void) {
    this.change.add(l);
    return () => this.change.delete(l);
  }
  onResync(l: () => void) {
    this.resync.add(l);
    return () => this.resync.delete(l);
  }
  onLost(l: () => void) {
    this.lost.add(l);
    return () => this.lost.delete(l);
  }
}

describe('connectChangeFeed', () => {
  it('a notification ends the session at once; the timer runs the safety net while listening, the full rate while down', async () => {
    vi.useFakeTimers();
    const source = new MemorySource([1, 2]);
    watcher = new RevocationWatcher(source, Date.now, 250);
    const feed = new FakeFeed();
    connectChangeFeed(watcher, feed, { safetyNetPollMs: 5_000, pollMs: 250 });
    const fired = watchAll(watcher, [1, 2]);
    for (const l of feed.resync) l();
    await vi.advanceTimersByTimeAsync(0);
    expect(source.stateCalls).toHaveBeenLastCalledWith([1, 2]);

    source.revisionCalls.mockClear();
    await vi.advanceTimersByTimeAsync(4_900);
    expect(source.revisionCalls).not.toHaveBeenCalled();
    // Out of commit order, as above: only the notified id can reveal it.
    source.revoke(2, 0);
    for (const l of feed.change) l(new Set([2]));
    await vi.advanceTimersByTimeAsync(0);
    expect([...fired]).toEqual([[2, 'admin']]);

    for (const l of feed.lost) l();
    source.revisionCalls.mockClear();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(source.revisionCalls).toHaveBeenCalledTimes(4);
  });
});
