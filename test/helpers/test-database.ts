/**
 * Which engine the integration suite runs against: SQLite (the default, each postern a file in
 * its temp dir) or PostgreSQL (`POSTERN_TEST_DATABASE=postgres`: the global setup starts one real
 * server for the run, and every postern or workspace the tests make gets a fresh database on it).
 * scripts/test-all.sh runs the integration project once per engine — the matrix issue 14 asks for.
 *
 * Tests that look under the repositories (raw rows, a column a test ages) go through
 * openTestStore / testSql, which speak whichever engine the postern under test was given, so
 * they run on both; only what is about SQLite itself (locks, WAL, the file) stays SQLite-only.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { inject } from 'vitest';
import { resolveConfig } from '../../src/config/load.js';
import type { AsyncStore } from '../../src/store/api.js';
import { sqliteDb } from '../../src/store/index.js';
import { openConfiguredStore, type PostgresStore, type StoreRole } from '../../src/store/open.js';
import { findPostgresBin } from './postgres.js';

const run = promisify(execFile);

export type TestEngine = 'sqlite' | 'postgres';

export function testEngine(): TestEngine {
  const v = process.env.POSTERN_TEST_DATABASE ?? 'sqlite';
  if (v !== 'sqlite' && v !== 'postgres') throw new Error(`POSTERN_TEST_DATABASE must be sqlite or postgres, not ${v}`);
  return v;
}

/** The engine of this run; `describe.runIf(engine === 'sqlite')` marks what is about SQLite itself. */
export const engine: TestEngine = testEngine();

let made = 0;

/**
 * Where the run's server is. In a test worker the global setup provides it; the worker also puts it
 * in its environment, so a postern a test forks (test/net/support/postern-child.ts, loaded outside
 * vitest, where inject() has no runner to ask) inherits it and makes its database on the same server.
 */
const SERVER_ENV = 'POSTERN_TEST_POSTGRES_URL';
if (engine === 'postgres' && process.env[SERVER_ENV] === undefined) {
  let provided: string | null = null;
  try {
    provided = inject('postgresUrl');
  } catch {
    // not in a vitest worker, and no server inherited: serverUrl says so when one is needed
  }
  if (provided) process.env[SERVER_ENV] = provided;
}

function serverUrl(): string {
  const server = process.env[SERVER_ENV];
  if (!server) throw new Error('no PostgreSQL server for this run: set POSTERN_TEST_DATABASE=postgres before vitest starts (the global setup starts it)');
  return server;
}

/** A fresh, empty database on the run's PostgreSQL server; its URL. */
export async function freshPostgresDatabase(): Promise<string> {
  const server = serverUrl();
  // Unique across the workers of the run (each its own process) and across runs on one server.
  const name = `postern_t${process.pid}_${++made}_${Date.now().toString(36)}`;
  const admin = new pg.Client(server);
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(server);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * Drops a database made by freshPostgresDatabase (WITH FORCE: a postern child a test killed may
 * still hold a connection for a moment). Best effort: the global teardown removes the server and
 * everything on it anyway; dropping early keeps a long run's disk use flat.
 */
export async function dropPostgresDatabase(url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  if (!/^postern_t\w+$/.test(name)) throw new Error(`not a test database: ${name}`);
  const admin = new pg.Client(serverUrl());
  try {
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } catch {
    // the teardown's stop of the server is the backstop
  } finally {
    await admin.end().catch(() => {});
  }
}

/** The raw `database` config section for a new postern in `dir`: an SQLite file there, or a fresh PostgreSQL database. */
export async function testDatabaseConfig(sqliteFile: string): Promise<{ path: string } | { url: string }> {
  return engine === 'postgres' ? { url: await freshPostgresDatabase() } : { path: sqliteFile };
}

/** Undoes testDatabaseConfig: drops the PostgreSQL database (the SQLite file goes with its temp dir). */
export async function releaseTestDatabase(database: { path: string } | { url: string }): Promise<void> {
  if ('url' in database) await dropPostgresDatabase(database.url);
}

/** What openTestStore needs: a harness or a workspace (both know the raw `database` section they were given). */
export interface HasDatabase {
  database: { path: string } | { url: string };
  /** Where relative SQLite paths are resolved from. */
  dir: string;
}

/**
 * A store on the database of a harness or workspace, on its engine, opened as `role` opens it in
 * postern (default an admin command's; 'writer' is the proxy's write-queue connection). Close it.
 */
export async function openTestStore(on: HasDatabase, role: StoreRole = 'admin'): Promise<AsyncStore> {
  const config = resolveConfig({ database: on.database, keyFile: path.join(on.dir, 'unused.key') }, path.join(on.dir, 'postern.yaml'), {});
  return openConfiguredStore(config, role);
}

/**
 * Raw SQL against a store on either engine, for what no repository does (age a column, count
 * rows, tamper with a row as an attacker with database access would). Placeholders are `?`;
 * they become $1, $2 ... on PostgreSQL. Returns the rows (empty for a statement without any).
 */
export async function testSql<Row = Record<string, unknown>>(store: AsyncStore, sql: string, ...params: unknown[]): Promise<Row[]> {
  if (store.engine === 'postgres') {
    let n = 0;
    const result = await (store as PostgresStore).pool.query(sql.replace(/\?/g, () => `$${++n}`), params);
    return result.rows as Row[];
  }
  const statement = sqliteDb(store).prepare(sql);
  return (statement.reader ? statement.all(...params) : (statement.run(...params), [])) as Row[];
}

/** `SELECT count(*) AS n ...` as a number on both engines (PostgreSQL's count is a bigint, read as a string). */
export async function testCount(store: AsyncStore, sql: string, ...params: unknown[]): Promise<number> {
  const [row] = await testSql<{ n: number | string }>(store, sql, ...params);
  return Number(row?.n);
}

/**
 * Everything the database holds, as bytes, for the scans that no secret is stored in clear: the
 * SQLite file and its WAL as they are on disk; on PostgreSQL a plain pg_dump of the database (its
 * text as dumped, plus every bytea value decoded from the dump's hex, so a secret in a binary
 * column is found as it would be in the file). Take it before the postern stops (the database is
 * dropped then).
 */
export async function databaseBytes(on: { database: { path: string } | { url: string } }): Promise<Buffer[]> {
  if ('path' in on.database) {
    const file = on.database.path;
    return [file, `${file}-wal`].filter((f) => existsSync(f)).map((f) => readFileSync(f));
  }
  const { stdout } = await run(path.join(findPostgresBin(), 'pg_dump'), ['--no-owner', '--data-only', on.database.url], { maxBuffer: 256 * 1024 * 1024 });
  const blobs = [...stdout.matchAll(/\\x([0-9a-f]+)/g)].map((m) => Buffer.from(m[1]!, 'hex'));
  return [Buffer.from(stdout, 'utf8'), ...blobs];
}

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string | null;
  }
}
