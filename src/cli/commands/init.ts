/**
 * `postern init`: everything a first start needs, and nothing more, idempotently — a config copied
 * from the documented example, the digest key file (0600), the database with its schema, a
 * self-signed certificate. Existing files are kept; each step prints what it did.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { ensureKeyFile } from '../../crypto/keys.js';
import { databaseTarget } from '../../config/database.js';
import { describeDatabase, openConfiguredStore } from '../../store/open.js';
import { configPath, globals, loadConfig } from '../context.js';
import { refused } from '../errors.js';
import type { CliIo } from '../io.js';
import { exampleConfigPath } from '../paths.js';
import { generateCertificate } from './cert.js';

export function registerInitCommand(program: Command, io: CliIo): void {
  program.command('init').description('create the config, key file, database and a self-signed certificate where missing')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      const say = (line: string) => io.stdout.write(line + '\n');
      const file = configPath(g, io);
      if (existsSync(file)) say(`config       kept ${file}`);
      else {
        const example = exampleConfigPath();
        if (!example) throw refused(`no config at ${file} and no example config to copy it from`);
        mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
        copyFileSync(example, file);
        say(`config       created ${file} (from ${path.basename(example)}; edit the upstream hosts)`);
      }
      const config = loadConfig({ ...g, config: file }, io);

      say(ensureKeyFile(config.keyFile) ? `key file     created ${config.keyFile} (mode 0600)` : `key file     kept ${config.keyFile}`);

      const target = databaseTarget(config);
      if (target.engine === 'sqlite') {
        const existed = existsSync(target.path);
        const store = await openConfiguredStore(config, 'admin');
        const version = await store.maintenance.schemaVersion();
        await store.close();
        // No secret is stored in clear, but the history (logins, client addresses) is nobody else's business.
        if (!existed) chmodSync(target.path, 0o600);
        say(`database     ${existed ? 'kept' : 'created'} ${target.path} (schema version ${version})`);
      } else {
        // The database itself is the PostgreSQL admin's (CREATE DATABASE); postern brings its schema.
        const store = await openConfiguredStore(config, 'admin');
        const version = await store.maintenance.schemaVersion();
        await store.close();
        say(`database     ready ${describeDatabase(target)} (PostgreSQL, schema version ${version})`);
      }

      const haveCert = existsSync(config.tls.cert);
      const haveKey = existsSync(config.tls.key);
      if (haveCert && haveKey) say(`certificate  kept ${config.tls.cert}`);
      else if (haveCert || haveKey) {
        throw refused(`only one of ${config.tls.cert} and ${config.tls.key} exists: restore the other or run "postern cert generate --force"`);
      } else {
        const summary = generateCertificate(config);
        say(`certificate  created ${config.tls.cert} (self-signed for ${summary.subjectAltNames.join(', ')}; SHA-256 ${summary.fingerprintSha256})`);
      }
      say('next: "postern user add <login>", then "postern serve"');
    });
}
