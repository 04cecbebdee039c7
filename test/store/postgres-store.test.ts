/**
 * openPostgresStore on a real PostgreSQL (test/helpers/postgres.ts). Pins: instances opening a
 * fresh database at once all succeed and the schema is applied once (the migrations are not
 * idempotent — CREATE TABLE without IF NOT EXISTS — so a second application would fail one of
 * them); a database newer than the code is refused with SQLite's STORE_TOO_NEW and left as it
 * is; an unreachable server, a missing database and a server gone after open all become
 * STORE_UNAVAILABLE, whose message never holds the URL's password; the store recovers when the
 * server returns; a transaction is one client's (invisible outside until COMMIT, gone on
 * ROLLBACK); BIGINT parsing is the pool's own, pg's global parsers untouched; backup is refused
 * with a pointer to pg_dump; the final schema has SQLite's tables, columns (in order, with their
 * nullability), named indexes and triggers; two instances racing accept a TOTP step once and
 * lose no throttle failure.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { isPosternError } from '../../src/errors.js';
import { openStore, sqliteDb } from '../../src/store/index.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { openPostgresStore } from '../../src/store/postgres/index.js';
import { freePort } from '../helpers/free-port.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(() => server?.stop());

const withPassword = (url: string, password: string) => url.replace('postgres://postgres@', `postgres://postgres:${password}@`);

it('several instances opening a fresh database at once all succeed, and the schema is applied once', async () => {
  const url = await server.createDatabase();
  const stores = await Promise.all(Array.from({ length: 6 }, () => openPostgresStore(url, { max: 2 })));
  try {
    for (const s of stores) expect(await s.maintenance.schemaVersion()).toBe(MIGRATIONS.length);
    const { rows } = await stores[0]!.pool.query<{ n: number }>(
      `SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'accounts'`,
    );
    expect(rows[0]!.n).toBe(1);
    expect((await stores[0]!.pool.query('SELECT * FROM postern_schema')).rows).toEqual([{ one: true, version: MIGRATIONS.length }]);
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
});

it('refuses a database written by a newer postern, as SQLite does, and leaves it as it is', async () => {
  const url = await server.createDatabase();
  const first = await openPostgresStore(url);
  await first.pool.query('UPDATE postern_schema SET version = $1', [MIGRATIONS.length + 1]);
  await first.close();
  const refusal = await openPostgresStore(url).then(() => null, (err: unknown) => err);
  expect(isPosternError(refusal, 'STORE_TOO_NEW')).toBe(true);
  expect((refusal as Error).message).toBe(`the database has schema version ${MIGRATIONS.length + 1}, newer than this postern knows (${MIGRATIONS.length}); upgrade postern or restore a backup`);
  const raw = new pg.Client({ connectionString: url });
  await raw.connect();
  expect((await raw.query('SELECT version FROM postern_schema')).rows).toEqual([{ version: MIGRATIONS.length + 1 }]);
  await raw.end();
});

it('an unreachable server or a missing database is STORE_UNAVAILABLE, and the message never holds the password', async () => {
  const secret = 'pw-8d1f-never-printed';
  const closed = `postgres://postern:${secret}@127.0.0.1:${await freePort()}/postern`;
  for (const url of [closed, withPassword(`${server.url.replace(/\/postgres$/, '')}/no_such_database`, secret)]) {
    const err = await openPostgresStore(url, { connectTimeoutMs: 2000 }).then(() => null, (e: unknown) => e);
    expect(isPosternError(err, 'STORE_UNAVAILABLE')).toBe(true);
    expect((err as Error).message).toMatch(/^database 127\.0\.0\.1:\d+\/\w+ is unavailable: /);
    expect(JSON.stringify({ message: (err as Error).message, stack: (err as Error).stack })).not.toContain(secret);
  }
});

it('a server that goes away fails queries with STORE_UNAVAILABLE; the store recovers when it returns', async () => {
  const s = await openPostgresStore(await server.createDatabase(), { connectTimeoutMs: 2000 });
  try {
    expect(await s.ping()).toBe(true);
    await server.stopServer();
    expect(await s.ping()).toBe(false);
    const err = await s.accounts.list().then(() => null, (e: unknown) => e);
    expect(isPosternError(err, 'STORE_UNAVAILABLE')).toBe(true);
    const txErr = await s.transaction((tx) => tx.accounts.list()).then(() => null, (e: unknown) => e);
    expect(isPosternError(txErr, 'STORE_UNAVAILABLE')).toBe(true);
    await server.start();
    expect(await s.ping()).toBe(true);
    expect(await s.accounts.list()).toEqual([]);
  } finally {
    await server.start();
    await s.close();
  }
});

it('a transaction runs on one client: invisible outside until COMMIT, undone by a throw', async () => {
  const s = await openPostgresStore(await server.createDatabase());
  try {
    const account = { upstreamMode: 'master', upstreamUser: 'u', primaryHash: 'h', primarySalt: null, dekPrimary: null, now: 1 } as const;
    let seenOutside: unknown = 'unset';
    const id = await s.transaction(async (tx) => {
      const inserted = await tx.accounts.insert({ ...account, login: 'a' });
      seenOutside = await s.accounts.get(inserted);
      expect(await tx.accounts.get(inserted)).toMatchObject({ login: 'a' });
      return inserted;
    });
    expect(seenOutside).toBeUndefined();
    expect(await s.accounts.get(id)).toMatchObject({ login: 'a' });
    await expect(s.transaction(async (tx) => {
      await tx.accounts.insert({ ...account, login: 'b' });
      throw new Error('changed my mind');
    })).rejects.toThrow('changed my mind');
    expect(await s.accounts.findByLogin('b')).toBeUndefined();
    expect(s.pool.idleCount + s.pool.waitingCount).toBeLessThanOrEqual(s.pool.totalCount);
    expect(s.pool.totalCount - s.pool.idleCount).toBe(0); // every client went back
  } finally {
    await s.close();
  }
});

it('parses BIGINT as numbers on its own pool only; backup is refused with a pointer to pg_dump; check counts rows', async () => {
  const s = await openPostgresStore(await server.createDatabase());
  try {
    expect((await s.pool.query<{ n: unknown }>('SELECT 9007199254740991::bigint AS n')).rows[0]!.n).toBe(Number.MAX_SAFE_INTEGER);
    await expect(s.pool.query('SELECT 9007199254740993::bigint AS n')).rejects.toThrow(/2\^53/);
    expect(pg.types.getTypeParser(20)('5')).toBe('5');
    await expect(s.maintenance.backup('/tmp/x')).rejects.toThrow(/pg_dump/);
    await s.accounts.insert({ login: 'a', upstreamMode: 'master', upstreamUser: 'u', primaryHash: 'h', primarySalt: null, dekPrimary: null, now: 1 });
    expect(await s.maintenance.check()).toMatchObject({ ok: true, schemaVersion: MIGRATIONS.length, latestSchemaVersion: MIGRATIONS.length, accounts: 1, appPasswords: 0, events: 0 });
  } finally {
    await s.close();
  }
});

it('reaches the same final schema as SQLite: tables, columns and their nullability, indexes, change-log triggers', async () => {
  const dir = await makeTempDir('postern-schema-');
  const sqlite = openStore(`${dir}/p.db`);
  const s = await openPostgresStore(await server.createDatabase());
  try {
    const sqliteTables = sqliteDb(sqlite).prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`).pluck().all() as string[];
    const pgTables = (await s.pool.query<{ name: string }>(
      `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'postern_schema' ORDER BY table_name`,
    )).rows.map((r) => r.name);
    expect(pgTables).toEqual(sqliteTables);
    for (const table of sqliteTables) {
      const lite = (sqliteDb(sqlite).prepare(`SELECT name, "notnull" AS nn, pk FROM pragma_table_info('${table}') ORDER BY cid`).all() as Array<{ name: string; nn: number; pk: number }>)
        .map((c) => `${c.name}${c.nn || c.pk ? ' NOT NULL' : ''}`);
      const pgCols = (await s.pool.query<{ c: string }>(
        `SELECT column_name || CASE WHEN is_nullable = 'NO' THEN ' NOT NULL' ELSE '' END AS c FROM information_schema.columns
          WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`, [table],
      )).rows.map((r) => r.c);
      expect(pgCols, table).toEqual(lite);
    }
    // Named indexes (SQLite's automatic ones back UNIQUE and PRIMARY KEY, as PostgreSQL's constraint indexes do).
    const liteIndexes = sqliteDb(sqlite).prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name`).pluck().all();
    const pgIndexes = (await s.pool.query<{ name: string }>(
      `SELECT i.indexname AS name FROM pg_indexes i WHERE i.schemaname = 'public'
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname) ORDER BY i.indexname`,
    )).rows.map((r) => r.name);
    expect(pgIndexes).toEqual(liteIndexes);
    const liteTriggers = sqliteDb(sqlite).prepare(`SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name`).pluck().all();
    const pgTriggers = (await s.pool.query<{ name: string }>(
      `SELECT tgname AS name FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname`,
    )).rows.map((r) => r.name);
    // PostgreSQL's one extra: the change feed's NOTIFY (SQLite processes poll the change log instead).
    expect(pgTriggers).toEqual([...liteTriggers, 'password_changes_notify'].sort());
  } finally {
    await sqlite.close();
    await s.close();
    await removeTempDir(dir);
  }
});

it('two instances racing: each TOTP step is accepted by one only, and concurrent failures all count', async () => {
  const url = await server.createDatabase();
  const [a, b] = await Promise.all([openPostgresStore(url), openPostgresStore(url)]);
  try {
    const account = await a.accounts.insert({ login: 'a', upstreamMode: 'master', upstreamUser: 'u', primaryHash: 'h', primarySalt: null, dekPrimary: null, now: 1 });
    await a.secondFactors.enrol(account, Buffer.from('k'), 0, [], 1);
    for (let step = 1; step <= 20; step++) {
      const won = await Promise.all([a.secondFactors.acceptStep(account, step), b.secondFactors.acceptStep(account, step)]);
      expect(won.filter(Boolean), `step ${step}`).toHaveLength(1);
    }
    const keys = ['a:192.0.2.1', 'l:a', 'p:192.0.2.1|a'];
    await Promise.all(Array.from({ length: 60 }, (_, i) => (i % 2 ? a : b).throttle.add(keys, 0, i)));
    const read = await b.throttle.read(['a:192.0.2.1', 'l:a', 'p:192.0.2.1|a', ''], 0, 'a:192.0.2.1', 0);
    for (const key of keys) expect(read.counts.get(key)?.failures, key).toBe(60);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});
