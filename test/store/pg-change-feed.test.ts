/**
 * The PostgreSQL change feed (src/store/postgres/change-feed.ts) against a real PostgreSQL, each
 * test on a fresh database holding the change log's shape and the notify trigger. Pins:
 * - a committed change-log row reaches onChange within a second, with its password id; a burst
 *   committed together is a few callbacks (one per socket read), every id exactly once; a
 *   rolled-back row is never notified;
 * - the server restarted (fast shutdown) or killed with SIGKILL and started again: the feed
 *   reconnects by itself, fires onResync after the reconnect (notifications sent meanwhile are
 *   lost) and later commits are notified again;
 * - an outage is one `store.change_feed_lost` line and one `store.change_feed_restored` line,
 *   however many attempts it took, and no line carries the URL's password;
 * - close() during an outage stops the reconnecting: no connection appears once the server is back;
 * - no unhandled 'error' at any point (vitest fails the file on one);
 * - with the revocation watcher (connectChangeFeed) and its timer slowed to a minute, so that
 *   only the feed can be what ends a session: a revoke committed by another connection ends the
 *   session within a second; one committed while the feed was disconnected ends it at the
 *   reconnect's resync; after a server restart a revoke still ends a session within a second.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { connectChangeFeed } from '../../src/auth/connect-change-feed.js';
import { RevocationWatcher, type RevocationSource } from '../../src/auth/revocation-watcher.js';
import type { PasswordState } from '../../src/store/app-passwords.js';
import { PASSWORD_CHANGES_NOTIFY_SQL, PgChangeFeed } from '../../src/store/postgres/change-feed.js';
import { assertNoSecrets, createLogSink, type LogSink } from '../helpers/log-sink.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';

const URL_PASSWORD = 'feed-url-Secret-7f3a';

let server: PostgresServer;
let url: string;
let sink: LogSink;
let feed: PgChangeFeed | undefined;
let writer: pg.Client | undefined;

beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server?.stop();
});

beforeEach(async () => {
  const plain = await server.createDatabase();
  const setup = new pg.Client({ connectionString: plain });
  await setup.connect();
  await setup.query('CREATE TABLE password_changes (revision BIGSERIAL PRIMARY KEY, password_id BIGINT NOT NULL)');
  await setup.query(PASSWORD_CHANGES_NOTIFY_SQL);
  // Just enough of app_passwords for the watcher's state reads.
  await setup.query('CREATE TABLE passwords (id BIGINT PRIMARY KEY, revoked_at BIGINT)');
  await setup.query('INSERT INTO passwords (id) SELECT g FROM generate_series(1, 100) g');
  await setup.end();
  // Trust authentication ignores it, but the feed holds it like a real deployment's URL.
  const withPassword = new URL(plain);
  withPassword.password = URL_PASSWORD;
  url = withPassword.toString();
  sink = createLogSink();
});
afterEach(async () => {
  await feed?.close();
  feed = undefined;
  await writer?.end().catch(() => {});
  writer = undefined;
  assertNoSecrets(sink.lines, [URL_PASSWORD], 'the change feed logs');
});

interface Recorded {
  batches: Array<number[]>;
  resyncs: number;
  losses: number;
}

function openFeed(retry = { minRetryMs: 50, maxRetryMs: 400 }): Recorded {
  const seen: Recorded = { batches: [], resyncs: 0, losses: 0 };
  feed = new PgChangeFeed({ url, log: sink.logger, ...retry });
  feed.onChange((ids) => seen.batches.push([...ids].sort((a, b) => a - b)));
  feed.onResync(() => seen.resyncs++);
  feed.onLost(() => seen.losses++);
  feed.start();
  return seen;
}

async function write(sql: string): Promise<void> {
  if (!writer) {
    writer = new pg.Client({ connectionString: url });
    writer.on('error', () => {});
    await writer.connect();
  }
  await writer.query(sql);
}

/** A fresh writer after the server went away (the old one's connection is gone). */
async function reconnectWriter(): Promise<void> {
  await writer?.end().catch(() => {});
  writer = undefined;
}

const allIds = (r: Recorded) => r.batches.flat();

async function listening(r: Recorded, resyncs: number): Promise<void> {
  await expect.poll(() => r.resyncs, { timeout: 10_000, interval: 20 }).toBe(resyncs);
}

