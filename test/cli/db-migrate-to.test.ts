/**
 * `postern db migrate-to` as the real binary, from an installation made by the CLI into a real
 * PostgreSQL. Pinned here: every table arrives row for row (ids, sealed boxes and digests as they
 * were), so a known app password's digest under the same key file finds its account through
 * openPostgresStore; identity sequences continue after the copied ids and the change log's
 * revision does not go back; the counts are printed; a target that holds postern data is
 * refused; the URL comes from POSTERN_DATABASE_URL or the argument, and its password is never
 * printed.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { COPIED_TABLES } from '../../src/cli/commands/db-migrate-to.js';
import { normalizeAppPassword } from '../../src/crypto/app-password.js';
import { digestAppPassword, readKeyFile } from '../../src/crypto/keys.js';
import { openPostgresStore } from '../../src/store/postgres/index.js';
import { createWorkspace, type CliResult, type Workspace } from '../helpers/cli.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { engine } from '../helpers/test-database.js';

const ALICE = 'alice primary: correct horse';
const BOB = 'bob primary password';
const BOB_UPSTREAM = 'bob distinct provider secret';
const URL_PASSWORD = 'url-pw-never-printed-5c1e';

// SQLite pass only: the source of migrate-to is an SQLite installation (the target is this file's own
// PostgreSQL on either pass, so the PostgreSQL pass would repeat the same run).
const itFromSqlite = it.runIf(engine === 'sqlite');

let server: PostgresServer;
let ws: Workspace;
const outputs: CliResult[] = [];

beforeAll(async () => {
  server = await startPostgres();
  ws = await createWorkspace({ hostnames: ['mail.example.test'], imap: { implicitTls: { port: 9993 }, upstream: { host: 'imap.example.com', port: 993 } } });
});
afterAll(async () => {
  ws?.cleanup();
  await server?.stop();
});

async function run(args: string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  const r = await ws.run(args, options);
  outputs.push(r);
  return r;
}

async function newPassword(login: string, primary: string, label: string): Promise<{ id: string; password: string }> {
  const r = await run(['password', 'new', login, '--label', label, '--password-stdin'], { input: primary + '\n' });
  expect(r.code, r.stderr).toBe(0);
  return { password: /^ {4}([a-z]{4}-[a-z]{4}-[a-z]{4}-[a-z]{4})$/m.exec(r.stdout)![1]!, id: /^ {2}id: +([0-9a-f]{8})$/m.exec(r.stdout)![1]! };
}

const withPassword = (url: string) => url.replace('postgres://postgres@', `postgres://postgres:${URL_PASSWORD}@`);
const orderBy: Record<string, string> = { throttle_counts: 'key, bucket', throttle_blocks: 'key', second_factors: 'account_id', password_changes: 'revision', profile_downloads: 'token_digest' };

// Eight CLI runs, each with the production-cost primary-password hash: slow on a loaded machine.
itFromSqlite('copies an installation into PostgreSQL row for row; the same key file finds its passwords there', { timeout: 120_000 }, async () => {
  expect((await run(['user', 'add', 'alice', '--password-stdin'], { input: ALICE + '\n' })).code).toBe(0);
  expect((await run(['user', 'add', 'bob', '--password-stdin', '--upstream-secret-stdin', '--upstream-user', 'bob@provider.example'], { input: `${BOB}\n${BOB_UPSTREAM}\n` })).code).toBe(0);
  const kept = await newPassword('alice', ALICE, 'phone');
  const revoked = await newPassword('bob', BOB, 'laptop');
  await newPassword('bob', BOB, 'tablet');
  expect((await run(['password', 'revoke', 'bob', revoked.id])).code).toBe(0);

  const url = await server.createDatabase();
  const r = await run(['db', 'migrate-to'], { env: { POSTERN_DATABASE_URL: withPassword(url) } });
  expect(r.code, r.stderr).toBe(0);
  const dbFile = path.join(ws.dir, 'data', 'postern.db');
  expect(r.stdout).toContain(`copied ${dbFile} to PostgreSQL 127.0.0.1:${server.port}/`);
  expect(r.stdout).toMatch(/^ {2}accounts +2$/m);
  expect(r.stdout).toMatch(/^ {2}app_passwords +3$/m);
  expect(r.stdout).toMatch(/^ {2}password_changes +1$/m);

  const sqlite = new Database(dbFile, { readonly: true });
  const pg = await openPostgresStore(url);
  try {
    for (const table of COPIED_TABLES) {
      const sql = `SELECT * FROM ${table} ORDER BY ${orderBy[table] ?? 'id'}`;
      expect((await pg.pool.query(sql)).rows, table).toEqual(sqlite.prepare(sql).all());
    }
    expect((await pg.pool.query<{ n: number }>('SELECT count(*) AS n FROM events')).rows[0]!.n).toBeGreaterThan(4);

    const key = readKeyFile(path.join(ws.dir, 'data', 'postern.key'));
    const match = await pg.passwords.findByDigest(digestAppPassword(key, normalizeAppPassword(kept.password)!));
    expect(match).toMatchObject({ password: { publicId: kept.id, revokedAt: null }, account: { login: 'alice', upstreamMode: 'password' } });
    expect(match!.password.dekBox).toBeInstanceOf(Buffer);

    // The sequences continue after the copied ids; the change log's revision moves on, never back.
    const before = await pg.passwords.revision();
    expect(before).toBe(1);
    const carol = await pg.accounts.insert({ login: 'carol', upstreamMode: 'master', upstreamUser: 'carol', primaryHash: 'h', primarySalt: null, dekPrimary: null, now: 1 });
    expect(carol).toBe(3);
    await pg.passwords.revokeAll(match!.account.id, 'admin', 2);
    expect(await pg.passwords.revision()).toBe(before + 1);
    await pg.events.append({ type: 'account.created', at: 3, accountId: carol });
  } finally {
    sqlite.close();
    await pg.close();
  }
});

itFromSqlite('refuses a target that holds postern data, and a missing URL; the URL’s password is never printed', { timeout: 60_000 }, async () => {
  const url = await server.createDatabase();
  expect((await run(['db', 'migrate-to', withPassword(url)])).code).toBe(0);
  const again = await run(['db', 'migrate-to', withPassword(url)]);
  expect(again.code).toBe(1);
  expect(again.stderr).toMatch(/^postern: PostgreSQL 127\.0\.0\.1:\d+\/\w+ already holds postern data \(table accounts\); migrate into an empty database\n$/);
  const none = await run(['db', 'migrate-to']);
  expect(none.code).toBe(2);
  expect(none.stderr).toMatch(/POSTERN_DATABASE_URL/);
  const help = await run(['db', 'migrate-to', '--help']);
  expect(help.stdout).toMatch(/visible to every user in ps/);
  for (const o of outputs) expect(o.stdout + o.stderr).not.toContain(URL_PASSWORD);
});
