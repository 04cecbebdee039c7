/**
 * Applies the PostgreSQL side of the migrations (src/store/migrations.ts) at open, as SQLite's
 * runner does: every pending entry and the new version in one transaction, so a failure leaves
 * the schema where it was (PostgreSQL's DDL is transactional). Several instances starting
 * together on a fresh database would each see version 0 and race to create the same tables;
 * pg_advisory_xact_lock makes them take turns, and the ones after the first find nothing to do.
 * The lock is released by COMMIT or ROLLBACK, so a crashed instance cannot leave it held.
 */
import type pg from 'pg';
import { PosternError } from '../../errors.js';
import { POSTGRES_MIGRATIONS } from '../migrations.js';

/** Fixed key of the migration lock ("pstr" + 14, issue 14): any value works if every instance uses the same. */
export const MIGRATION_LOCK_KEY = 0x70737472_0e;

/** The version lives in a one-row table (PostgreSQL has no user_version); `one` pins the row count to one. */
const VERSION_TABLE = `CREATE TABLE IF NOT EXISTS postern_schema (
  one     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
  version INTEGER NOT NULL
)`;

export async function schemaVersionOf(db: pg.Pool | pg.PoolClient): Promise<number> {
  const exists = await db.query<{ t: string | null }>(`SELECT to_regclass('postern_schema')::text AS t`);
  if (!exists.rows[0]?.t) return 0;
  const { rows } = await db.query<{ version: number }>('SELECT version FROM postern_schema');
  return rows[0]?.version ?? 0;
}

export async function migratePostgres(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(VERSION_TABLE);
    await client.query('INSERT INTO postern_schema (one, version) VALUES (TRUE, 0) ON CONFLICT (one) DO NOTHING');
    const found = await schemaVersionOf(client);
    const latest = POSTGRES_MIGRATIONS.length;
    if (found > latest) {
      // Written by a newer postern: its tables may mean things this code does not know.
      throw new PosternError('STORE_TOO_NEW', `the database has schema version ${found}, newer than this postern knows (${latest}); upgrade postern or restore a backup`);
    }
    for (let v = found; v < latest; v++) {
      try {
        await client.query(POSTGRES_MIGRATIONS[v]!);
      } catch (err) {
        throw new PosternError('STORE_MIGRATION_FAILED', `database migration ${v + 1} failed: ${(err as Error).message}`, { cause: err });
      }
    }
    if (found < latest) await client.query('UPDATE postern_schema SET version = $1', [latest]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
