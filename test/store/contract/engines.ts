/**
 * Runs one scenario set against both engines: SQLite (the real async store, src/store/index.ts) and
 * PostgreSQL (src/store/postgres/, on a real server started once per test file). Each test gets a
 * fresh, migrated database of its engine. `exec` runs raw SQL both engines parse alike, for the
 * changes no repository makes (an expiry moved by hand, a row aged).
 */
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe } from 'vitest';
import type { StoreEngine, StoreRepos } from '../../../src/store/api.js';
import { openStore, sqliteDb, type Store } from '../../../src/store/index.js';
import { openPostgresStore, type PostgresStore } from '../../../src/store/postgres/index.js';
import { startPostgres, type PostgresServer } from '../../helpers/postgres.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

export interface EngineStore extends StoreRepos {
  engine: StoreEngine;
  transaction<T>(fn: (tx: StoreRepos) => Promise<T>): Promise<T>;
  exec(sql: string): Promise<void>;
  /** Rows of a table in primary-key order, as plain values (for comparing the engines). */
  rows(sql: string): Promise<Array<Record<string, unknown>>>;
}

function fromSqlite(store: Store): EngineStore {
  const db = sqliteDb(store);
  return {
    ...store,
    // async: a statement SQLite refuses rejects, as PostgreSQL's does, instead of throwing here.
    exec: async (sql) => void db.exec(sql),
    rows: async (sql) => db.prepare(sql).all() as Array<Record<string, unknown>>,
  };
}

function fromPostgres(store: PostgresStore): EngineStore {
  return {
    ...store,
    exec: async (sql) => void (await store.pool.query(sql)),
    rows: async (sql) => (await store.pool.query<Record<string, unknown>>(sql)).rows,
  };
}

/**
 * describe() once per engine; `current()` is the fresh store of the running test. The
 * PostgreSQL server is started once for the file (one per file), a database created per test.
 */
export function describeEngines(name: string, body: (current: () => EngineStore) => void): void {
  let server: PostgresServer | undefined;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    await server?.stop();
  });
  for (const engine of ['sqlite', 'postgres'] as const) {
    describe(`${name} [${engine}]`, () => {
      let store: EngineStore | undefined;
      let close: () => Promise<void> = async () => {};
      beforeEach(async () => {
        if (engine === 'sqlite') {
          const dir = await makeTempDir('postern-contract-');
          const sqlite = openStore(path.join(dir, 'p.db'));
          store = fromSqlite(sqlite);
          close = async () => {
            await sqlite.close();
            await removeTempDir(dir);
          };
        } else {
          const pg = await openPostgresStore(await server!.createDatabase());
          store = fromPostgres(pg);
          close = () => pg.close();
        }
      });
      afterEach(async () => {
        await close();
        store = undefined;
      });
      body(() => store!);
    });
  }
}

export async function anAccount(s: StoreRepos, login = 'alice', now = 1000): Promise<number> {
  return s.accounts.insert({ login, upstreamMode: 'master', upstreamUser: login, primaryHash: 'h', primarySalt: null, dekPrimary: Buffer.from('dek'), now });
}

export async function aPassword(s: StoreRepos, accountId: number, n: number, over: { expiresAt?: number | null; createdAt?: number } = {}): Promise<number> {
  return s.passwords.insert({
    publicId: `pub${n}`, accountId, digest: Buffer.alloc(32, n), label: `label ${n}`, scopes: ['imap', 'smtp'],
    createdAt: over.createdAt ?? 1000 + n, expiresAt: over.expiresAt ?? null, dekSalt: Buffer.from(`salt${n}`), dekBox: Buffer.from(`box${n}`),
  });
}
