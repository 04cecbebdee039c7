/**
 * Migration 3 (the change log the revocation watcher polls) on a real SQLite file. Pins: a
 * database at the previous schema is upgraded in place, its rows kept, and from then on every
 * session-ending change is logged by the triggers whoever writes; re-running the entry is
 * harmless; the log stays bounded (its latest 10,000 rows) and its revision never goes back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { schemaVersion } from './database.js';
import { openStore, sqliteDb } from './index.js';
import { MIGRATIONS } from './migrations.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'postern-migrate-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function previousSchema(file: string): Database.Database {
  const db = new Database(file);
  db.exec(MIGRATIONS[0]!);
  db.exec(MIGRATIONS[1]!);
  db.pragma('user_version = 2');
  db.exec(`INSERT INTO accounts (id, login, upstream_mode, upstream_user, primary_hash, created_at, primary_changed_at)
    VALUES (1, 'a', 'master', 'a', 'h', 1, 1), (2, 'b', 'master', 'b', 'h', 1, 1)`);
  const insert = db.prepare(`INSERT INTO app_passwords (id, public_id, account_id, digest, label, scopes, created_at)
    VALUES (?, ?, ?, randomblob(32), 'l', 'imap', 1)`);
  for (const [id, account] of [[10, 1], [11, 1], [20, 2], [21, 2]] as const) insert.run(id, `p${id}`, account);
  return db;
}

it('upgrades a database at the previous schema in place; the triggers then log every session-ending change', async () => {
  const file = path.join(dir, 'old.db');
  previousSchema(file).close();
  const store = openStore(file);
  try {
    expect(schemaVersion(sqliteDb(store))).toBe(MIGRATIONS.length);
    expect(await store.passwords.findByPublicId('p10')).toMatchObject({ id: 10, accountId: 1 });
    expect(await store.passwords.revision()).toBe(0);

    await store.passwords.markUsed(10, 5, 'imap', '192.0.2.1');
    await store.events.append({ type: 'login.failed', at: 5, login: 'a' });
    expect(await store.passwords.revision()).toBe(0);

    await store.passwords.revoke(10, 'admin', 5);
    sqliteDb(store).prepare('UPDATE app_passwords SET expires_at = 99 WHERE id = 11').run();
    sqliteDb(store).prepare('UPDATE app_passwords SET expires_at = 99 WHERE id = 11').run(); // unchanged: not logged
    await store.accounts.remove(2);
    const logged = await store.passwords.changedSince(0);
    expect(logged.map((c) => c.passwordId)).toEqual([10, 11, 20, 21, 20, 21]);
    expect(logged.map((c) => c.revision)).toEqual([1, 2, 3, 4, 5, 6]);
    expect((await store.passwords.changedSince(4)).map((c) => c.passwordId)).toEqual([20, 21]);
  } finally {
    await store.close();
  }
});

it('re-running the migration on a database that has it changes nothing', async () => {
  const file = path.join(dir, 'p.db');
  const store = openStore(file);
  await store.close();
  const db = new Database(file);
  try {
    const objects = () => db.prepare("SELECT type, name, sql FROM sqlite_master ORDER BY name").all();
    const before = objects();
    db.exec(MIGRATIONS[2]!);
    expect(objects()).toEqual(before);
  } finally {
    db.close();
  }
});

it('keeps the latest 10,000 changes, and the revision keeps counting past what was pruned', async () => {
  const file = path.join(dir, 'p.db');
  const store = openStore(file);
  try {
    await store.accounts.insert({ login: 'a', upstreamMode: 'master', upstreamUser: 'a', primaryHash: 'h', primarySalt: null, dekPrimary: null, now: 1 });
    await store.passwords.insert({ publicId: 'p1', accountId: 1, digest: Buffer.alloc(32, 7), label: 'l', scopes: ['imap'], createdAt: 1, expiresAt: 1, dekSalt: null, dekBox: null });
    const bump = sqliteDb(store).prepare('UPDATE app_passwords SET expires_at = expires_at + 1');
    await store.transaction(async () => {
      for (let i = 0; i < 10_050; i++) bump.run();
    });
    expect(await store.passwords.revision()).toBe(10_050);
    const kept = await store.passwords.changedSince(0);
    expect(kept).toHaveLength(10_000);
    expect(kept[0]!.revision).toBe(51);
    sqliteDb(store).exec('DELETE FROM password_changes');
    bump.run();
    expect(await store.passwords.revision()).toBe(10_051);
  } finally {
    await store.close();
  }
});

/**
 * Migration 5 rebuilds the accounts table (mode `oauth2`): the app passwords of every account
 * survive it (the rebuild runs with foreign keys off; with them on, dropping the old table would
 * cascade to them), the removal trigger of migration 3 is back, and the new mode is accepted only
 * with a provider.
 */
it('upgrades a database at schema 4 to upstream mode oauth2 without losing an app password', async () => {
  const file = path.join(dir, 'v4.db');
  const db = previousSchema(file);
  db.exec(MIGRATIONS[2]!);
  db.exec(MIGRATIONS[3]!);
  db.pragma('user_version = 4');
  db.close();
  const store = openStore(file);
  try {
    expect(schemaVersion(sqliteDb(store))).toBe(MIGRATIONS.length);
    expect((await store.passwords.listForAccount(1)).map((p) => p.publicId)).toEqual(['p10', 'p11']);
    expect((await store.passwords.listForAccount(2)).map((p) => p.publicId)).toEqual(['p20', 'p21']);
    expect(sqliteDb(store).pragma('foreign_keys', { simple: true })).toBe(1);
    expect(sqliteDb(store).pragma('foreign_key_check')).toEqual([]);
    expect(await store.accounts.get(1)).toMatchObject({ login: 'a', upstreamMode: 'master', oauth2Provider: null });

    const id = await store.accounts.insert({ login: 'c', upstreamMode: 'oauth2', oauth2Provider: 'microsoft', upstreamUser: 'c', primaryHash: 'h', primarySalt: null, dekPrimary: null, now: 1 });
    expect(await store.accounts.get(id)).toMatchObject({ upstreamMode: 'oauth2', oauth2Provider: 'microsoft' });
    await expect(store.accounts.insert({ login: 'd', upstreamMode: 'oauth2', upstreamUser: 'd', primaryHash: 'h', primarySalt: null, dekPrimary: null, now: 1 })).rejects.toThrow(/CHECK/);

    const before = await store.passwords.revision();
    await store.accounts.remove(2);
    expect((await store.passwords.changedSince(before)).map((c) => c.passwordId)).toEqual([20, 21, 20, 21]);
    expect(await store.passwords.listForAccount(2)).toEqual([]);
  } finally {
    await store.close();
  }
});
