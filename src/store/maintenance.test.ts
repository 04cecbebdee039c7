/**
 * The store's maintenance interface (what `postern db check | backup` and `postern init` print and
 * do), on a real SQLite file. Pinned here:
 *  - check() reports integrity, foreign keys, schema version against the latest, journal mode and
 *    row counts, and `ok` only when both integrity and foreign keys are clean;
 *  - backup() writes a consistent copy that opens as a store with the same rows.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { MIGRATIONS } from './migrations.js';
import { openStore, type Store, sqliteDb } from './index.js';

let dir: string;
let store: Store;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'postern-maintenance-'));
  store = openStore(path.join(dir, 'postern.db'));
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function addAccount(login: string): Promise<number> {
  return await store.accounts.insert({ login, upstreamMode: 'master', upstreamUser: login, primaryHash: 'x', primarySalt: null, dekPrimary: null, now: 1 });
}

it('reports a fresh database as sound, at the latest schema version, in WAL mode', async () => {
  expect(await store.maintenance.schemaVersion()).toBe(MIGRATIONS.length);
  expect(await store.maintenance.check()).toEqual({
    ok: true, integrity: ['ok'], foreignKeyProblems: 0, schemaVersion: MIGRATIONS.length, latestSchemaVersion: MIGRATIONS.length,
    journalMode: 'wal', accounts: 0, appPasswords: 0, events: 0,
  });
});

it('counts the rows of each table', async () => {
  const id = await addAccount('alice');
  await addAccount('bob');
  await store.passwords.insert({ publicId: 'aaaa0001', accountId: id, digest: Buffer.alloc(32, 1), label: 'l', scopes: ['imap'], createdAt: 1, expiresAt: null, dekSalt: null, dekBox: null });
  await store.events.append({ type: 'account.created', at: 1, accountId: id, login: 'alice' });
  expect(await store.maintenance.check()).toMatchObject({ ok: true, accounts: 2, appPasswords: 1, events: 1 });
});

it('is not ok when a row breaks a foreign key', async () => {
  // Written with the checks off, as an older tool or a hand edit could have left it.
  sqliteDb(store).pragma('foreign_keys = OFF');
  await store.passwords.insert({ publicId: 'aaaa0002', accountId: 999, digest: Buffer.alloc(32, 2), label: 'l', scopes: ['imap'], createdAt: 1, expiresAt: null, dekSalt: null, dekBox: null });
  sqliteDb(store).pragma('foreign_keys = ON');
  expect(await store.maintenance.check()).toMatchObject({ ok: false, integrity: ['ok'], foreignKeyProblems: 1 });
});

it('backs up to a file that opens as a store with the same rows', async () => {
  await addAccount('alice');
  const target = path.join(dir, 'backup.db');
  await store.maintenance.backup(target);
  expect(existsSync(target)).toBe(true);
  const copy = openStore(target);
  try {
    expect((await copy.accounts.list()).map((a) => a.login)).toEqual(['alice']);
    expect(await copy.maintenance.check()).toMatchObject({ ok: true, accounts: 1 });
  } finally {
    await copy.close();
  }
});
