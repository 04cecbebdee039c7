/**
 * The account rules a command checks before it asks anyone for a password, on a real SQLite file.
 * Pinned here (the CLI's `user add` and `password new` call these instead of their own copies):
 *  - requireNewLogin normalises the login and refuses a taken one with ACCOUNT_EXISTS, the same
 *    message addAccount gives;
 *  - checkNewPassword refuses a bad label, scope or expiry, an unknown account, and an account at
 *    the limit of 25 active passwords with PASSWORD_LIMIT_REACHED; expired and revoked passwords
 *    do not count, and the expiry of one that is due is recorded first;
 *  - activePasswordCount counts what the limit counts.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPosternError, type ErrorCode } from '../errors.js';
import { openStore, type AccountRow, type Store } from '../store/index.js';
import { AccountService } from './service.js';
import { MAX_ACTIVE_PASSWORDS } from './validation.js';

const T0 = Date.UTC(2026, 0, 1);
let dir: string;
let store: Store;
let accounts: AccountService;
let now: number;
let alice: AccountRow;

beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'postern-accounts-'));
  store = openStore(path.join(dir, 'postern.db'));
  now = T0;
  accounts = new AccountService(store, randomBytes(32), () => now);
  // Mode master: no upstream secret to seal, so the test spends one primary hash, not two KDFs.
  alice = await accounts.addAccount('alice@example.org', 'primary of alice', { mode: 'master' });
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function refusal(fn: () => unknown, code: ErrorCode): Promise<string> {
  try {
    await fn();
  } catch (err) {
    expect(isPosternError(err, code), String(err)).toBe(true);
    return (err as Error).message;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

/** Rows as createPassword would leave them, without its KDF rounds (the limit is about rows). */
async function givePasswords(count: number, expiresAt: number | null = null): Promise<void> {
  for (let i = 0; i < count; i++) {
    await store.passwords.insert({
      publicId: randomBytes(4).toString('hex'), accountId: alice.id, digest: randomBytes(32), label: `device ${i}`,
      scopes: ['imap'], createdAt: now, expiresAt, dekSalt: null, dekBox: null,
    });
  }
}

describe('requireNewLogin', () => {
  it('returns the normalised login when it is free', async () => {
    expect(await accounts.requireNewLogin('  Bob@Example.org ')).toBe('bob@example.org');
  });

  it('refuses a taken login in any case, with the message addAccount gives', async () => {
    const early = await refusal(() => accounts.requireNewLogin(' ALICE@example.org'), 'ACCOUNT_EXISTS');
    expect(early).toBe('account "alice@example.org" already exists');
    expect(await refusal(() => accounts.addAccount('Alice@Example.org', 'x', { mode: 'master' }), 'ACCOUNT_EXISTS')).toBe(early);
  });

  it('refuses an invalid login before looking it up', async () => {
    await refusal(() => accounts.requireNewLogin('two words'), 'LOGIN_INVALID');
  });
});

describe('checkNewPassword', () => {
  it('passes a valid request and returns the account', async () => {
    expect((await accounts.checkNewPassword('ALICE@example.org', { label: 'laptop', scopes: 'imap,smtp', expires: '90d' })).id).toBe(alice.id);
  });

  it.each([
    [{ label: '' }, 'LABEL_INVALID'],
    [{ label: 'x'.repeat(65) }, 'LABEL_INVALID'],
    [{ label: 'ok', scopes: 'imap,nntp' }, 'SCOPE_INVALID'],
    [{ label: 'ok', expires: 'soon' }, 'EXPIRY_INVALID'],
    [{ label: 'ok', expires: '2020-01-01' }, 'EXPIRY_INVALID'],
  ] as const)('refuses %j with %s', async (request, code) => {
    await refusal(() => accounts.checkNewPassword('alice@example.org', request), code);
  });

  it('refuses an unknown account', async () => {
    await refusal(() => accounts.checkNewPassword('nobody', { label: 'laptop' }), 'ACCOUNT_NOT_FOUND');
  });

  it(`refuses at ${MAX_ACTIVE_PASSWORDS} active passwords with the limit in the message`, async () => {
    await givePasswords(MAX_ACTIVE_PASSWORDS - 1);
    await accounts.checkNewPassword('alice@example.org', { label: 'the 25th' });
    await givePasswords(1);
    expect(await accounts.activePasswordCount(alice)).toBe(MAX_ACTIVE_PASSWORDS);
    expect(await refusal(() => accounts.checkNewPassword('alice@example.org', { label: 'the 26th' }), 'PASSWORD_LIMIT_REACHED'))
      .toBe('"alice@example.org" already has 25 active app-specific passwords: revoke one first');
  });

  it('does not count revoked or expired passwords, and records the expiry that is due', async () => {
    await givePasswords(MAX_ACTIVE_PASSWORDS - 1);
    await givePasswords(1, T0 + 60_000);
    await refusal(() => accounts.checkNewPassword('alice@example.org', { label: 'one too many' }), 'PASSWORD_LIMIT_REACHED');
    now = T0 + 60_000;
    expect(await accounts.activePasswordCount(alice)).toBe(MAX_ACTIVE_PASSWORDS - 1);
    await accounts.checkNewPassword('alice@example.org', { label: 'after the expiry' });
    expect((await accounts.history('alice@example.org')).filter((e) => e.type === 'password.revoked').map((e) => e.detail)).toEqual([{ reason: 'expiry' }]);
    const revoked = await accounts.revokeAll('alice@example.org');
    expect(revoked).toHaveLength(MAX_ACTIVE_PASSWORDS - 1);
    expect(await accounts.activePasswordCount(alice)).toBe(0);
  });
});
