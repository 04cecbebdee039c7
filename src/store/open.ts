/**
 * Opens the configured database (src/config/database.ts): SQLite at `database.path`, or
 * PostgreSQL at `database.url`. Each SQLite role gets its own connection with its own busy
 * timeout — better-sqlite3 waits for a lock on the event loop, so the proxy's writer may wait
 * only milliseconds, the account page a second, an admin command seconds. On PostgreSQL nothing
 * waits on the event loop, so one pool per process serves every role (`shared`).
 */
import { existsSync } from 'node:fs';
import { databaseTarget, redactDatabaseUrl, type DatabaseTarget } from '../config/database.js';
import type { ResolvedConfig } from '../config/load.js';
import type { AsyncStore } from './api.js';
import { openStore } from './index.js';
import { openPostgresStore, type PostgresStore } from './postgres/index.js';
import { WRITER_BUSY_TIMEOUT_MS } from './write-queue.js';

/** proxy: logins and reads; writer: the write queue; portal: the account page; admin: a CLI command. */
export type StoreRole = 'proxy' | 'writer' | 'portal' | 'admin';

const SQLITE_BUSY_TIMEOUT_MS: Record<StoreRole, number | undefined> = {
  proxy: undefined,
  writer: WRITER_BUSY_TIMEOUT_MS,
  portal: 1000,
  admin: undefined,
};

export async function openConfiguredStore(config: Pick<ResolvedConfig, 'database'>, role: StoreRole): Promise<AsyncStore> {
  const target = databaseTarget(config);
  if (target.engine === 'sqlite') {
    const busyTimeoutMs = SQLITE_BUSY_TIMEOUT_MS[role];
    return openStore(target.path, busyTimeoutMs === undefined ? {} : { busyTimeoutMs });
  }
  return openPostgresStore(target.url, { max: target.poolSize, connectTimeoutMs: target.connectTimeoutMs });
}

/** Whether the database exists yet: SQLite's file; a PostgreSQL database is made by its admin. */
export function databaseExists(target: DatabaseTarget): boolean {
  return target.engine === 'postgres' || existsSync(target.path);
}

/** How messages name the database: the file, or the URL without its password. */
export function describeDatabase(target: DatabaseTarget): string {
  return target.engine === 'sqlite' ? target.path : redactDatabaseUrl(target.url);
}

export type { PostgresStore };
