/**
 * What database maintenance needs from the store (`postern db check | backup`, `postern init`),
 * so no SQL or pragma lives in the CLI and a second database engine has one interface to fill.
 * Read-only except for the backup, which writes a new file and never touches the database.
 */
import type { Db } from './database.js';
import { schemaVersion } from './database.js';
import { MIGRATIONS } from './migrations.js';

export interface DatabaseCheck {
  /** Integrity and foreign keys both clean. */
  ok: boolean;
  /** SQLite's integrity_check lines: ['ok'] when sound. */
  integrity: string[];
  foreignKeyProblems: number;
  schemaVersion: number;
  latestSchemaVersion: number;
  journalMode: string;
  accounts: number;
  appPasswords: number;
  events: number;
}

// Fixed table names: the count statements are prepared from this list, never from input.
const COUNTED = { accounts: 'accounts', appPasswords: 'app_passwords', events: 'events' } as const;

export class Maintenance {
  constructor(private readonly db: Db) {}

  schemaVersion(): number {
    return schemaVersion(this.db);
  }

  check(): DatabaseCheck {
    const integrity = (this.db.pragma('integrity_check') as Array<{ integrity_check: string }>).map((r) => r.integrity_check);
    const foreignKeyProblems = (this.db.pragma('foreign_key_check') as unknown[]).length;
    const count = (table: string) => (this.db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
    return {
      ok: integrity.length === 1 && integrity[0] === 'ok' && foreignKeyProblems === 0,
      integrity,
      foreignKeyProblems,
      schemaVersion: this.schemaVersion(),
      latestSchemaVersion: MIGRATIONS.length,
      journalMode: this.db.pragma('journal_mode', { simple: true }) as string,
      accounts: count(COUNTED.accounts),
      appPasswords: count(COUNTED.appPasswords),
      events: count(COUNTED.events),
    };
  }

  /** A consistent copy through SQLite's online backup API: safe while the proxy keeps writing. */
  async backup(file: string): Promise<void> {
    await this.db.backup(file);
  }
}
