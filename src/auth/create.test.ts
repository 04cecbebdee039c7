/**
 * createAuthService builds the service from config: the throttle limits and trusted networks in
 * `auth` really reach it, and a malformed trusted network stops start-up with its config path.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { AccountService } from '../accounts/service.js';
import { createAuthService, type AuthService } from './index.js';
import { resolveConfig } from '../config/load.js';
import { isPosternError } from '../errors.js';
import { silentLogger } from '../log.js';
import { openStore, type Store } from '../store/index.js';
import { WriteQueue } from '../store/write-queue.js';

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

function open(auth: Record<string, unknown>): { store: Store; build: () => AuthService; accounts: AccountService } {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-auth-create-'));
  const store = openStore(path.join(dir, 'postern.db'));
  const writes = new WriteQueue(store, { log: silentLogger() });
  const key = randomBytes(32);
  cleanup.push(async () => {
    await writes.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const config = resolveConfig({ database: { path: path.join(dir, 'postern.db') }, auth }, null, {});
  return {
    store,
    accounts: new AccountService(store, key),
    build: () => {
      const service = createAuthService(config, store, writes, key, silentLogger());
      cleanup.push(() => service.close());
      return service;
    },
  };
}

it('applies auth.throttle and auth.trustedNetworks from config', async () => {
  const { build, accounts } = open({
    trustedNetworks: ['192.0.2.0/24'],
    bcryptWorkers: 1,
    throttle: { baseDelayMs: 0, maxDelayMs: 0, blockAfterFailures: 2, blockMs: 60_000, windowMs: 60_000 },
  });
  await accounts.addAccount('alice', 'primary-of-alice', { mode: 'password', secret: 'upstream-of-alice' });
  const { password } = await accounts.createPassword('alice', 'primary-of-alice', { label: 'phone' });
  const auth = build();
  const attempt = (pw: string, clientAddress: string) => auth.authenticate({ login: 'alice', password: pw, protocol: 'imap', clientAddress });
  for (let i = 0; i < 2; i++) expect(await attempt(`wrong-${i}`, '198.51.100.1')).toEqual({ kind: 'failed' });
  expect(await attempt(password, '198.51.100.1')).toEqual({ kind: 'throttled' });
  // A trusted network is never blocked, and the primary password is recognised through the pool.
  for (let i = 0; i < 4; i++) expect(await attempt(`wrong-${i}`, '192.0.2.9')).toEqual({ kind: 'failed' });
  expect((await attempt(password, '192.0.2.9')).kind).toBe('accepted');
  expect(await attempt('primary-of-alice', '192.0.2.9')).toEqual({ kind: 'primary-refused', hint: false });
});

it('refuses a malformed trusted network with its path', () => {
  // The config schema refuses it when the config is loaded, before a service could be built.
  let caught: unknown;
  try {
    open({ trustedNetworks: ['10.0.0.0/8', '10.0.0.0/40'] });
  } catch (err) {
    caught = err;
  }
  expect(isPosternError(caught, 'CONFIG_INVALID')).toBe(true);
  expect((caught as Error).message).toContain('auth.trustedNetworks.1');
});
