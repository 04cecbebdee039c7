/**
 * Second factors against a real SQLite store and a movable clock. Pins:
 *  - TOTP replay: a code is accepted once; the same code again, or any code of a step at or
 *    before the last accepted one (a code seen over a shoulder, an older code), is refused —
 *    also through a second service on another connection (a second postern instance);
 *  - a proposed key becomes the account's only once confirmed with a current code, and the
 *    confirming step counts as used;
 *  - recovery codes: ten, distinct, each accepted once, whatever the case or separators; stored
 *    as digests (neither a code nor the TOTP key is in the database file);
 *  - the key sealed for one session cannot be opened as another's (AAD binds it);
 *  - the admin's reset removes everything and ends the account's page sessions;
 *  - a passkey-only account (no TOTP key): its recovery codes are its codes, a six-digit guess is a
 *    wrong recovery code; an app confirmed later keeps those codes and issues none.
 */
import { readFileSync } from 'node:fs';
import { Secret, TOTP } from 'otpauth';
import { afterEach, describe, expect, it } from 'vitest';
import { createAuthFixture, MOVABLE_CLOCK_START, type AuthFixture } from '../../test/helpers/auth-fixture.js';
import { openStore, sqliteDb } from '../store/index.js';
import { resetSecondFactor } from './admin.js';
import { SecondFactorService } from './service.js';

const PRIMARY = 'hanna-primary-Secret-1';
const WHERE = { address: '192.0.2.30', browser: 'Test/1.0' };

let f: AuthFixture;
afterEach(async () => f?.close());

function code(base32: string, at: number): string {
  return new TOTP({ secret: Secret.fromBase32(base32), algorithm: 'SHA1', digits: 6, period: 30 }).generate({ timestamp: at });
}

async function enrolled() {
  f = createAuthFixture({ clock: 'movable' });
  await f.addUser('hanna', PRIMARY);
  const account = await f.accounts.getAccount('hanna');
  const clock = () => f.now.value;
  const factors = new SecondFactorService(f.store, f.digestKey, 'postern-test', clock);
  const sessionId = await f.store.portalSessions.insert({ tokenDigest: Buffer.alloc(32, 1), accountId: account.id, stage: 'password', at: clock(), primaryChangedAt: account.primaryChangedAt, address: WHERE.address, browser: WHERE.browser });
  const proposal = factors.propose(account, sessionId);
  const enrolCode = code(proposal.base32, clock());
  const codes = (await factors.confirm(account, sessionId, proposal.box, enrolCode, WHERE))!;
  return { account, factors, sessionId, proposal, enrolCode, codes, clock };
}

