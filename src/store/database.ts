/**
 * Opens the single SQLite file shared by the running proxy and admin commands (separate
 * processes): WAL so readers never block the writer, a busy timeout so concurrent writers wait
 * instead of failing, foreign keys on, versioned migrations applied in one transaction each.
 * The proxy's own writer connection asks for a near-zero busy timeout (src/store/write-queue.ts):
 * better-sqlite3 waits for a lock on the event loop, so only admin commands may afford to wait.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { PosternError } from '../errors.js';
import { MIGRATIONS } from './migrations.js';

export type Db = Database.Database;

export interface OpenOptions {
  readonly?: boolean;
  /** How long a write waits for another connection's lock; set after migrations, which always wait. */
  busyTimeoutMs?: number;
}

const DEFAULT_BUSY_TIMEOUT_MS = 5000;

export function openDatabase(file: string, options: OpenOptions = {}): Db {
  let db: Db;
  try {
    if (file !== ':memory:' && !options.readonly) mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    db = new Database(file, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false });
  } catch (err) {
    throw new PosternError('STORE_OPEN_FAILED', `cannot open database ${file}: ${(err as Error).message}`, { cause: err });
  }
  db.pragma(`busy_timeout = ${DEFAULT_BUSY_TIMEOUT_MS}`);
  db.pragma('foreign_keys = ON');
  if (!options.readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    try {
      migrate(db);
    } catch (err) {
      db.close();
      throw err;
    }
  }
  if (options.busyTimeoutMs !== undefined) db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs))}`);
  return db;
}

export function schemaVersion(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}

function migrate(db: Db): void {
  // BEGIN IMMEDIATE: two processes starting at once must not both apply the same migration.
  const apply = db.transaction(() => {
    const found = schemaVersion(db);
    if (found > MIGRATIONS.length) {
      // Written by a newer postern: its tables may mean things this code does not know.
      throw new PosternError('STORE_TOO_NEW', `the database has schema version ${found}, newer than this postern knows (${MIGRATIONS.length}); upgrade postern or restore a backup`);
    }
    const from = schemaVersion(db);
    const dangling = () => (db.pragma('foreign_key_check') as unknown[]).length;
    const before = from < MIGRATIONS.length ? dangling() : 0;
    for (let v = from; v < MIGRATIONS.length; v++) {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }
    // Orphans left by a hand-run removal with foreign keys off are tolerated; new ones are not.
    if (from < MIGRATIONS.length && dangling() > before) throw new Error('a migration left rows whose foreign keys point nowhere');
  });
  // Foreign keys off while migrating, as SQLite's recipe for rebuilding a table requires (the
  // pragma is a no-op inside a transaction, hence out here); the rows keep their ids, and the
  // check below refuses to commit a migration that left a dangling reference behind.
  db.pragma('foreign_keys = OFF');
  try {
    apply.immediate();
  } catch (err) {
    if (err instanceof PosternError) throw err;
    throw new PosternError('STORE_MIGRATION_FAILED', `database migration failed: ${(err as Error).message}`, { cause: err });
  } finally {
    db.pragma('foreign_keys = ON');
  }
}
