/**
 * The account page's sign-in (AuthService.signInWithPrimary) is the mail protocols' authentication
 * service with the primary password as the credential. Pins:
 *  - enumeration: an unknown login, a malformed login and a wrong password get the one answer,
 *    each after exactly one hash check, and only known accounts get a history entry;
 *  - an app-specific password never signs in (it is not the primary password), nor does another
 *    account's primary password;
 *  - brute force: failures count in the same throttle as IMAP logins, so a block earned on the
 *    page holds for IMAP from that address too, and the reverse; the failure line is the one
 *    fail2ban reads, with protocol `portal`;
 *  - no password reaches a log line (the fixture scans at close).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { counting, createAuthFixture, type AuthFixture } from '../../test/helpers/auth-fixture.js';
import { inlinePrimaryChecker } from './primary-checker.js';
import { PenaltyThrottle } from './penalty-throttle.js';

const PRIMARY = 'frida-primary-Secret-1';
const FAST = { baseDelayMs: 0, maxDelayMs: 0, blockAfterFailures: 3, blockMs: 60_000, windowMs: 60_000, trustedNetworks: [] };

let f: AuthFixture;
afterEach(async () => f?.close());

const portal = (login: string, password: string, clientAddress = '192.0.2.20') => {
  if (password.length >= 6) f.secrets.add(password);
  return f.auth.signInWithPrimary({ login, password, clientAddress, browser: 'Test/1.0' });
};

describe('primary sign-in for the account page', () => {
  it('account enumeration: unknown, malformed and wrong-password logins get one answer, one hash check each', async () => {
    const checker = counting(inlinePrimaryChecker());
    f = createAuthFixture({ checker });
    await f.addUser('frida', PRIMARY);
    const cases: Array<[string, string, string]> = [
      ['frida', 'not-fridas-password', 'bad_password'],
      ['nobody@example.test', 'not-fridas-password', 'unknown_user'],
      ['has space', 'not-fridas-password', 'invalid_login'],
    ];
    for (const [login, password, reason] of cases) {
      const before = checker.calls;
      expect(await portal(login, password)).toEqual({ kind: 'failed' });
      expect(checker.calls - before).toBe(1);
      expect(f.logs.events('auth.refused').at(-1)).toMatchObject({ protocol: 'portal', reason, ip: '192.0.2.20' });
    }
    await f.writes.idle();
    const failures = (await f.store.events.listForAccount((await f.accounts.getAccount('frida')).id)).filter((e) => e.type === 'login.failed');
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ protocol: 'portal', address: '192.0.2.20', detail: { reason: 'bad_password', browser: 'Test/1.0' } });
    const outcome = await portal('FRIDA', PRIMARY);
    expect(outcome.kind).toBe('accepted');
  });

  it('an app-specific password (or another account\'s primary password) never signs in to the page', async () => {
    f = createAuthFixture();
    await f.addUser('frida', PRIMARY);
    await f.addUser('gus', 'gus-primary-Secret-2');
    const { password } = await f.newPassword('frida', PRIMARY);
    expect((await f.login('frida', password)).kind).toBe('accepted');
    expect(await portal('frida', password)).toEqual({ kind: 'failed' });
    expect(await portal('frida', 'gus-primary-Secret-2')).toEqual({ kind: 'failed' });
  });

  it('brute force across doors: failures on the page and over IMAP share one throttle', async () => {
    f = createAuthFixture({ throttle: (log) => new PenaltyThrottle({ ...FAST, log }) });
    await f.addUser('frida', PRIMARY);
    const { password } = await f.newPassword('frida', PRIMARY);
    await portal('frida', 'guess-number-1', '198.51.100.7');
    await f.attempt('frida', 'guess-number-2', '198.51.100.7');
    await portal('frida', 'guess-number-3', '198.51.100.7');
    // Blocked everywhere from that address, even with the right passwords.
    expect(await portal('frida', PRIMARY, '198.51.100.7')).toEqual({ kind: 'throttled' });
    expect((await f.attempt('frida', password, '198.51.100.7')).kind).toBe('throttled');
    expect(f.logs.events('auth.blocked')).toHaveLength(1);
    // The owner, from another address, still signs in.
    expect((await portal('frida', PRIMARY, '203.0.113.8')).kind).toBe('accepted');
  });
});
