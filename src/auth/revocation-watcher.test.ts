/**
 * The revocation watcher on a real SQLite file, with a second connection playing the other
 * process (a CLI revoke, an account removal). Pins:
 * - every change that ends a session, committed by another connection, fires the listeners of its
 *   passwords — and only theirs — within a second, at 10,000 watched passwords;
 * - a poll when nothing changed reads the revision and nothing else: unrelated writes (history,
 *   use records, upstream status, new passwords) neither fire nor make it read a single state;
 *   when something changed it reads the state of the changed watched passwords only;
 * - expiry fires at its instant from memory, without a query or a revision change;
 * - the verify → revoke → watch race: a revocation the watcher's revision has already passed is
 *   still seen by a session watched afterwards; so is one committed while the watcher was stopped;
 * - a watcher left behind by the pruned log, or facing a revision gone back, re-reads everything.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { openStore, sqliteDb, type Store } from '../store/index.js';
import { RevocationWatcher } from './revocation-watcher.js';

let dir: string;
let file: string;
let store: Store;
let other: Store;
let watcher: RevocationWatcher | undefined;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'postern-watcher-'));
  file = path.join(dir, 'p.db');
  store = openStore(file);
  other = openStore(file);
});
afterEach(async () => {
  watcher?.stop();
  watcher = undefined;
  await other.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

let digestSeq = 0;
function addAccount(s: Store, login: string): Promise<number> {
  return s.accounts.insert({ login, upstreamMode: 'master', upstreamUser: login, primaryHash: 'h', primarySalt: null, dekPrimary: null, now: 1 });
}
function addPasswords(s: Store, accountId: number, n: number, expiresAt: number | null = null): Promise<number[]> {
  return s.transaction(async (tx) => {
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      const seq = ++digestSeq;
      const digest = Buffer.alloc(32);
      digest.writeUInt32BE(seq);
      ids.push(await tx.passwords.insert({ publicId: `p${seq}`, accountId, digest, label: 'l', scopes: ['imap'], createdAt: 1, expiresAt, dekSalt: null, dekBox: null }));
    }
    return ids;
  });
}

type Fired = Map<number, string[]>;
function watchAll(w: RevocationWatcher, ids: readonly number[], fired: Fired = new Map()): Fired {
  for (const id of ids) w.watch(id, (reason) => fired.set(id, [...(fired.get(id) ?? []), reason]));
  return fired;
}

describe('changes committed by another connection, at 10,000 watched passwords', () => {
  const cases: Array<[string, string, (target: { accountId: number; ids: number[] }) => Promise<unknown> | void]> = [
    ['a revoke (postern password revoke)', 'admin', (t) => other.passwords.revoke(t.ids[0]!, 'admin', Date.now())],
    ['a revoke-all', 'revoke-all', (t) => other.passwords.revokeAll(t.accountId, 'revoke-all', Date.now())],
    ['a primary password change', 'primary-password-change', (t) => other.passwords.revokeAll(t.accountId, 'primary-password-change', Date.now())],
    ['an upstream-mode change', 'upstream-mode-change', (t) => other.passwords.revokeAll(t.accountId, 'upstream-mode-change', Date.now())],
    ['an account removal', 'account-removed', (t) => other.accounts.remove(t.accountId)],
    ['an expiry brought forward to now', 'expiry', (t) => {
      sqliteDb(other).prepare('UPDATE app_passwords SET expires_at = ? WHERE account_id = ?').run(Date.now(), t.accountId);
    }],
    ['an account removal with foreign keys off (a hand-run sqlite3)', 'account-removed', (t) => {
      const raw = new Database(file);
      raw.pragma('foreign_keys = OFF');
      raw.prepare('DELETE FROM accounts WHERE id = ?').run(t.accountId);
      raw.close();
    }],
  ];

  it.each(cases)('%s fires the sessions of exactly those passwords within 1 s', async (_name, reason, change) => {
    const crowd = await addPasswords(store, await addAccount(store, 'crowd'), 9_998);
    const accountId = await addAccount(store, 'target');
    const ids = await addPasswords(store, accountId, 2);
    watcher = new RevocationWatcher(store.passwords);
    const fired = watchAll(watcher, [...crowd, ...ids]);
    expect(watcher.watchedCount).toBe(10_000);
    await watcher.check();
    expect(fired.size).toBe(0);

    await change({ accountId, ids });
    const committedAt = Date.now();
    const firedAt: number[] = [];
    watcher.watch(ids[0]!, () => firedAt.push(Date.now()));
    await expect.poll(() => firedAt.length, { timeout: 1500, interval: 10 }).toBe(1);
    expect(firedAt[0]! - committedAt).toBeLessThan(1000);
    const expected = reason === 'admin' ? [ids[0]!] : ids;
    await expect.poll(() => [...fired.keys()].sort((x, y) => x - y), { timeout: 1000 }).toEqual(expected);
    for (const id of expected) expect(fired.get(id)).toEqual([reason]);
    expect(watcher.watchedCount).toBe(10_000 - expected.length);
  });
});

describe('what a poll reads', () => {
  it('reads only the revision when nothing changed, at 10,000 watched; then only the changed password', async () => {
    const ids = await addPasswords(store, await addAccount(store, 'a'), 10_000);
    watcher = new RevocationWatcher(store.passwords);
    watchAll(watcher, ids);
    await watcher.check();
    const revision = vi.spyOn(store.passwords, 'revision');
    const changes = vi.spyOn(store.passwords, 'changedSince');
    const states = vi.spyOn(store.passwords, 'states');
    for (let i = 0; i < 20; i++) await watcher.check();
    expect(revision).toHaveBeenCalledTimes(20);
    expect(changes).not.toHaveBeenCalled();
    expect(states).not.toHaveBeenCalled();

    await other.passwords.revoke(ids[4321]!, 'admin', Date.now());
    await watcher.check();
    expect(changes).toHaveBeenCalledTimes(1);
    expect(states).toHaveBeenCalledExactlyOnceWith([ids[4321]]);
    expect(watcher.watchedCount).toBe(9_999);
  });

  it('unrelated writes (history events, use records, upstream status, new passwords) fire nothing and move no revision', async () => {
    const accountId = await addAccount(store, 'a');
    const ids = await addPasswords(store, accountId, 100);
    watcher = new RevocationWatcher(store.passwords);
    const fired = watchAll(watcher, ids);
    await watcher.check();
    const before = await store.passwords.revision();
    const states = vi.spyOn(store.passwords, 'states');
    const changes = vi.spyOn(store.passwords, 'changedSince');

    await other.transaction(async (tx) => {
      for (let i = 0; i < 50; i++) await tx.events.append({ type: 'login.failed', at: i, login: 'a', address: '192.0.2.1' });
      for (const id of ids) await tx.passwords.markUsed(id, Date.now(), 'imap', '192.0.2.1');
      await tx.accounts.setUpstreamStatus(accountId, 'rejected', Date.now());
    });
    await addPasswords(other, accountId, 3);
    await watcher.check();

    expect(fired.size).toBe(0);
    expect(await store.passwords.revision()).toBe(before);
    expect(states).not.toHaveBeenCalled();
    expect(changes).not.toHaveBeenCalled();
  });
});

describe('expiry', () => {
  it('fires at its instant from memory, without a query or a revision change', async () => {
    const t0 = 1_000_000;
    let now = t0;
    const [soon, later, never] = [
      (await addPasswords(store, await addAccount(store, 'a'), 1, t0 + 1000))[0]!,
      (await addPasswords(store, await addAccount(store, 'b'), 1, t0 + 5000))[0]!,
      (await addPasswords(store, await addAccount(store, 'c'), 1, null))[0]!,
    ];
    watcher = new RevocationWatcher(store.passwords, () => now);
    const fired = watchAll(watcher, [soon, later, never]);
    await watcher.check();
    const revision = await store.passwords.revision();
    const states = vi.spyOn(store.passwords, 'states');

    now = t0 + 999;
    await watcher.check();
    expect(fired.size).toBe(0);
    now = t0 + 1000;
    await watcher.check();
    expect([...fired]).toEqual([[soon, ['expiry']]]);
    now = t0 + 5000;
    await watcher.check();
    expect(fired.get(later)).toEqual(['expiry']);
    expect(fired.has(never)).toBe(false);
    expect(states).not.toHaveBeenCalled();
    expect(await store.passwords.revision()).toBe(revision);
  });

  it('follows an expiry moved by another connection: not at the old instant, at the new one', async () => {
    const t0 = 1_000_000;
    let now = t0;
    const [id] = await addPasswords(store, await addAccount(store, 'a'), 1, t0 + 1000);
    watcher = new RevocationWatcher(store.passwords, () => now);
    const fired = watchAll(watcher, [id!]);
    await watcher.check();
    sqliteDb(other).prepare('UPDATE app_passwords SET expires_at = ? WHERE id = ?').run(t0 + 3000, id);
    await watcher.check();
    now = t0 + 2000;
    await watcher.check();
    expect(fired.size).toBe(0);
    now = t0 + 3000;
    await watcher.check();
    expect(fired.get(id!)).toEqual(['expiry']);
  });
});

describe('revocations the revision had already passed', () => {
  it('verify → revoke → watch race: a session watched after its revoke was polled past is still signed out', async () => {
    const accountId = await addAccount(store, 'a');
    const [session, bystander] = await addPasswords(store, accountId, 2);
    watcher = new RevocationWatcher(store.passwords);
    watchAll(watcher, [bystander!]);
    await watcher.check();
    // The session's password was verified; before its upstream login finished, it was revoked…
    await other.passwords.revoke(session!, 'admin', Date.now());
    // …and the watcher polled meanwhile, moving past the revoke's revision.
    await watcher.check();
    const fired = watchAll(watcher, [session!]);
    await watcher.check();
    expect(fired.get(session!)).toEqual(['admin']);
  });

  it('a revoke committed while the watcher was stopped, or idle with nothing watched, is still seen', async () => {
    const [a, b] = await addPasswords(store, await addAccount(store, 'a'), 2);
    watcher = new RevocationWatcher(store.passwords);
    const unwatch = watcher.watch(a!, () => {});
    await watcher.check();
    unwatch();
    await other.passwords.revoke(a!, 'admin', Date.now());
    const fired = watchAll(watcher, [a!]);
    await watcher.check();
    expect(fired.get(a!)).toEqual(['admin']);

    watchAll(watcher, [b!], fired);
    await watcher.check();
    watcher.stop();
    await other.passwords.revoke(b!, 'revoke-all', Date.now());
    watchAll(watcher, [b!], fired);
    await watcher.check();
    expect(fired.get(b!)).toEqual(['revoke-all']);
  });

  it('a watcher left behind by the pruned log re-reads every watched password', async () => {
    const accountId = await addAccount(store, 'a');
    const [a, b, c] = await addPasswords(store, accountId, 3);
    watcher = new RevocationWatcher(store.passwords);
    const fired = watchAll(watcher, [a!, b!]);
    await watcher.check();
    await other.passwords.revoke(a!, 'admin', Date.now());
    // As if 10,000 later changes had pruned the log past the watcher's revision.
    sqliteDb(other).exec('DELETE FROM password_changes');
    await other.passwords.revoke(c!, 'admin', Date.now());
    await watcher.check();
    expect([...fired]).toEqual([[a, ['admin']]]);
  });

  it('a revision gone back (a backup restored under a running proxy) re-reads every watched password', async () => {
    const [a, b] = await addPasswords(store, await addAccount(store, 'a'), 2);
    const gone = await addAccount(store, 'gone');
    await addPasswords(store, gone, 2);
    await other.passwords.revokeAll(gone, 'revoke-all', Date.now());
    watcher = new RevocationWatcher(store.passwords);
    const fired = watchAll(watcher, [a!, b!]);
    await watcher.check();
    // The restored file's log is shorter: its latest revision is below the one the watcher saw.
    sqliteDb(other).exec("DELETE FROM password_changes; UPDATE sqlite_sequence SET seq = 0 WHERE name = 'password_changes'");
    await other.passwords.revoke(b!, 'admin', Date.now());
    expect(await other.passwords.revision()).toBe(1);
    await watcher.check();
    expect([...fired]).toEqual([[b, ['admin']]]);
  });
});
