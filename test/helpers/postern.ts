/**
 * Starts a real postern in-process for integration tests: temp folder with a fresh database (an
 * SQLite file there, or a database of its own on the run's PostgreSQL: test-database.ts), key file and self-signed certificate, listeners on 127.0.0.1 port 0, logs captured. Accounts
 * and app passwords are made through the same AccountService the CLI uses. At stop, the captured
 * logs are scanned for every secret the test handed out.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AccountService, type NewPasswordRequest, type UpstreamSettings } from '../../src/accounts/service.js';
import { startApp, type App } from '../../src/app.js';
import { resolveConfig, type ResolvedConfig } from '../../src/config/load.js';
import { createKeyFile, readKeyFile } from '../../src/crypto/keys.js';
import { generateSelfSigned, writeCertFiles } from '../../src/net/certs.js';
import { assertNoSecrets, createLogSink, type LogSink } from './log-sink.js';
import { releaseTestDatabase, testDatabaseConfig } from './test-database.js';

export interface PosternHarness {
  app: App;
  config: ResolvedConfig;
  dir: string;
  /** The SQLite file when the postern runs on SQLite (see `database` for the engine). */
  dbPath: string;
  /** The raw `database` section it was started with: `{ path }` (SQLite) or `{ url }` (PostgreSQL). */
  database: { path: string } | { url: string };
  keyFile: string;
  /** PEM of postern's own self-signed certificate (what clients must trust). */
  caPem: string;
  logs: LogSink;
  accounts: AccountService;
  /** Port of a named listener (`imap.implicitTls`, `imap.starttls`, `smtp.implicitTls`, `smtp.starttls`, `dav`). */
  port(name: string): number;
  /** Creates an account (mode password unless `upstream` says otherwise) and remembers its secrets. */
  addUser(login: string, primary: string, upstream?: Partial<UpstreamSettings>): Promise<void>;
  /** Creates an app password and returns it (remembered as a secret). */
  newPassword(login: string, primary: string, request?: Partial<NewPasswordRequest>): Promise<{ password: string; publicId: string }>;
  /** Adds a string that must never appear in logs. */
  rememberSecret(secret: string): void;
  stop(): Promise<void>;
}

export interface PosternOptions {
  /** Raw config (as it would be in YAML) merged over the harness defaults. */
  config?: Record<string, unknown>;
  /** Resolver for upstream host names (test/helpers/dav-hosts.ts `hostLookup`). */
  upstreamLookup?: import('node:net').LookupFunction;
  /** Extra secrets that must never appear in logs (e.g. upstream passwords). */
  secrets?: string[];
}

const WRONG_PASSWORDS_SENT_BY_TESTS = ['abcd-efgh-ijkl-mnop', 'wrong-wrong-wrong', 'wrong-wrong-wrong-wrong', 'wrong-password-'];

const FAST_THROTTLE = { baseDelayMs: 0, maxDelayMs: 0, blockAfterFailures: 1000, blockMs: 0, windowMs: 60_000 };

export async function startPostern(options: PosternOptions = {}): Promise<PosternHarness> {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-test-'));
  const dbPath = path.join(dir, 'postern.db');
  const keyFile = path.join(dir, 'postern.key');
  const cert = generateSelfSigned(['localhost', '127.0.0.1']);
  writeCertFiles(path.join(dir, 'postern.crt'), path.join(dir, 'postern-key.pem'), cert);
  createKeyFile(keyFile);
  // A test that names its own database (a file it prepared, a URL) keeps it; otherwise the run's engine.
  const database = (options.config?.database as { path: string } | { url: string } | undefined) ?? await testDatabaseConfig(dbPath);
  const raw = {
    database,
    keyFile,
    tls: { cert: path.join(dir, 'postern.crt'), key: path.join(dir, 'postern-key.pem') },
    auth: { throttle: FAST_THROTTLE },
    ...options.config,
  };
  const logs = createLogSink();
  // Wrong passwords are secrets too (a user's typo is often one key off the real password): the
  // ones the protocol tests send must not reach the logs either.
  const secrets = new Set([...WRONG_PASSWORDS_SENT_BY_TESTS, ...(options.secrets ?? [])]);
  let config: ResolvedConfig;
  let app: App;
  try {
    config = resolveConfig(raw, null, {});
    app = await startApp(config, logs.logger, { upstreamLookup: options.upstreamLookup });
  } catch (err) {
    // Tests that expect start-up to fail must not leave the workspace behind.
    rmSync(dir, { recursive: true, force: true });
    if (options.config?.database === undefined) await releaseTestDatabase(database);
    throw err;
  }
  const accounts = new AccountService(app.store, readKeyFile(keyFile));
  let stopped = false;
  return {
    app, config, dir, dbPath, database, keyFile, caPem: cert.certPem, logs, accounts,
    port(name) {
      const found = app.addresses.find((a) => a.name === name);
      if (!found) throw new Error(`no listener ${name}; have ${app.addresses.map((a) => a.name).join(', ')}`);
      return found.port;
    },
    async addUser(login, primary, upstream) {
      secrets.add(primary);
      const settings: UpstreamSettings = { mode: upstream?.mode ?? 'password', user: upstream?.user, secret: upstream?.secret ?? (upstream?.mode === 'master' ? undefined : primary) };
      if (settings.secret) secrets.add(settings.secret);
      await accounts.addAccount(login, primary, settings);
    },
    async newPassword(login, primary, request) {
      const created = await accounts.createPassword(login, primary, { label: request?.label ?? 'test client', scopes: request?.scopes, expires: request?.expires });
      secrets.add(created.password);
      return { password: created.password, publicId: created.publicId };
    },
    rememberSecret: (s) => void secrets.add(s),
    async stop() {
      if (stopped) return;
      stopped = true;
      await app.close();
      rmSync(dir, { recursive: true, force: true });
      if (options.config?.database === undefined) await releaseTestDatabase(database);
      assertNoSecrets(logs.lines, secrets, 'postern logs');
    },
  };
}