async function expectNotified(r: Recorded, id: number): Promise<number> {
  const committedAt = Date.now();
  await expect.poll(() => allIds(r).includes(id), { timeout: 1500, interval: 5 }).toBe(true);
  return Date.now() - committedAt;
}

describe('notifications', () => {
  it('a committed change reaches onChange within a second, with its password id', async () => {
    const seen = openFeed();
    await listening(seen, 1);
    await write('INSERT INTO password_changes (password_id) VALUES (42)');
    expect(await expectNotified(seen, 42)).toBeLessThan(1000);
    expect(seen.batches).toEqual([[42]]);
  });

  it('a burst committed together (a revoke-all) is a few callbacks with every id once, not one per id', async () => {
    const seen = openFeed();
    await listening(seen, 1);
    await write('INSERT INTO password_changes (password_id) SELECT g FROM generate_series(1, 500) g');
    const every = Array.from({ length: 500 }, (_, i) => i + 1);
    await expect.poll(() => allIds(seen).sort((a, b) => a - b), { timeout: 1500, interval: 5 }).toEqual(every);
    // 500 notifications are ~19 KiB: PostgreSQL sends them in 8 KiB writes, so one read when the
    // machine is quiet and a few when it is loaded (CI once saw two). One per id would be 500.
    expect(seen.batches.length).toBeLessThanOrEqual(10);
  });

  it('a rolled-back change is never notified; the commit after it is', async () => {
    const seen = openFeed();
    await listening(seen, 1);
    await write('BEGIN');
    await write('INSERT INTO password_changes (password_id) VALUES (7)');
    await write('ROLLBACK');
    await write('INSERT INTO password_changes (password_id) VALUES (8)');
    // Notifications arrive in commit order: had the rollback been notified, 7 would be here first.
    await expectNotified(seen, 8);
    expect(allIds(seen)).toEqual([8]);
  });

  it('a change is notified at COMMIT, not at INSERT', async () => {
    const seen = openFeed();
    await listening(seen, 1);
    await write('BEGIN');
    await write('INSERT INTO password_changes (password_id) VALUES (9)');
    // A round trip on the feed's own server proves it had the chance to deliver.
    await write('SELECT pg_sleep(0.2)');
    expect(allIds(seen)).toEqual([]);
    await write('COMMIT');
    await expectNotified(seen, 9);
  });
});

