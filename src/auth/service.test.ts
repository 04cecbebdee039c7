/**
 * The authentication service on a real SQLite file with the real bcrypt worker pool. Pins:
 * - a successful login runs no bcrypt; every failure runs exactly one (unknown users and
 *   malformed logins included); an attempt from a blocked address runs none;
 * - the upstream credential comes back unsealed; revoked, expired and out-of-scope passwords fail;
 * - a password stops working at its expiry instant, without a restart;
 * - the primary-password sentence only on a clean record, and never when config turns it off;
 * - each failure is one log line with event, protocol, ip, user, reason — never a secret
 *   (the fixture scans every log line for every password used at close).
 */
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { primaryCheckPool, type PrimaryCheckPool } from './primary-check-pool.js';
import { PenaltyThrottle } from './penalty-throttle.js';
import type { PrimaryChecker } from './primary-checker.js';
import { MAX_CHECKS_PER_ADDRESS } from './service.js';
import { counting, createAuthFixture, type AuthFixture, type CountingChecker } from '../../test/helpers/auth-fixture.js';
import { sqliteDb } from '../store/index.js';

const PRIMARY = 'correct horse battery staple';
const FAST = { baseDelayMs: 0, maxDelayMs: 0, blockAfterFailures: 5, blockMs: 60_000, windowMs: 60_000 };

let pool: PrimaryCheckPool;
let fixture: AuthFixture | undefined;

beforeAll(() => {
  pool = primaryCheckPool({ workers: 1 });
});
afterAll(async () => {
  await pool.close();
});
afterEach(async () => {
  await fixture?.close();
  fixture = undefined;
});

/** The shared pool, counted per test; the fixture must not close it. */
function countedPool(): CountingChecker {
  const shared: PrimaryChecker = { compare: (p, h, k) => pool.compare(p, h, k), close: async () => {} };
  return counting(shared);
}

function setup(options: Partial<Parameters<typeof createAuthFixture>[0]> = {}) {
  const checker = countedPool();
  fixture = createAuthFixture({ checker, ...options });
  return { f: fixture, checker };
}

describe('success path', () => {
  it('records use in the history at most once a minute per password, with protocol and address', async () => {
    let now = Date.parse('2026-11-25T10:00:00Z');
    const { f } = setup({ clock: () => now });
    await f.addUser('dora@example.test', PRIMARY);
    const { password, publicId } = await f.newPassword('dora@example.test', PRIMARY);
    const used = async () => (await f.accounts.history('dora@example.test')).filter((e) => e.type === 'password.used');
    expect((await f.attempt('dora@example.test', password)).kind).toBe('accepted');
    expect((await f.attempt('dora@example.test', password)).kind).toBe('accepted');
    await f.writes.idle();
    expect(await used()).toHaveLength(1);
    expect((await used())[0]).toMatchObject({ passwordId: publicId, protocol: 'imap', address: '192.0.2.10' });
    now += 61_000;
    expect((await f.attempt('dora@example.test', password)).kind).toBe('accepted');
    await f.writes.idle();
    expect(await used()).toHaveLength(2);
    expect((await f.accounts.listPasswords('dora@example.test'))[0]).toMatchObject({ lastUsedAt: now, lastUsedProtocol: 'imap' });
  });

  it('accepts an app password with no bcrypt and returns the unsealed upstream credential', async () => {
    const { f, checker } = setup();
    await f.addUser('alice@example.test', PRIMARY);
    const { password, publicId } = await f.newPassword('alice@example.test', PRIMARY);
    for (const typed of [password, password.toUpperCase(), password.replace(/-/g, ''), ` ${password.replace(/-/g, ' ')} `]) {
      const outcome = await f.attempt('Alice@Example.test', typed);
      expect(outcome).toMatchObject({ kind: 'accepted', login: 'alice@example.test', publicId, credential: { username: 'alice@example.test', password: `upstream-${PRIMARY}` } });
    }
    expect(checker.calls).toBe(0);
    const ok = f.logs.events('auth.ok');
    expect(ok).toHaveLength(4);
    expect(ok[0]).toMatchObject({ protocol: 'imap', ip: '192.0.2.10', user: 'alice@example.test', passwordId: publicId });
  });

  it('admits only the scopes the password was made for', async () => {
    const { f, checker } = setup();
    await f.addUser('bob', PRIMARY);
    const { password } = await f.newPassword('bob', PRIMARY, { scopes: 'smtp' });
    expect((await f.attempt('bob', password, '192.0.2.10', 'smtp')).kind).toBe('accepted');
    expect(checker.calls).toBe(0);
    expect((await f.attempt('bob', password, '192.0.2.10', 'imap')).kind).toBe('failed');
    expect(checker.calls).toBe(1);
    expect(f.logs.events('auth.refused').at(-1)).toMatchObject({ reason: 'out_of_scope' });
  });
});

