/**
 * `postern db check` on PostgreSQL: the schema version and row counts. PostgreSQL checks its own
 * pages and enforces every foreign key at all times, so there is no integrity_check to run; a
 * backup is pg_dump's job (consistent, while the instances keep writing), so backup() refuses.
 */
import { PosternError } from '../../errors.js';
import type { StoreMaintenance } from '../api.js';
import type { DatabaseCheck } from '../maintenance.js';
import { POSTGRES_MIGRATIONS } from '../migrations.js';
import type { Queryable } from './queryable.js';

export class PgMaintenance implements StoreMaintenance {
  constructor(private readonly db: Queryable) {}

  async schemaVersion(): Promise<number> {
    const { rows } = await this.db.query<{ version: number }>('SELECT version FROM postern_schema');
    return rows[0]?.version ?? 0;
  }

  async check(): Promise<DatabaseCheck> {
    const { rows } = await this.db.query<{ accounts: number; appPasswords: number; events: number }>(
      `SELECT (SELECT count(*) FROM accounts) AS accounts, (SELECT count(*) FROM app_passwords) AS "appPasswords",
              (SELECT count(*) FROM events) AS events`,
    );
    const schemaVersion = await this.schemaVersion();
    const latestSchemaVersion = POSTGRES_MIGRATIONS.length;
    return {
      ok: schemaVersion === latestSchemaVersion,
      integrity: ['ok'],
      foreignKeyProblems: 0,
      schemaVersion,
      latestSchemaVersion,
      journalMode: 'postgresql',
      ...rows[0]!,
    };
  }

  backup(): Promise<void> {
    return Promise.reject(new PosternError('INPUT_INVALID',
      'postern db backup copies an SQLite database; this installation uses PostgreSQL: back it up with pg_dump (e.g. pg_dump -Fc -f postern.dump <database>) and keep the key file with it'));
  }
}
