/**
 * History retention (`history.keepDays`). Pins:
 * - schema 2 adds the indexes retention and the expiry sweep search by, and a schema-1 database
 *   is upgraded in place with its history intact; a sweep with nothing due takes no write lock;
 * - a pass deletes exactly the events older than keepDays (in batches, all of them), keeps the
 *   rest and logs one `history.pruned` line; keepDays 0 keeps everything;
 * - the pass repeats on its timer, and the running proxy prunes the database it opens;
 * - the running proxy also records expired passwords (src/store/expiry.ts) without an admin command;
 * - on the proxy's writer connection, a lock held by another process makes a housekeeping pass
 *   give up at once (not after the 5 s busy timeout, on the event loop) and the next one do the work.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { schemaVersion } from '../../src/store/database.js';
import { expireDuePasswords } from '../../src/store/expiry.js';
import { startHistoryRetention } from '../../src/store/history-retention.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { openStore, type Store, sqliteDb } from '../../src/store/index.js';
import { openWriterStore } from '../../src/store/write-queue.js';
import { createLogSink } from '../helpers/log-sink.js';
import { startPostern } from '../helpers/postern.js';
import { testSql } from '../helpers/test-database.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 1);

let dir: string;
let store: Store;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'postern-history-'));
  store = openStore(path.join(dir, 'p.db'));
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function addEvents(count: number, at: number): Promise<void> {
  await store.transaction(async () => {
    for (let i = 0; i < count; i++) await store.events.append({ type: 'login.failed', at, accountId: 1, login: 'alice', protocol: 'imap', address: '192.0.2.7', detail: { reason: 'wrong_password' } });
  });
}

const countEvents = (s: Store = store) => (sqliteDb(s).prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n;

it('upgrades a schema-1 database in place, keeping its history, and adds the time index', async () => {
  const file = path.join(dir, 'old.db');
  const old = new Database(file);
  old.exec(MIGRATIONS[0]!);
  old.pragma('user_version = 1');
  old.prepare("INSERT INTO events (at, type, login) VALUES (?, 'account.created', 'alice')").run(NOW);
  old.close();

  const upgraded = openStore(file);
  try {
    expect(schemaVersion(sqliteDb(upgraded))).toBe(MIGRATIONS.length);
    expect(countEvents(upgraded)).toBe(1);
    const plan = sqliteDb(upgraded).prepare('EXPLAIN QUERY PLAN SELECT id FROM events WHERE at < ? ORDER BY at LIMIT 10').all(NOW) as Array<{ detail: string }>;
    expect(plan.map((p) => p.detail).join('\n')).toMatch(/USING (COVERING )?INDEX events_by_time/);
    const due = sqliteDb(upgraded).prepare(`EXPLAIN QUERY PLAN SELECT 1 FROM app_passwords
      WHERE revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ? AND account_id = coalesce(?, account_id) LIMIT 1`).all(NOW, null) as Array<{ detail: string }>;
    expect(due.map((p) => p.detail).join('\n')).toMatch(/USING (COVERING )?INDEX app_passwords_expiring/);
  } finally {
    await upgraded.close();
  }
});

it('deletes every event older than keepDays, in batches, keeps the rest and logs it once', async () => {
  await addEvents(12_001, NOW - 31 * DAY); // more than two batches
  await addEvents(1, NOW - 30 * DAY); // exactly at the limit: kept
  await addEvents(3, NOW - DAY);
  const sink = createLogSink();
  const retention = startHistoryRetention(store, { keepDays: 30, everyMs: 3_600_000, clock: () => NOW }, sink.logger);
  try {
    await sink.waitForEvent('history.pruned');
    expect(await retention.pruneNow()).toBe(0);
  } finally {
    retention.stop();
  }
  expect(countEvents()).toBe(4);
  expect(sink.events('history.pruned')).toEqual([expect.objectContaining({ deleted: 12_001, keepDays: 30 })]);
  const oldest = sqliteDb(store).prepare('SELECT min(at) AS at FROM events').get() as { at: number };
  expect(oldest.at).toBe(NOW - 30 * DAY);
});

it('keepDays 0 keeps everything', async () => {
  await addEvents(5, NOW - 3650 * DAY);
  const sink = createLogSink();
  const retention = startHistoryRetention(store, { keepDays: 0, clock: () => NOW }, sink.logger);
  try {
    expect(await retention.pruneNow()).toBe(0);
  } finally {
    retention.stop();
  }
  expect(countEvents()).toBe(5);
  expect(sink.events('history.pruned')).toEqual([]);
});

it('prunes again on its timer', async () => {
  const sink = createLogSink();
  const retention = startHistoryRetention(store, { keepDays: 1, everyMs: 50, clock: () => NOW }, sink.logger);
  try {
    await new Promise((resolve) => setTimeout(resolve, 20)); // the start-up pass has found nothing
    await addEvents(2, NOW - 2 * DAY);
    await addEvents(1, NOW);
    const deadline = Date.now() + 5_000;
    while (countEvents() !== 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
    expect(countEvents()).toBe(1);
  } finally {
    retention.stop();
  }
});

it('the running proxy prunes the history of the database it opens, by the configured keepDays', async () => {
  const now = Date.now();
  await addEvents(4, now - 8 * DAY);
  await addEvents(2, now - 6 * DAY);
  await store.close();
  const postern = await startPostern({ config: { database: { path: path.join(dir, 'p.db') }, history: { keepDays: 7 } } });
  try {
    const pruned = await postern.logs.waitForEvent('history.pruned');
    expect(pruned).toMatchObject({ deleted: 4, keepDays: 7 });
    expect(countEvents(postern.app.store)).toBe(2);
  } finally {
    await postern.stop();
    store = openStore(path.join(dir, 'p.db'));
  }
});

it('an expiry sweep with nothing due takes no write lock', async () => {
  sqliteDb(store).pragma('busy_timeout = 50');
  const other = new Database(path.join(dir, 'p.db'));
  other.exec('BEGIN IMMEDIATE'); // an admin command in the middle of a write
  try {
    expect(await expireDuePasswords(store, NOW)).toBe(0); // would throw SQLITE_BUSY if it wrote
  } finally {
    other.exec('ROLLBACK');
    other.close();
  }
});

it('on the writer connection, a held lock makes housekeeping give up at once; the next pass does the work', async () => {
  await addEvents(3, NOW - 10 * DAY);
  sqliteDb(store).exec(`INSERT INTO accounts (id, login, upstream_mode, upstream_user, primary_hash, created_at, primary_changed_at) VALUES (1, 'alice', 'password', 'alice', 'x', 0, 0)`);
  sqliteDb(store).exec(`INSERT INTO app_passwords (public_id, account_id, digest, label, scopes, created_at, expires_at) VALUES ('abcd1234', 1, x'00', 'brief', 'imap', 0, ${NOW - 1})`);
  const writer = openWriterStore(path.join(dir, 'p.db'));
  const sink = createLogSink();
  const retention = startHistoryRetention(writer, { keepDays: 7, everyMs: 3_600_000, clock: () => NOW }, sink.logger);
  await sink.waitForEvent('history.pruned'); // the start-up pass, then a pass under the lock:
  await addEvents(2, NOW - 10 * DAY);
  const other = new Database(path.join(dir, 'p.db'));
  other.exec('BEGIN IMMEDIATE');
  try {
    const started = performance.now();
    await expect(expireDuePasswords(writer, NOW)).rejects.toThrow(expect.objectContaining({ code: 'STORE_UNAVAILABLE', cause: expect.objectContaining({ code: 'SQLITE_BUSY' }) }));
    await expect(retention.pruneNow()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', cause: expect.objectContaining({ code: 'SQLITE_BUSY' }) });
    // Both gave up without sitting out the busy timeout admin commands use (5 s).
    expect(performance.now() - started).toBeLessThan(1_000);
  } finally {
    other.exec('ROLLBACK');
    other.close();
  }
  try {
    expect(await expireDuePasswords(writer, NOW)).toBe(1);
    expect(await retention.pruneNow()).toBe(2);
  } finally {
    retention.stop();
    await writer.close();
  }
});

// On the run's engine (the PostgreSQL pass too): the sweep is the proxy's, not SQLite's.
it('the running proxy also sweeps expired passwords into the history on its own', async () => {
  const postern = await startPostern();
  try {
    await postern.addUser('alice', 'alice primary passphrase');
    const { publicId } = await postern.newPassword('alice', 'alice primary passphrase', { label: 'brief', expires: new Date(Date.now() + 300).toISOString() });
    await postern.logs.waitForEvent('password.expired', 15_000);
    const rows = await testSql(postern.app.store, 'SELECT revoked_reason AS reason, dek_box AS box FROM app_passwords WHERE public_id = ?', publicId);
    expect(rows).toEqual([{ reason: 'expiry', box: null }]);
  } finally {
    await postern.stop();
  }
}, 30_000);
