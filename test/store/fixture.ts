/**
 * A real store on a real SQLite file in a temp folder, with the account rules and the
 * authentication service on top, sharing one movable clock (expiry tests move time instead of
 * waiting). Every secret a test hands out is remembered for the on-disk scans.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AccountService } from '../../src/accounts/service.js';
import { inlinePrimaryChecker } from '../../src/auth/primary-checker.js';
import { AuthService } from '../../src/auth/service.js';
import { noThrottle } from '../../src/auth/throttle.js';
import type { AuthOutcome } from '../../src/auth/types.js';
import { createKeyFile, readKeyFile } from '../../src/crypto/keys.js';
import { silentLogger } from '../../src/log.js';
import { openStore, type Protocol, type Store } from '../../src/store/index.js';
import { openWriterStore, WriteQueue } from '../../src/store/write-queue.js';

export interface StoreFixture {
  dir: string;
  dbPath: string;
  keyFile: string;
  store: Store;
  writes: WriteQueue;
  accounts: AccountService;
  auth: AuthService;
  /** Current fake time (ms); tests move it forward. */
  now: { value: number };
  secrets: Set<string>;
  login(login: string, password: string, protocol?: Protocol): Promise<AuthOutcome>;
  close(): Promise<void>;
}

export function createStoreFixture(): StoreFixture {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-store-'));
  const dbPath = path.join(dir, 'postern.db');
  const keyFile = path.join(dir, 'postern.key');
  createKeyFile(keyFile);
  const digestKey = readKeyFile(keyFile);
  const store = openStore(dbPath);
  const now = { value: Date.UTC(2026, 0, 1) };
  const clock = () => now.value;
  const accounts = new AccountService(store, digestKey, clock);
  const writer = openWriterStore(dbPath);
  const writes = new WriteQueue(writer, { log: silentLogger() });
  const auth = new AuthService({ store, writes, digestKey, primaryChecker: inlinePrimaryChecker(), throttle: noThrottle, log: silentLogger(), clock });
  let closed = false;
  return {
    dir, dbPath, keyFile, store, writes, accounts, auth, now, secrets: new Set(),
    login: (login, password, protocol = 'imap') => auth.authenticate({ login, password, protocol, clientAddress: '127.0.0.1' }),
    async close() {
      if (closed) return;
      closed = true;
      await auth.close();
      await writes.close();
      writer.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
