/**
 * The database file itself: WAL mode, a busy timeout, foreign keys, versioned migrations applied
 * once — also when several processes open a fresh file at the same instant (the migration runs
 * under BEGIN IMMEDIATE, so exactly one applies it) — and an append-only history.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { schemaVersion } from '../../src/store/database.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { openStore, sqliteDb } from '../../src/store/index.js';
import { ROOT } from '../helpers/cli.js';
import { engine } from '../helpers/test-database.js';

// SQLite only: every test here is about the SQLite file itself (pragmas, BEGIN IMMEDIATE across
// processes, its triggers and user_version); PostgreSQL's counterparts are in postgres-store.test.ts.
const itSqlite = it.runIf(engine === 'sqlite');

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'postern-db-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

itSqlite('opens in WAL mode with a busy timeout, foreign keys on and the latest schema', async () => {
  const store = openStore(path.join(dir, 'p.db'));
  try {
    expect(sqliteDb(store).pragma('journal_mode', { simple: true })).toBe('wal');
    expect(sqliteDb(store).pragma('busy_timeout', { simple: true })).toBe(5000);
    expect(sqliteDb(store).pragma('foreign_keys', { simple: true })).toBe(1);
    expect(schemaVersion(sqliteDb(store))).toBe(MIGRATIONS.length);
  } finally {
    await store.close();
  }
  const again = openStore(path.join(dir, 'p.db'));
  expect(schemaVersion(sqliteDb(again))).toBe(MIGRATIONS.length);
  await again.close();
});

itSqlite('several processes opening a fresh database at once all succeed, and the schema is applied once', async () => {
  const file = path.join(dir, 'race.db');
  const script = `import { openStore } from ${JSON.stringify(path.join(ROOT, 'src/store/index.ts'))};
    const s = openStore(${JSON.stringify(file)}); await s.accounts.list(); await s.close();`;
  const runs = Array.from({ length: 4 }, () => new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code, stderr }));
  }));
  for (const r of await Promise.all(runs)) expect(r, r.stderr).toMatchObject({ code: 0 });
  const store = openStore(file);
  try {
    expect(schemaVersion(sqliteDb(store))).toBe(MIGRATIONS.length);
    const tables = sqliteDb(store).prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all();
    expect(tables.map((t) => (t as { name: string }).name)).toEqual(['accounts', 'app_passwords', 'events', 'passkeys', 'password_changes', 'portal_sessions', 'profile_downloads', 'recovery_codes', 'second_factors', 'sqlite_sequence', 'throttle_blocks', 'throttle_counts']);
  } finally {
    await store.close();
  }
});

itSqlite('keeps the history append-only and deletes an account\'s passwords with it', async () => {
  const store = openStore(path.join(dir, 'p.db'));
  try {
    await store.events.append({ type: 'account.created', at: 1, login: 'x' });
    expect(() => sqliteDb(store).prepare("UPDATE events SET login = 'y'").run()).toThrow(/events are append-only/);
    const id = await store.accounts.insert({ login: 'x', upstreamMode: 'master', upstreamUser: 'x', primaryHash: 'h', primarySalt: null, dekPrimary: null, now: 1 });
    await store.passwords.insert({ publicId: 'aaaaaaaa', accountId: id, digest: Buffer.alloc(32, 1), label: 'l', scopes: ['imap'], createdAt: 1, expiresAt: null, dekSalt: null, dekBox: null });
    await expect(store.passwords.insert({ publicId: 'bbbbbbbb', accountId: id, digest: Buffer.alloc(32, 1), label: 'dup', scopes: ['imap'], createdAt: 1, expiresAt: null, dekSalt: null, dekBox: null }))
      .rejects.toThrow(/UNIQUE constraint failed: app_passwords.digest/);
    await store.accounts.remove(id);
    expect(await store.passwords.findByPublicId('aaaaaaaa')).toBeUndefined();
    expect((sqliteDb(store).prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n).toBe(1);
  } finally {
    await store.close();
  }
});

itSqlite('refuses a database written by a newer postern, with a message saying what to do, and leaves it untouched', async () => {
  const file = path.join(dir, 'future.db');
  await openStore(file).close();
  const raw = new Database(file);
  raw.pragma(`user_version = ${MIGRATIONS.length + 1}`);
  raw.close();
  expect(() => openStore(file)).toThrow(`the database has schema version ${MIGRATIONS.length + 1}, newer than this postern knows (${MIGRATIONS.length}); upgrade postern or restore a backup`);
  const after = new Database(file, { readonly: true });
  expect(after.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length + 1);
  after.close();
});

itSqlite('migration 4 gives the pop3 scope to every password that holds imap, and to no other', async () => {
  const file = path.join(dir, 'v2.db');
  const old = new Database(file);
  old.exec(MIGRATIONS[0]!);
  old.exec(MIGRATIONS[1]!);
  old.pragma('user_version = 2');
  old.prepare("INSERT INTO accounts (id, login, upstream_mode, upstream_user, primary_hash, created_at, primary_changed_at) VALUES (1, 'alice', 'password', 'alice', 'x', 0, 0)").run();
  const insert = old.prepare("INSERT INTO app_passwords (public_id, account_id, digest, label, scopes, created_at) VALUES (?, 1, ?, 'l', ?, 0)");
  const before = ['imap,smtp,caldav,carddav', 'imap', 'smtp', 'caldav,carddav', 'smtp,imap'];
  before.forEach((scopes, i) => insert.run(`p${i}`, Buffer.from([i]), scopes));
  old.close();

  const store = openStore(file);
  try {
    const after = (sqliteDb(store).prepare('SELECT scopes FROM app_passwords ORDER BY public_id').all() as Array<{ scopes: string }>).map((r) => r.scopes);
    expect(after).toEqual(['imap,pop3,smtp,caldav,carddav', 'imap,pop3', 'smtp', 'caldav,carddav', 'smtp,imap,pop3']);
  } finally {
    await store.close();
  }
});
