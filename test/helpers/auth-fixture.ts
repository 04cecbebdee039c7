/**
 * A real authentication service on a real SQLite file in a temp folder, with a real key file, accounts
 * made through the AccountService the CLI uses, history written through a WriteQueue on its own
 * connection (as in the proxy), and every log line captured. The one fixture for the store, account
 * and authentication tests; each picks what it needs:
 *  - `checker`: the primary-password checker (default inline bcrypt), `counting()` wraps one to count compares;
 *  - `clock: 'movable'`: one fake clock shared by accounts and service, moved through `now.value`
 *    (expiry tests move time instead of waiting); or any clock function; default the real one;
 *  - `secrets`: every secret the fixture hands out is remembered (tests add their own, e.g. for
 *    on-disk scans); `close()` fails if one reached the logs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AccountService } from '../../src/accounts/service.js';
import { inlinePrimaryChecker, type PrimaryChecker } from '../../src/auth/primary-checker.js';
import { AuthService } from '../../src/auth/service.js';
import { noThrottle, type Throttle } from '../../src/auth/throttle.js';
import type { AuthAttempt, AuthOutcome } from '../../src/auth/types.js';
import { createKeyFile, readKeyFile } from '../../src/crypto/keys.js';
import type { Logger } from '../../src/log.js';
import { openStore, type Protocol, type Store } from '../../src/store/index.js';
import { openWriterStore, WriteQueue, type WriteQueueOptions } from '../../src/store/write-queue.js';
import { assertNoSecrets, createLogSink, type LogSink } from './log-sink.js';

/** Where a movable clock starts. */
export const MOVABLE_CLOCK_START = Date.UTC(2026, 0, 1);

export interface CountingChecker extends PrimaryChecker {
  calls: number;
}

/** Counts compares and passes them on to the real checker. */
export function counting(inner: PrimaryChecker): CountingChecker {
  const wrapped: CountingChecker = {
    calls: 0,
    compare(password, hash, serverKey) {
      wrapped.calls++;
      return inner.compare(password, hash, serverKey);
    },
    close: () => inner.close(),
  };
  return wrapped;
}

export interface AuthFixture {
  dir: string;
  dbPath: string;
  keyFile: string;
  digestKey: Buffer;
  store: Store;
  /** The queue the service writes history through, on its own connection as in the proxy. */
  writes: WriteQueue;
  accounts: AccountService;
  auth: AuthService;
  logs: LogSink;
  secrets: Set<string>;
  /** The movable clock's time (ms) with `clock: 'movable'`; tests move it forward. */
  now: { value: number };
  /** Adds an account (upstream mode password, secret = `upstream-<primary>`) and returns nothing. */
  addUser(login: string, primary: string): Promise<void>;
  newPassword(login: string, primary: string, options?: { scopes?: string; expires?: string }): Promise<{ password: string; publicId: string }>;
  /** A login from `clientAddress` (default 192.0.2.10); a password of 6 characters or more joins `secrets`. */
  attempt(login: string, password: string, clientAddress?: string, protocol?: AuthAttempt['protocol']): Promise<AuthOutcome>;
  /** A login from 127.0.0.1; the password is not remembered (the test decides what is secret). */
  login(login: string, password: string, protocol?: Protocol): Promise<AuthOutcome>;
  close(): Promise<void>;
}

export interface FixtureOptions {
  /** Default: the inline checker. */
  checker?: PrimaryChecker;
  /** A throttle, or a factory given the fixture's auth logger (and its store and queue, for the shared throttle). Default: none. */
  throttle?: Throttle | ((log: Logger, on: { store: Store; writes: WriteQueue }) => Throttle);
  /** A clock function, or 'movable' for the fixture's own (see `now`). Default: the real clock. */
  clock?: (() => number) | 'movable';
  primaryPasswordHint?: boolean;
  queue?: Partial<WriteQueueOptions>;
}

export function createAuthFixture(options: FixtureOptions = {}): AuthFixture {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-auth-'));
  const dbPath = path.join(dir, 'postern.db');
  const keyFile = path.join(dir, 'postern.key');
  createKeyFile(keyFile);
  const digestKey = readKeyFile(keyFile);
  const now = { value: MOVABLE_CLOCK_START };
  const clock = options.clock === 'movable' ? () => now.value : options.clock;
  const store = openStore(dbPath);
  const writer = openWriterStore(dbPath);
  const accounts = new AccountService(store, digestKey, clock);
  const logs = createLogSink();
  const secrets = new Set<string>();
  const log = logs.logger.child({ component: 'auth' });
  const writes = new WriteQueue(writer, { log, ...options.queue });
  const throttle = typeof options.throttle === 'function' ? options.throttle(log, { store, writes }) : options.throttle ?? noThrottle;
  const auth = new AuthService({
    store, writes, digestKey,
    primaryChecker: options.checker ?? inlinePrimaryChecker(),
    throttle,
    log,
    clock,
    primaryPasswordHint: options.primaryPasswordHint,
  });
  let closed = false;
  return {
    dir, dbPath, keyFile, digestKey, store, writes, accounts, auth, logs, secrets, now,
    async addUser(login, primary) {
      secrets.add(primary);
      secrets.add(`upstream-${primary}`);
      await accounts.addAccount(login, primary, { mode: 'password', secret: `upstream-${primary}` });
    },
    async newPassword(login, primary, extra) {
      const created = await accounts.createPassword(login, primary, { label: 'test', scopes: extra?.scopes, expires: extra?.expires });
      secrets.add(created.password);
      return { password: created.password, publicId: created.publicId };
    },
    attempt(login, password, clientAddress = '192.0.2.10', protocol = 'imap') {
      if (password.length >= 6) secrets.add(password);
      return auth.authenticate({ login, password, clientAddress, protocol });
    },
    login: (login, password, protocol = 'imap') => auth.authenticate({ login, password, protocol, clientAddress: '127.0.0.1' }),
    async close() {
      if (closed) return;
      closed = true;
      await auth.close();
      await writes.close();
      await writer.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
      assertNoSecrets(logs.lines, secrets, 'auth logs');
    },
  };
}
