/**
 * The refresh single flight across processes (migration 10's lease): two token managers on two
 * connections to one SQLite file stand for two workers or instances. Pinned: concurrent logins
 * on both refresh once (**spent refresh token replay**: a second refresh with the rotated-away
 * token is what a provider with reuse detection answers by revoking the grant), and every login
 * gets the one new token; a holder that died leaves a lease that lapses, then another process
 * refreshes; a refresh that fails gives the lease back. The provider is an in-process fake: it
 * only counts refreshes (the real one is exercised in test/oauth2/).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { PosternError } from '../errors.js';
import { silentLogger } from '../log.js';
import { openStore, sqliteDb, type Store } from '../store/index.js';
import type { OAuth2Client } from './client.js';
import { TokenManager, type GrantAccount } from './token-manager.js';
import { openTokenSet, sealTokenSet, type TokenSet } from './token-set.js';

let dir: string;
let stores: Store[];
let account: GrantAccount;
const dek = randomBytes(32);

function provider(delayMs: number, fail = false) {
  const seen: string[] = [];
  const client = {
    refresh: async (refreshToken: string): Promise<TokenSet> => {
      seen.push(refreshToken);
      await new Promise((r) => setTimeout(r, delayMs));
      if (fail) throw new PosternError('OAUTH2_FAILED', 'provider unreachable');
      return { refreshToken: `${refreshToken}-rotated`, accessToken: `access-${seen.length}`, expiresAt: Date.now() + 3_600_000 };
    },
  } as unknown as OAuth2Client;
  return { client, seen };
}

function manager(store: Store, client: OAuth2Client): TokenManager {
  return new TokenManager({ store, writer: store, clients: new Map([['test', client]]), refreshMarginMs: 60_000, log: silentLogger() });
}

const lease = () => (sqliteDb(stores[0]!).prepare('SELECT refresh_lease_until AS l FROM accounts WHERE id = ?').get(account.id) as { l: number | null }).l;

beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'postern-lease-'));
  const file = path.join(dir, 'p.db');
  stores = [openStore(file), openStore(file)];
  const id = await stores[0]!.accounts.insert({ login: 'olga', upstreamMode: 'oauth2', upstreamUser: 'olga@provider', primaryHash: 'h', primarySalt: null, dekPrimary: null, now: 1, oauth2Provider: 'test' });
  await stores[0]!.accounts.setSecretBox(id, sealTokenSet(dek, id, { refreshToken: 'refresh-0', accessToken: 'expired', expiresAt: Date.now() - 1_000 }));
  account = { id, login: 'olga', upstreamUser: 'olga@provider', oauth2Provider: 'test' };
});

afterEach(async () => {
  for (const s of stores) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

it('spent refresh token replay: concurrent logins in two processes refresh once, and all get the new token', async () => {
  const { client, seen } = provider(300);
  const [a, b] = stores.map((s) => manager(s, client));
  const logins = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a! : b!).bearer(account, dek)));
  expect(seen).toEqual(['refresh-0']);
  expect(new Set(logins.map((l) => l.token))).toEqual(new Set(['access-1']));
  const stored = openTokenSet(dek, account.id, (await stores[1]!.accounts.secretBox(account.id))!);
  expect(stored).toMatchObject({ refreshToken: 'refresh-0-rotated', accessToken: 'access-1' });
  expect(lease()).toBeNull();
});

it('a lease left by a process that died lapses; then another process refreshes', async () => {
  const { client, seen } = provider(0);
  // A holder whose lease has 400 ms left and that never comes back (killed mid-refresh).
  expect(await stores[0]!.accounts.takeRefreshLease(account.id, Date.now(), Date.now() + 400)).toBe(true);
  const started = Date.now();
  const login = await manager(stores[1]!, client).bearer(account, dek);
  expect(Date.now() - started).toBeGreaterThanOrEqual(350);
  expect(login.token).toBe('access-1');
  expect(seen).toEqual(['refresh-0']);
  expect(lease()).toBeNull();
});

it('a refresh that fails gives the lease back, so the next login can try at once', async () => {
  const failing = provider(0, true);
  await expect(manager(stores[0]!, failing.client).bearer(account, dek)).rejects.toMatchObject({ code: 'OAUTH2_FAILED' });
  expect(lease()).toBeNull();
  const working = provider(0);
  expect((await manager(stores[1]!, working.client).bearer(account, dek)).token).toBe('access-1');
});
