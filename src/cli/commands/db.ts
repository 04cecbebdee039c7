/**
 * `postern db backup | check`. Backups use SQLite's online backup API, so they are consistent
 * while the proxy keeps writing. A backup holds no secret in clear, but it is only useful with
 * the key file (app-password digests are keyed by it), so it says so.
 */
import { existsSync, chmodSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { globals, withStore } from '../context.js';
import { refused } from '../errors.js';
import { fields, json } from '../format.js';
import type { CliIo } from '../io.js';
import { registerMigrateTo } from './db-migrate-to.js';
import { databaseTarget } from '../../config/database.js';
import { describeDatabase } from '../../store/open.js';

export function registerDbCommands(program: Command, io: CliIo): void {
  const db = program.command('db').description('database maintenance');

  db.command('backup').description('write a consistent copy of the database (safe while postern runs)').argument('<file>')
    .action(async (file: string, _opts: unknown, cmd: Command) => withStore(globals(cmd), io, async ({ config, store }) => {
      if (store.engine === 'postgres') throw refused('the database is PostgreSQL: back it up with pg_dump (and keep the key file with the dump, separately secured)');
      const target = path.resolve(file);
      if (existsSync(target)) throw refused(`${target} exists already; choose a new file name`);
      if (target === config.database.path) throw refused('the backup must not overwrite the database itself');
      const folder = path.dirname(target);
      if (!statSync(folder, { throwIfNoEntry: false })?.isDirectory()) throw refused(`folder ${folder} does not exist; create it first`);
      await store.maintenance.backup(target);
      chmodSync(target, 0o600);
      io.stdout.write(`backed up ${config.database.path} to ${target}\n`);
      io.stdout.write(`keep the key file (${config.keyFile}) with it, separately secured: app-specific passwords cannot be checked without it\n`);
    }));

  db.command('check').description('check the integrity and schema version of the database')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => withStore(globals(cmd), io, async ({ config, store }) => {
      const report = { file: describeDatabase(databaseTarget(config)), ...(await store.maintenance.check()) };
      if (opts.json) io.stdout.write(json(report));
      else {
        io.stdout.write(fields([
          ['file', report.file],
          ['integrity', report.integrity.join('; ')],
          ['foreign keys', report.foreignKeyProblems === 0 ? 'ok' : `${report.foreignKeyProblems} problems`],
          ['schema version', `${report.schemaVersion} (latest ${report.latestSchemaVersion})`],
          ['journal mode', report.journalMode],
          ['rows', `${report.accounts} accounts, ${report.appPasswords} app-specific passwords, ${report.events} events`],
        ]));
      }
      if (!report.ok) throw refused(`database ${report.file} failed its integrity check`);
    }));

  registerMigrateTo(db, io);
}
