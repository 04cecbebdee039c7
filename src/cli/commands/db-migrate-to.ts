/**
 * `postern db migrate-to [url]`: copies an SQLite installation (database.path) into an empty
 * PostgreSQL database, for the move to several instances (issue 14). Both sides are brought to
 * the latest schema first (the same migration set), then every table is copied row for row in
 * one PostgreSQL transaction: ids kept (app_passwords.account_id and the history still point at
 * the same rows), identity sequences moved past them, sealed boxes and digests copied as bytes
 * (the same key file keeps working). A target holding any postern row is refused, so a second
 * run cannot merge two installations. Stop postern first: rows written after the copy are not
 * carried over.
 *
 * The URL comes preferably from POSTERN_DATABASE_URL: a command line is visible to every local
 * user in ps. Whatever its source, only host, port and database are ever printed.
 */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import type pg from 'pg';
import { DATABASE_URL_ENV, describeTarget } from '../../config/database.js';
import { openStore, sqliteDb, type Db } from '../../store/index.js';
import { storeError } from '../../store/postgres/connection.js';
import { openPostgresStore } from '../../store/postgres/index.js';
import { globals, loadConfig } from '../context.js';
import { refused, usage } from '../errors.js';
import type { CliIo } from '../io.js';

/** Parents before children, so every foreign key finds its row. Fixed names: never from input. */
export const COPIED_TABLES = [
  'accounts', 'app_passwords', 'events', 'password_changes', 'throttle_counts', 'throttle_blocks',
  'second_factors', 'recovery_codes', 'portal_sessions', 'passkeys', 'profile_downloads',
] as const;

/** Identity columns, whose sequences must continue after the copied ids. */
const IDENTITIES: ReadonlyArray<readonly [table: string, column: string]> = [
  ['accounts', 'id'], ['app_passwords', 'id'], ['events', 'id'], ['password_changes', 'revision'],
  ['recovery_codes', 'id'], ['portal_sessions', 'id'], ['passkeys', 'id'],
];

// PostgreSQL binds at most 65,535 parameters per statement.
const MAX_PARAMETERS = 60_000;

export function registerMigrateTo(db: Command, io: CliIo): void {
  db.command('migrate-to')
    .description('copy this SQLite installation into an empty PostgreSQL database')
    .argument('[url]', 'postgres://user@host:port/database; better in POSTERN_DATABASE_URL, as a command line (and a password in it) is visible to every user in ps')
    .addHelpText('after', '\nThe URL is read from POSTERN_DATABASE_URL when not given. Stop postern before copying.')
    .action(async (given: string | undefined, _opts: unknown, cmd: Command) => {
      const url = given ?? io.env.POSTERN_DATABASE_URL;
      if (!url) throw usage('give the PostgreSQL URL in POSTERN_DATABASE_URL (preferred: a command line is visible in ps) or as the argument');
      if (!/^postgres(ql)?:\/\//.test(url)) throw usage('the URL must start with postgres:// or postgresql://');
      // The variable names the target here, not this installation's database: the config is read
      // without it (the loader would take it as database.url, or refuse it beside database.path).
      const config = loadConfig(globals(cmd), { ...io, env: { ...io.env, [DATABASE_URL_ENV]: undefined } });
      if (config.database.url !== null) throw refused('database.url is set: migrate-to copies from an SQLite installation (database.path)');
      if (!existsSync(config.database.path)) throw refused(`no database at ${config.database.path}: nothing to migrate`);
      const target = describeTarget(url);
      const counts = await migrate(config.database.path, url);
      io.stdout.write(`copied ${config.database.path} to PostgreSQL ${target}:\n`);
      for (const [table, n] of counts) io.stdout.write(`  ${table.padEnd(17)} ${n}\n`);
      io.stdout.write(`point database.url (or POSTERN_DATABASE_URL) at it and keep using the same key file\n`);
    });
}

async function migrate(file: string, url: string): Promise<Array<[string, number]>> {
  const source = openStore(file);
  try {
    const pgStore = await openPostgresStore(url, { max: 1 });
    try {
      const client = await pgStore.pool.connect().catch((err: unknown) => {
        throw storeError(err, url);
      });
      try {
        await client.query('BEGIN');
        const counts = await copyAll(sqliteDb(source), client, url);
        await client.query('COMMIT');
        return counts;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw storeError(err, url);
      } finally {
        client.release();
      }
    } finally {
      await pgStore.close();
    }
  } finally {
    await source.close();
  }
}

async function copyAll(db: Db, client: pg.PoolClient, url: string): Promise<Array<[string, number]>> {
  // Locks every table against other writers for the copy, and makes the emptiness check hold until COMMIT.
  await client.query(`LOCK TABLE ${COPIED_TABLES.join(', ')} IN EXCLUSIVE MODE`);
  for (const table of COPIED_TABLES) {
    const { rows } = await client.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${table}) AS any`);
    if (rows[0]!.any) throw refused(`PostgreSQL ${describeTarget(url)} already holds postern data (table ${table}); migrate into an empty database`);
  }
  const counts: Array<[string, number]> = [];
  for (const table of COPIED_TABLES) counts.push([table, await copyTable(db, client, table)]);
  for (const [table, column] of IDENTITIES) {
    // password_changes: past SQLite's AUTOINCREMENT high-water mark too, which pruning leaves above
    // max(revision): the revocation watcher relies on revisions never going back.
    const seen = table === 'password_changes'
      ? ((db.prepare(`SELECT seq FROM sqlite_sequence WHERE name = 'password_changes'`).pluck().get() as number | undefined) ?? 0)
      : 0;
    await client.query(
      `SELECT setval(pg_get_serial_sequence('${table}', '${column}'), GREATEST(coalesce((SELECT max(${column}) FROM ${table}), 0), $1::bigint, 1),
         GREATEST(coalesce((SELECT max(${column}) FROM ${table}), 0), $1::bigint) > 0)`,
      [seen],
    );
  }
  return counts;
}

async function copyTable(db: Db, client: pg.PoolClient, table: string): Promise<number> {
  const columns = (db.prepare(`SELECT name FROM pragma_table_info('${table}') ORDER BY cid`).pluck().all() as string[]);
  const { rows: targetColumns } = await client.query<{ name: string }>(
    `SELECT column_name AS name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1`, [table],
  );
  const missing = columns.filter((c) => !targetColumns.some((t) => t.name === c));
  if (missing.length > 0 || targetColumns.length !== columns.length) {
    throw refused(`table ${table} differs between the engines (${missing.join(', ') || 'column count'}); both should be at the latest schema`);
  }
  const list = columns.map((c) => `"${c}"`).join(', ');
  const perBatch = Math.max(1, Math.floor(MAX_PARAMETERS / columns.length));
  let batch: unknown[][] = [];
  let copied = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const values = batch.map((_, r) => `(${columns.map((__, c) => `$${r * columns.length + c + 1}`).join(', ')})`).join(', ');
    await client.query(`INSERT INTO ${table} (${list}) VALUES ${values}`, batch.flat());
    copied += batch.length;
    batch = [];
  };
  for (const row of db.prepare(`SELECT ${list} FROM ${table}`).raw().iterate() as IterableIterator<unknown[]>) {
    batch.push(row);
    if (batch.length >= perBatch) await flush();
  }
  await flush();
  return copied;
}