describe('upstream status bookkeeping', () => {
  it('queues nothing on a login when the status is unchanged; a flip made under a held lock lands after it, recorded once', async () => {
    const { f } = setup();
    await f.addUser('erin', PRIMARY);
    const { password } = await f.newPassword('erin', PRIMARY);
    const outcome = await f.attempt('erin', password);
    if (outcome.kind !== 'accepted') throw new Error(`expected accepted, got ${outcome.kind}`);
    await f.auth.reportUpstreamAccepted(outcome); // unknown → ok: a real change, written
    await f.writes.idle();
    const status = () => sqliteDb(f.store).prepare('SELECT upstream_status FROM accounts WHERE login = ?').pluck().get('erin');
    const rejections = async () => (await f.accounts.history('erin')).filter((e) => e.type === 'account.upstream_rejected');
    expect(status()).toBe('ok');

    // An admin command holds the write lock (a long transaction in another connection).
    const other = new Database(f.dbPath);
    other.exec('BEGIN IMMEDIATE');
    try {
      await f.auth.reportUpstreamAccepted(outcome); // ok → ok: a read only, nothing queued
      expect(f.writes.stats().queued).toBe(0);
      // ok → rejected, seen by two logins at once: both queued, neither waits for the lock.
      await f.auth.reportUpstreamRejected(outcome, 'imap');
      await f.auth.reportUpstreamRejected(outcome, 'imap');
      expect(f.writes.stats().queued).toBe(2);
      await expect.poll(() => f.writes.stats().retries).toBeGreaterThan(0);
      expect(status()).toBe('ok');
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    await f.writes.idle();
    expect(status()).toBe('rejected');
    expect(await rejections()).toHaveLength(1);
    expect(f.logs.events('upstream.credentials_rejected')).toHaveLength(2);
    expect(f.writes.stats().dropped).toBe(0);
  });
});

describe('failure path', () => {
  it('runs exactly one bcrypt per failure, whatever the failure', async () => {
    const { f, checker } = setup();
    await f.addUser('carol', PRIMARY);
    await f.addUser('dave', PRIMARY);
    const daves = await f.newPassword('dave', PRIMARY);
    const revoked = await f.newPassword('carol', PRIMARY);
    await f.accounts.revokePassword('carol', revoked.publicId);
    const cases: Array<[string, string, string]> = [
      ['carol', 'not-the-password', 'bad_password'],
      ['carol', 'abcd-efgh-ijkl-mnop', 'bad_password'],
      ['carol', daves.password, 'bad_password'],
      ['carol', revoked.password, 'password_revoked'],
      ['nobody@example.test', 'whatever-it-is', 'unknown_user'],
      ['has space', 'whatever-it-is', 'invalid_login'],
      ['', 'whatever-it-is', 'invalid_login'],
      ['carol', '', 'bad_password'],
      ['carol', 'x'.repeat(100_000), 'bad_password'],
    ];
    for (const [login, password, reason] of cases) {
      const before = checker.calls;
      expect(await f.attempt(login, password)).toEqual({ kind: 'failed' });
      expect(checker.calls - before, `${login} / ${reason}`).toBe(1);
      expect(f.logs.events('auth.refused').at(-1)).toMatchObject({ reason });
    }
  });

  it('refuses a blocked address without a bcrypt, answering like a failure', async () => {
    const { f, checker } = setup({ throttle: (log) => new PenaltyThrottle({ ...FAST, blockAfterFailures: 3, log }) });
    await f.addUser('erin', PRIMARY);
    const { password } = await f.newPassword('erin', PRIMARY);
    for (let i = 0; i < 3; i++) await f.attempt('erin', `guess-number-${i}`, '198.51.100.9');
    expect(checker.calls).toBe(3);
    // Even the right password is refused from the blocked address — without looking at it.
    expect(await f.attempt('erin', password, '198.51.100.9')).toEqual({ kind: 'throttled' });
    expect(await f.attempt('erin', 'guess-number-4', '198.51.100.9')).toEqual({ kind: 'throttled' });
    expect(checker.calls).toBe(3);
    expect(f.logs.events('auth.refused').at(-1)).toMatchObject({ reason: 'throttled', ip: '198.51.100.9' });
    expect(f.logs.events('auth.blocked')).toHaveLength(1);
    // The owner, from a clean address, still gets in.
    expect((await f.attempt('erin', password, '203.0.113.5')).kind).toBe('accepted');
  });

  it('lets one address run only a few bcrypt checks at once; other addresses are not held up', async () => {
    const { f, checker } = setup();
    await f.addUser('olga', PRIMARY);
    const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => f.attempt(i % 2 ? 'olga' : `nobody${i}`, `burst-guess-${i}`, '198.51.100.50')));
    expect(burst.every((o) => o.kind === 'failed')).toBe(true);
    expect(checker.calls).toBe(MAX_CHECKS_PER_ADDRESS);
    expect(f.logs.events('auth.refused')).toHaveLength(20);
    // Once those are answered, the address gets its checks again; other addresses never lost theirs.
    expect(await f.attempt('olga', PRIMARY, '198.51.100.50')).toMatchObject({ kind: 'primary-refused' });
    const spread = await Promise.all(Array.from({ length: 6 }, (_, i) => f.attempt('olga', `spread-guess-${i}`, `203.0.113.${i + 1}`)));
    expect(spread.every((o) => o.kind === 'failed')).toBe(true);
    expect(checker.calls).toBe(MAX_CHECKS_PER_ADDRESS + 1 + 6);
  });

  it('holds the failure answer back for the penalty', async () => {
    const { f } = setup({ throttle: new PenaltyThrottle({ ...FAST, baseDelayMs: 300, maxDelayMs: 300 }) });
    await f.addUser('frank', PRIMARY);
    const started = Date.now();
    await f.attempt('frank', 'wrong-password-1');
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('an expired password stops working at its expiry instant, without a restart', async () => {
    const clock = { now: Date.parse('2030-01-01T00:00:00Z') };
    const { f } = setup({ clock: () => clock.now });
    await f.addUser('gina', PRIMARY);
    const { password, publicId } = await f.newPassword('gina', PRIMARY, { expires: '30m' });
    const expiresAt = clock.now + 30 * 60_000;
    const fired: string[] = [];
    const outcome = await f.attempt('gina', password);
    expect(outcome.kind).toBe('accepted');
    f.auth.watchRevocation((outcome as { passwordId: number }).passwordId, (reason) => fired.push(reason));
    clock.now = expiresAt - 1;
    expect((await f.attempt('gina', password)).kind).toBe('accepted');
    clock.now = expiresAt;
    expect(await f.attempt('gina', password)).toEqual({ kind: 'failed' });
    expect(f.logs.events('auth.refused').at(-1)).toMatchObject({ reason: 'password_expired' });
    await expect.poll(() => fired, { timeout: 2000 }).toEqual(['expiry']);
    expect(publicId).toMatch(/^[0-9a-f]{8}$/);
  });
});

describe('primary password', () => {
  it('gives the sentence on a clean record only, and counts it as a failure', async () => {
    const { f, checker } = setup({ throttle: new PenaltyThrottle(FAST) });
    await f.addUser('hana', PRIMARY);
    expect(await f.attempt('hana', PRIMARY, '203.0.113.1')).toEqual({ kind: 'primary-refused', hint: true });
    expect(checker.calls).toBe(1);
    // The same client retrying with its saved primary password keeps getting the sentence...
    expect(await f.attempt('hana', PRIMARY, '203.0.113.1')).toEqual({ kind: 'primary-refused', hint: true });
    // ... but after any other failure, from here or elsewhere, it is just a failure.
    await f.attempt('hana', 'a-wrong-guess', '198.51.100.1');
    expect(await f.attempt('hana', PRIMARY, '203.0.113.1')).toEqual({ kind: 'primary-refused', hint: false });
    expect(await f.attempt('hana', PRIMARY, '203.0.113.2')).toEqual({ kind: 'primary-refused', hint: false });
    const refused = f.logs.events('auth.primary_refused');
    expect(refused).toHaveLength(4);
    expect(refused[0]).toMatchObject({ protocol: 'imap', ip: '203.0.113.1', user: 'hana', reason: 'primary_password' });
    await f.writes.idle();
    const history = (await f.accounts.history('hana')).map((e) => e.type);
    expect(history.filter((t) => t === 'primary.refused')).toHaveLength(4);
    expect(history.filter((t) => t === 'login.failed')).toHaveLength(1);
  });

  it('never gives the sentence when config turns it off', async () => {
    const { f } = setup({ throttle: new PenaltyThrottle(FAST), primaryPasswordHint: false });
    await f.addUser('ivan', PRIMARY);
    expect(await f.attempt('ivan', PRIMARY)).toEqual({ kind: 'primary-refused', hint: false });
  });

  it('another account\'s primary password is a plain failure', async () => {
    const { f } = setup({ throttle: new PenaltyThrottle(FAST) });
    await f.addUser('judy', PRIMARY);
    await f.addUser('kim', 'kims own primary password');
    expect(await f.attempt('judy', 'kims own primary password')).toEqual({ kind: 'failed' });
  });
});

describe('failure log lines', () => {
  it('a login cannot forge the address in the line or the message', async () => {
    const { f } = setup();
    await f.attempt('x"ip=6.6.6.6"}{"ip":"6.6.6.6', 'wrong-password', '192.0.2.77');
    const line = f.logs.lines.find((l) => l.includes('"auth.refused"'))!;
    const entry = JSON.parse(line) as Record<string, string>;
    expect(entry.ip).toBe('192.0.2.77');
    expect(line.indexOf('"ip":"192.0.2.77"')).toBeLessThan(line.indexOf('"user"'));
    expect(entry.msg).toMatch(/^authentication failed ip=192\.0\.2\.77 protocol=imap reason=unknown_user user="/);
    expect(line.match(/"ip":"/g)).toHaveLength(1);
  });

  it('does not log a login that looks like an app password for an unknown user', async () => {
    const { f } = setup();
    await f.addUser('lena', PRIMARY);
    const { password } = await f.newPassword('lena', PRIMARY);
    await f.attempt(password, 'lena');
    expect(f.logs.events('auth.refused').at(-1)).toMatchObject({ user: '[looks like an app password]', reason: 'unknown_user' });
  });

  it('attack on the log: a password pasted into the user name with a host after it is not logged either', async () => {
    const { f } = setup();
    await f.addUser('lena', PRIMARY);
    const { password } = await f.newPassword('lena', PRIMARY);
    for (const login of [`${password}@evil.example:143`, `${password.replaceAll('-', '')}@example.org`, `x%${password}`]) {
      await f.attempt(login, password);
      expect(f.logs.events('auth.refused').at(-1)).toMatchObject({ user: '[looks like an app password]', reason: 'unknown_user' });
    }
    expect(f.logs.lines.join('\n')).not.toContain(password);
  });

  it('answers "failed" and says why in the log when the pool cannot run the check', async () => {
    const broken: PrimaryChecker = { compare: async () => { throw new Error('Task queue is at limit'); }, close: async () => {} };
    const { f } = setup({ checker: broken });
    await f.addUser('mona', PRIMARY);
    expect(await f.attempt('mona', PRIMARY)).toEqual({ kind: 'failed' });
    expect(await f.attempt('mona', PRIMARY)).toEqual({ kind: 'failed' });
    expect(f.logs.events('auth.primary_check_unavailable')).toHaveLength(1);
  });
});
