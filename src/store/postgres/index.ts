/**
 * The PostgreSQL store: a pg pool and repositories over it, behind the same AsyncStore interface
 * as SQLite, so `openPostgresStore(url)` can replace `openStore(file)` anywhere. Migrations are
 * applied at open under an advisory lock (migrate.ts). Outside a transaction each statement runs
 * on whichever pooled connection is free; transaction(fn) holds one client from BEGIN to COMMIT
 * (or ROLLBACK when fn throws) and hands fn repositories bound to it.
 */
import type pg from 'pg';
import type { AsyncStore, StoreRepos } from '../api.js';
import { createPool, guarded, storeError, type PoolOptions } from './connection.js';
import { PgAccountRepo } from './accounts.js';
import { PgAppPasswordRepo } from './app-passwords.js';
import { PgEventRepo } from './events.js';
import { PgMaintenance } from './maintenance.js';
import { migratePostgres } from './migrate.js';
import { PgPasskeyRepo } from './passkeys.js';
import { PgPortalSessionRepo } from './portal-sessions.js';
import { PgProfileDownloadRepo } from './profile-downloads.js';
import type { Queryable } from './queryable.js';
import { PgSecondFactorRepo } from './second-factors.js';
import { PgThrottleCountRepo } from './throttle-counts.js';

export type PostgresStoreOptions = PoolOptions;

export interface PostgresStore extends AsyncStore {
  readonly engine: 'postgres';
  /** The pool itself, for what has no repository (the change feed's LISTEN connection, migrate-to). */
  readonly pool: pg.Pool;
}

export function reposOver(db: Queryable): StoreRepos {
  return {
    accounts: new PgAccountRepo(db),
    passwords: new PgAppPasswordRepo(db),
    events: new PgEventRepo(db),
    throttle: new PgThrottleCountRepo(db),
    secondFactors: new PgSecondFactorRepo(db),
    portalSessions: new PgPortalSessionRepo(db),
    passkeys: new PgPasskeyRepo(db),
    profileDownloads: new PgProfileDownloadRepo(db),
  };
}

export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  const pool = createPool(url, options);
  try {
    await migratePostgres(pool);
  } catch (err) {
    await pool.end().catch(() => {});
    throw storeError(err, url);
  }
  const db = guarded(pool, url);
  let closed: Promise<void> | undefined;
  return {
    engine: 'postgres',
    pool,
    ...reposOver(db),
    maintenance: new PgMaintenance(db),
    async transaction<T>(fn: (tx: StoreRepos) => Promise<T>): Promise<T> {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw storeError(err, url);
      }
      // Checked out, a client's connection error is emitted on it, not the pool: without a
      // listener it would end the process; the next statement of fn reports it instead.
      const onError = () => {};
      client.on('error', onError);
      const tx = guarded(client, url);
      // A client whose ROLLBACK failed (the connection broke) may be mid-transaction: it is
      // destroyed, never handed to the next caller.
      let broken: Error | undefined;
      try {
        await tx.query('BEGIN');
        const result = await fn(reposOver(tx));
        await tx.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch((e: unknown) => (broken = e instanceof Error ? e : new Error(String(e))));
        throw err;
      } finally {
        client.off('error', onError);
        client.release(broken);
      }
    },
    async ping(): Promise<boolean> {
      try {
        await pool.query('SELECT 1');
        return true;
      } catch {
        return false;
      }
    },
    close(): Promise<void> {
      closed ??= pool.end();
      return closed;
    },
  };
}