describe('second factors', () => {
  it('TOTP replay: a code is accepted at most once, and never a step at or before the last accepted', async () => {
    const { account, factors, proposal, enrolCode } = await enrolled();
    // The enrolment code's step is used already.
    expect(await factors.verify(account, enrolCode, WHERE)).toEqual({ ok: false });
    f.now.value += 30_000;
    const next = code(proposal.base32, f.now.value);
    expect(await factors.verify(account, next, WHERE)).toEqual({ ok: true, via: 'totp' });
    expect(await factors.verify(account, next, WHERE)).toEqual({ ok: false });
    // The code of the step before is still inside the drift window, but older than the last accepted.
    expect(await factors.verify(account, code(proposal.base32, f.now.value - 30_000), WHERE)).toEqual({ ok: false });
    // A second instance, on its own connection, sees the same last step.
    const other = openStore(f.dbPath);
    try {
      const twin = new SecondFactorService(other, f.digestKey, 'postern-test', () => f.now.value);
      expect(await twin.verify(account, next, WHERE)).toEqual({ ok: false });
      f.now.value += 30_000;
      expect(await twin.verify(account, code(proposal.base32, f.now.value), WHERE)).toEqual({ ok: true, via: 'totp' });
    } finally {
      await other.close();
    }
    const failed = (await f.store.events.listForAccount(account.id)).filter((e) => e.type === 'second_factor.failed');
    expect(failed.map((e) => e.detail?.method)).toEqual(Array(4).fill('totp-replayed'));
  });

  it('a proposal becomes the account\'s only when confirmed with a current code; wrong codes are refused', async () => {
    f = createAuthFixture({ clock: 'movable' });
    await f.addUser('hanna', PRIMARY);
    const account = await f.accounts.getAccount('hanna');
    const factors = new SecondFactorService(f.store, f.digestKey, 'postern-test', () => f.now.value);
    const proposal = factors.propose(account, 1);
    expect(proposal.uri).toMatch(/^otpauth:\/\/totp\/postern-test:hanna\?/);
    expect(await factors.isEnrolled(account.id)).toBe(false);
    expect(await factors.confirm(account, 1, proposal.box, '000000', WHERE)).toBeNull();
    expect(await factors.confirm(account, 1, proposal.box, code(proposal.base32, f.now.value - 5 * 60_000), WHERE)).toBeNull();
    expect(await factors.isEnrolled(account.id)).toBe(false);
    // Sealed for session 1: session 2 cannot open it.
    expect(() => factors.openProposal(account, 2, proposal.box)).toThrow(/unwrapped/);
    expect(await factors.confirm(account, 1, proposal.box, code(proposal.base32, f.now.value), WHERE)).toHaveLength(10);
    expect(await factors.isEnrolled(account.id)).toBe(true);
  });

  it('recovery codes: ten distinct, each accepted once in any case or spacing, none stored in clear', async () => {
    const { account, factors, codes, proposal } = await enrolled();
    expect(new Set(codes).size).toBe(10);
    for (const c of codes) expect(c).toMatch(/^[a-z2-9]{5}-[a-z2-9]{5}$/);
    expect(await factors.verify(account, codes[0]!.toUpperCase().replace('-', ' '), WHERE)).toEqual({ ok: true, via: 'recovery' });
    expect(await factors.verify(account, codes[0]!, WHERE)).toEqual({ ok: false });
    expect(await factors.recoveryCodesLeft(account.id)).toBe(9);
    sqliteDb(f.store).pragma('wal_checkpoint(TRUNCATE)');
    const bytes = readFileSync(f.dbPath);
    for (const secret of [...codes, ...codes.map((c) => c.replace('-', '')), proposal.base32]) {
      expect(bytes.includes(Buffer.from(secret, 'utf8'))).toBe(false);
    }
  });

  it('the admin reset removes the key and the codes and ends the page sessions', async () => {
    const { account, factors, codes, sessionId } = await enrolled();
    expect(await resetSecondFactor(f.store, account, MOVABLE_CLOCK_START)).toBe(true);
    expect(await factors.isEnrolled(account.id)).toBe(false);
    expect(await factors.recoveryCodesLeft(account.id)).toBe(0);
    expect(sqliteDb(f.store).prepare('SELECT ended_at AS e FROM portal_sessions WHERE id = ?').get(sessionId)).toEqual({ e: MOVABLE_CLOCK_START });
    await expect(factors.verify(account, codes[1]!, WHERE)).rejects.toThrow();
    expect(await resetSecondFactor(f.store, account, MOVABLE_CLOCK_START)).toBe(false);
    expect((await f.store.events.listForAccount(account.id)).filter((e) => e.type === 'second_factor.reset')).toHaveLength(1);
  });

  it('a passkey-only account: recovery codes are its codes; an app added later keeps them', async () => {
    f = createAuthFixture({ clock: 'movable' });
    await f.addUser('hanna', PRIMARY);
    const account = await f.accounts.getAccount('hanna');
    const factors = new SecondFactorService(f.store, f.digestKey, 'postern-test', () => f.now.value);
    const { codes, digests } = factors.newRecoveryCodes();
    await f.store.transaction(async (tx) => {
      await tx.secondFactors.setRecoveryCodes(account.id, digests);
      await tx.passkeys.insert({ accountId: account.id, credentialId: Buffer.from('cred'), publicKey: Buffer.from('key'), counter: 0, transports: [], name: 'Phone', at: f.now.value });
    });
    expect(await factors.isEnrolled(account.id)).toBe(true);
    expect(await factors.factorsOf(account.id)).toEqual({ authenticatorApp: false, passkeys: 1 });
    expect(await factors.verify(account, '123456', WHERE)).toEqual({ ok: false });
    expect(await factors.verify(account, codes[0]!, WHERE)).toEqual({ ok: true, via: 'recovery' });
    const failed = (await f.store.events.listForAccount(account.id)).filter((e) => e.type === 'second_factor.failed');
    expect(failed.map((e) => e.detail?.method)).toEqual(['recovery']);
    const proposal = factors.propose(account, 7);
    expect(await factors.confirm(account, 7, proposal.box, code(proposal.base32, f.now.value), WHERE)).toEqual([]);
    expect(await factors.factorsOf(account.id)).toEqual({ authenticatorApp: true, passkeys: 1 });
    expect(await factors.recoveryCodesLeft(account.id)).toBe(9);
    expect(await factors.verify(account, codes[1]!, WHERE)).toEqual({ ok: true, via: 'recovery' });
  });
});
