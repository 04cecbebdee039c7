/**
 * A real authentication service on a real SQLite file in a temp folder, accounts made through the
 * AccountService the CLI uses, logs captured, and primary-password checks counted through a wrapped checker.
 * Every secret the fixture hands out is remembered; `close()` fails if one reached the logs.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AccountService } from '../../src/accounts/service.js';
import type { PrimaryChecker } from '../../src/auth/primary-checker.js';
import { AuthService } from '../../src/auth/service.js';
import { noThrottle, type Throttle } from '../../src/auth/throttle.js';
import type { AuthAttempt } from '../../src/auth/types.js';
import type { Logger } from '../../src/log.js';
import { openStore, type Store } from '../../src/store/index.js';
import { openWriterStore, WriteQueue, type WriteQueueOptions } from '../../src/store/write-queue.js';
import { assertNoSecrets, createLogSink, type LogSink } from '../helpers/log-sink.js';

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
  digestKey: Buffer;
  store: Store;
  /** The queue the service writes history through, on its own connection as in the proxy. */
  writes: WriteQueue;
  accounts: AccountService;
  auth: AuthService;
  logs: LogSink;
  secrets: Set<string>;
  /** Adds an account (upstream mode password, secret = `upstream-<primary>`) and returns nothing. */
  addUser(login: string, primary: string): void;
  newPassword(login: string, primary: string, options?: { scopes?: string; expires?: string }): { password: string; publicId: string };
  attempt(login: string, password: string, clientAddress?: string, protocol?: AuthAttempt['protocol']): Promise<Awaited<ReturnType<AuthService['authenticate']>>>;
  close(): Promise<void>;
}

export interface FixtureOptions {
  checker: PrimaryChecker;
  /** A throttle, or a factory given the fixture's auth logger. */
  throttle?: Throttle | ((log: Logger) => Throttle);
  clock?: () => number;
  primaryPasswordHint?: boolean;
  queue?: Partial<WriteQueueOptions>;
}

export function createAuthFixture(options: FixtureOptions): AuthFixture {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-auth-'));
  const dbPath = path.join(dir, 'postern.db');
  const digestKey = randomBytes(32);
  const store = openStore(dbPath);
  const writer = openWriterStore(dbPath);
  const accounts = new AccountService(store, digestKey, options.clock);
  const logs = createLogSink();
  const secrets = new Set<string>();
  const log = logs.logger.child({ component: 'auth' });
  const throttle = typeof options.throttle === 'function' ? options.throttle(log) : options.throttle ?? noThrottle;
  const writes = new WriteQueue(writer, { log, ...options.queue });
  const auth = new AuthService({
    store, writes, digestKey,
    primaryChecker: options.checker,
    throttle,
    log,
    clock: options.clock,
    primaryPasswordHint: options.primaryPasswordHint,
  });
  let closed = false;
  return {
    dir, dbPath, digestKey, store, writes, accounts, auth, logs, secrets,
    addUser(login, primary) {
      secrets.add(primary);
      secrets.add(`upstream-${primary}`);
      accounts.addAccount(login, primary, { mode: 'password', secret: `upstream-${primary}` });
    },
    newPassword(login, primary, extra) {
      const created = accounts.createPassword(login, primary, { label: 'test', scopes: extra?.scopes, expires: extra?.expires });
      secrets.add(created.password);
      return { password: created.password, publicId: created.publicId };
    },
    attempt(login, password, clientAddress = '192.0.2.10', protocol = 'imap') {
      if (password.length >= 6) secrets.add(password);
      return auth.authenticate({ login, password, clientAddress, protocol });
    },
    async close() {
      if (closed) return;
      closed = true;
      await auth.close();
      await writes.close();
      writer.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
      assertNoSecrets(logs.lines, secrets, 'auth logs');
    },
  };
}