describe('the database going away', () => {
  it.each([
    ['restarted (fast shutdown)', () => server.restart()],
    ['killed with SIGKILL, then started', async () => {
      await server.kill();
      // Long enough for several failed attempts, which must still make one lost line.
      await new Promise((r) => setTimeout(r, 600));
      await server.start();
    }],
  ])('%s: the feed reconnects, fires onResync and is notified again; one line each way', async (_name, outage) => {
    const seen = openFeed();
    await listening(seen, 1);
    await outage();
    await listening(seen, 2);
    expect(seen.losses).toBe(1);
    await reconnectWriter();
    await write('INSERT INTO password_changes (password_id) VALUES (11)');
    expect(await expectNotified(seen, 11)).toBeLessThan(1000);
    expect(sink.events('store.change_feed_lost')).toHaveLength(1);
    const restored = sink.events('store.change_feed_restored');
    expect(restored).toHaveLength(1);
    expect(restored[0]!.downMs).toEqual(expect.any(Number));
  });

  it('close() during an outage stops reconnecting: no connection once the server is back', async () => {
    const seen = openFeed();
    await listening(seen, 1);
    await server.stopServer();
    try {
      await expect.poll(() => seen.losses, { timeout: 5000 }).toBe(1);
      await feed!.close();
    } finally {
      await server.start();
    }
    // Longer than the longest retry delay (400 ms here): a retry left armed would have connected.
    await new Promise((r) => setTimeout(r, 1000));
    await reconnectWriter();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const { rows } = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'postern change feed'`);
    await admin.end();
    expect(Number(rows[0]!.n)).toBe(0);
    expect(seen.resyncs).toBe(1);
    expect(sink.events('store.change_feed_restored')).toHaveLength(0);
  });

  it('a database unreachable from the start is one lost line; the feed listens once it is up', async () => {
    await server.stopServer();
    let seen: Recorded;
    try {
      seen = openFeed();
      await expect.poll(() => seen.losses, { timeout: 5000 }).toBe(1);
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      await server.start();
    }
    await listening(seen, 1);
    expect(sink.events('store.change_feed_lost')).toHaveLength(1);
    expect(sink.events('store.change_feed_lost')[0]!.code).toBe('ECONNREFUSED');
    await write('INSERT INTO password_changes (password_id) VALUES (5)');
    await expectNotified(seen, 5);
  });
});

describe('with the revocation watcher', () => {
  let pool: pg.Pool;
  let watcher: RevocationWatcher;
  const errors: unknown[] = [];

  beforeEach(() => {
    pool = new pg.Pool({ connectionString: url, max: 2 });
    pool.on('error', () => {});
    const source: RevocationSource = {
      revision: async () => Number((await pool.query<{ r: string }>('SELECT coalesce(max(revision), 0) AS r FROM password_changes')).rows[0]!.r),
      changedSince: async (revision) => (await pool.query<{ revision: string; id: string }>(
        'SELECT revision, password_id AS id FROM password_changes WHERE revision > $1 ORDER BY revision', [revision],
      )).rows.map((r) => ({ revision: Number(r.revision), passwordId: Number(r.id) })),
      states: async (ids) => (await pool.query<{ id: string; revoked_at: string | null }>(
        'SELECT id, revoked_at FROM passwords WHERE id = ANY($1)', [ids],
      )).rows.map((r): PasswordState => ({ id: Number(r.id), revokedAt: r.revoked_at === null ? null : Number(r.revoked_at), revokedReason: 'admin', expiresAt: null })),
    };
    // A minute, while listening and while not: only the feed can end a session within the test.
    watcher = new RevocationWatcher(source, Date.now, 60_000, (err) => errors.push(err));
  });
  afterEach(async () => {
    watcher.stop();
    await pool.end();
  });

  async function revoke(id: number): Promise<void> {
    await write(`BEGIN; UPDATE passwords SET revoked_at = ${Date.now()} WHERE id = ${id}; INSERT INTO password_changes (password_id) VALUES (${id}); COMMIT`);
  }

  function watchSessions(ids: readonly number[]): Map<number, number> {
    const endedAt = new Map<number, number>();
    for (const id of ids) watcher.watch(id, () => endedAt.set(id, Date.now()));
    return endedAt;
  }

  it('a revoke committed by another connection ends the session within a second', async () => {
    const seen = openFeed();
    connectChangeFeed(watcher, feed!, { safetyNetPollMs: 60_000, pollMs: 60_000 });
    const ended = watchSessions([1, 2, 3]);
    await listening(seen, 1);
    const committedAt = Date.now();
    await revoke(2);
    await expect.poll(() => ended.has(2), { timeout: 1500, interval: 5 }).toBe(true);
    expect(ended.get(2)! - committedAt).toBeLessThan(1000);
    expect([...ended.keys()]).toEqual([2]);
  });

  it('a revoke committed while the feed was disconnected ends the session at the reconnect', async () => {
    // Reconnecting only after a second, so the revoke is surely committed while nobody listens.
    const seen = openFeed({ minRetryMs: 1_000, maxRetryMs: 1_000 });
    connectChangeFeed(watcher, feed!, { safetyNetPollMs: 60_000, pollMs: 60_000 });
    const ended = watchSessions([4, 5]);
    await listening(seen, 1);
    await write(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'postern change feed'`);
    await revoke(5);
    await expect.poll(() => seen.losses, { timeout: 1000 }).toBe(1);
    expect(ended.size).toBe(0);
    await listening(seen, 2);
    await expect.poll(() => ended.has(5), { timeout: 1000, interval: 5 }).toBe(true);
    expect(allIds(seen)).not.toContain(5);
    expect([...ended.keys()]).toEqual([5]);
  });

  it('after a server restart, a revoke still ends a session within a second', async () => {
    const seen = openFeed();
    connectChangeFeed(watcher, feed!, { safetyNetPollMs: 60_000, pollMs: 60_000 });
    const ended = watchSessions([6, 7]);
    await listening(seen, 1);
    await server.restart();
    await listening(seen, 2);
    await reconnectWriter();
    const committedAt = Date.now();
    await revoke(7);
    await expect.poll(() => ended.has(7), { timeout: 1500, interval: 5 }).toBe(true);
    expect(ended.get(7)! - committedAt).toBeLessThan(1000);
    expect([...ended.keys()]).toEqual([7]);
  });
});
