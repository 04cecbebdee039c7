/**
 * The rules of accounts and app-specific passwords, on a real SQLite file:
 *  - at most 25 active passwords; the 26th is refused with a clear message; revoked and expired
 *    ones do not count;
 *  - a password is shown once: nothing the store returns or keeps can give the plaintext back;
 *  - revoke and revoke-all refuse the very next login;
 *  - a primary-password change revokes every app password in the same transaction (if any part
 *    fails, nothing changes);
 *  - expiry (moved clock): refused at its instant; recorded at that instant with its sealed key
 *    dropped, by admin commands and by the proxy's own sweep, exactly once; scopes, label validation (any script; no control or bidi characters),
 *    login names case-insensitive and trimmed, app passwords accepted in any case/spacing;
 *  - a primary password longer than bcrypt's 72 bytes counts in full: one that shares only its
 *    first 72 bytes is a wrong password, for the admin CLI and at login alike.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPosternError } from '../errors.js';
import { validateLabel } from './validation.js';
import { startExpirySweep } from '../store/expiry.js';
import { createLogSink } from '../../test/helpers/log-sink.js';
import { createAuthFixture, type AuthFixture } from '../../test/helpers/auth-fixture.js';
import { sqliteDb } from '../store/index.js';

let f: AuthFixture;
const PRIMARY = 'correct horse battery staple';

beforeEach(async () => {
  f = createAuthFixture({ clock: 'movable' });
  await f.accounts.addAccount('alice@example.org', PRIMARY, { mode: 'password', secret: PRIMARY });
});
afterEach(() => f.close());

async function expectCode(fn: () => unknown, code: string): Promise<Error> {
  try {
    await fn();
  } catch (err) {
    expect(isPosternError(err)).toBe(true);
    expect((err as { code: string }).code).toBe(code);
    return err as Error;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

const newPassword = async (label = 'laptop', extra: { scopes?: string; expires?: string } = {}) =>
  await f.accounts.createPassword('alice@example.org', PRIMARY, { label, ...extra });

describe('the 25-password limit', () => {
  it('refuses the 26th active password with a message naming the limit, and counts only active ones', async () => {
    const created = [];
    for (let i = 0; i < 25; i++) created.push(await newPassword(`device ${i + 1}`));
    expect(new Set(created.map((c) => c.publicId)).size).toBe(25);
    const err = await expectCode(() => newPassword('one too many'), 'PASSWORD_LIMIT_REACHED');
    expect(err.message).toMatch(/already has 25 active app-specific passwords: revoke one first/);
    expect(await f.accounts.listPasswords('alice@example.org')).toHaveLength(25);

    await f.accounts.revokePassword('alice@example.org', created[0]!.publicId);
    const replacement = await newPassword('replacement');
    expect((await f.login('alice@example.org', replacement.password)).kind).toBe('accepted');
    await expectCode(() => newPassword('still too many'), 'PASSWORD_LIMIT_REACHED');
  }, 120_000); // 27 bcrypt + scrypt rounds, on a shared machine

  it('does not count expired passwords', async () => {
    for (let i = 0; i < 25; i++) await newPassword(`short ${i}`, { expires: '1h' });
    await expectCode(() => newPassword('blocked'), 'PASSWORD_LIMIT_REACHED');
    f.now.value += 3_600_001;
    await expect(newPassword('after expiry')).resolves.toBeDefined();
  }, 120_000);
});

describe('shown once', () => {
  it('returns the plaintext only from createPassword; rows, history and the database never hold it', async () => {
    const created = await newPassword('phone');
    expect(created.password).toMatch(/^[a-z]{4}-[a-z]{4}-[a-z]{4}-[a-z]{4}$/);
    const letters = created.password.replace(/-/g, '');
    const rows = JSON.stringify(await f.accounts.listPasswords('alice@example.org'));
    const history = JSON.stringify(await f.accounts.history('alice@example.org'));
    for (const text of [rows, history]) {
      expect(text).not.toContain(created.password);
      expect(text).not.toContain(letters);
    }
    // Every column of every row, read straight from SQLite.
    const dump = JSON.stringify(sqliteDb(f.store).prepare('SELECT * FROM app_passwords').all(), (_k, v) =>
      v && typeof v === 'object' && v.type === 'Buffer' ? Buffer.from(v.data).toString('latin1') : v);
    expect(dump).not.toContain(letters);
  });
});

describe('revocation', () => {
  it('revoke refuses the next login of that password only, and records why', async () => {
    const a = await newPassword('a');
    const b = await newPassword('b');
    expect((await f.login('alice@example.org', a.password)).kind).toBe('accepted');
    await f.accounts.revokePassword('alice@example.org', a.publicId);
    expect((await f.login('alice@example.org', a.password)).kind).toBe('failed');
    expect((await f.login('alice@example.org', b.password)).kind).toBe('accepted');
    const row = (await f.accounts.listPasswords('alice@example.org')).find((p) => p.publicId === a.publicId)!;
    expect(row.revokedReason).toBe('admin');
    expect(row.dekBox).toBeNull(); // a revoked password loses its sealed data key
    expect((await f.accounts.history('alice@example.org')).some((e) => e.type === 'password.revoked' && e.passwordId === a.publicId && e.detail?.reason === 'admin')).toBe(true);
    await expectCode(() => f.accounts.revokePassword('alice@example.org', a.publicId), 'PASSWORD_NOT_FOUND');
    await expectCode(() => f.accounts.revokePassword('alice@example.org', 'deadbeef'), 'PASSWORD_NOT_FOUND');
  });

  it('will not revoke another account\'s password', async () => {
    await f.accounts.addAccount('bob@example.org', 'bobs primary', { mode: 'password', secret: 'bobs primary' });
    const bobs = await f.accounts.createPassword('bob@example.org', 'bobs primary', { label: 'bob' });
    await expectCode(() => f.accounts.revokePassword('alice@example.org', bobs.publicId), 'PASSWORD_NOT_FOUND');
  });

  it('revoke-all refuses every password of the account and leaves other accounts alone', async () => {
    await f.accounts.addAccount('bob@example.org', 'bobs primary', { mode: 'password', secret: 'bobs primary' });
    const bobs = await f.accounts.createPassword('bob@example.org', 'bobs primary', { label: 'bob' });
    const mine = [await newPassword('1'), await newPassword('2'), await newPassword('3')];
    expect((await f.accounts.revokeAll('alice@example.org')).sort()).toEqual(mine.map((m) => m.publicId).sort());
    for (const m of mine) expect((await f.login('alice@example.org', m.password)).kind).toBe('failed');
    expect((await f.login('bob@example.org', bobs.password)).kind).toBe('accepted');
    expect(await f.accounts.revokeAll('alice@example.org')).toEqual([]);
  });
});

describe('primary password change', () => {
  it('revokes every app password in the same transaction and re-seals the upstream secret', async () => {
    const before = [await newPassword('1'), await newPassword('2')];
    f.now.value += 1000;
    const revoked = await f.accounts.setPrimaryPassword('alice@example.org', 'a brand new primary', 'new upstream secret');
    expect(revoked.sort()).toEqual(before.map((b) => b.publicId).sort());
    const account = await f.accounts.getAccount('alice@example.org');
    for (const p of await f.accounts.listPasswords('alice@example.org')) {
      expect(p.revokedReason).toBe('primary-password-change');
      expect(p.revokedAt).toBe(account.primaryChangedAt);
    }
    for (const b of before) expect((await f.login('alice@example.org', b.password)).kind).toBe('failed');
    // The old primary no longer creates passwords; the new one does, and carries the new secret.
    await expectCode(() => f.accounts.createPassword('alice@example.org', PRIMARY, { label: 'x' }), 'PRIMARY_PASSWORD_WRONG');
    const fresh = await f.accounts.createPassword('alice@example.org', 'a brand new primary', { label: 'fresh' });
    const outcome = await f.login('alice@example.org', fresh.password);
    expect(outcome.kind === 'accepted' && outcome.credential.kind === 'password' && outcome.credential.password).toBe('new upstream secret');
  });

  it('changes nothing when any part of the transaction fails', async () => {
    const kept = await newPassword('kept');
    const hashBefore = (await f.accounts.getAccount('alice@example.org')).primaryHash;
    // Make the last write of the change (a history entry of the revocation) fail.
    sqliteDb(f.store).exec(`CREATE TEMP TRIGGER fail_revoke_event BEFORE INSERT ON events WHEN NEW.type = 'password.revoked'
      BEGIN SELECT RAISE(ABORT, 'injected failure'); END`);
    await expect(f.accounts.setPrimaryPassword('alice@example.org', 'another primary')).rejects.toThrow(/injected failure/);
    sqliteDb(f.store).exec('DROP TRIGGER fail_revoke_event');
    expect((await f.accounts.getAccount('alice@example.org')).primaryHash).toBe(hashBefore);
    expect((await f.login('alice@example.org', kept.password)).kind).toBe('accepted');
    expect((await f.accounts.history('alice@example.org')).some((e) => e.type === 'primary.changed')).toBe(false);
  });
});

describe('expiry', () => {
  it('refuses a password from the moment it expires and records the expiry in the history', async () => {
    const p = await newPassword('temporary', { expires: '2h' });
    expect(p.expiresAt).toBe(f.now.value + 2 * 3_600_000);
    f.now.value += 2 * 3_600_000 - 1;
    expect((await f.login('alice@example.org', p.password)).kind).toBe('accepted');
    f.now.value += 1;
    expect((await f.login('alice@example.org', p.password)).kind).toBe('failed');
    const dekBox = () => (sqliteDb(f.store).prepare('SELECT dek_box AS box FROM app_passwords WHERE public_id = ?').get(p.publicId) as { box: Buffer | null }).box;
    expect(dekBox()).not.toBeNull(); // logins refuse it already; the sweep has not run yet
    f.now.value += 60_000; // the sweep runs a minute late: the history still says when it expired
    const row = (await f.accounts.listPasswords('alice@example.org'))[0]!;
    expect(row.revokedReason).toBe('expiry');
    expect(row.revokedAt).toBe(p.expiresAt);
    expect(dekBox()).toBeNull(); // an expired password can no longer open anything in a copied database
    expect((await f.accounts.history('alice@example.org')).filter((e) => e.type === 'password.revoked' && e.detail?.reason === 'expiry'))
      .toEqual([expect.objectContaining({ at: p.expiresAt, login: 'alice@example.org', passwordId: p.publicId })]);
    await f.accounts.expireDue(); // a second sweep (another process) records nothing more
    expect((await f.accounts.history('alice@example.org')).filter((e) => e.detail?.reason === 'expiry')).toHaveLength(1);
  });

  it('the running proxy sweeps expired passwords itself: history entry and sealed key gone without any admin command', async () => {
    const sink = createLogSink();
    const sweep = startExpirySweep(f.store, sink.logger, { everyMs: 20, clock: () => f.now.value });
    try {
      const p = await newPassword('short', { expires: '1h' });
      f.now.value += 3_600_000;
      await sink.waitForEvent('password.expired');
      const events = (await f.store.events.listForAccount((await f.accounts.getAccount('alice@example.org')).id)).filter((e) => e.detail?.reason === 'expiry');
      expect(events).toEqual([expect.objectContaining({ at: p.expiresAt, passwordId: p.publicId })]);
      expect(sqliteDb(f.store).prepare('SELECT dek_box FROM app_passwords WHERE public_id = ?').pluck().get(p.publicId)).toBeNull();
    } finally {
      sweep.stop();
    }
  });

  it('accepts ISO dates and refuses expiries in the past or malformed', async () => {
    const p = await newPassword('until', { expires: '2026-06-01T00:00:00Z' });
    expect(p.expiresAt).toBe(Date.UTC(2026, 5, 1));
    await expectCode(() => newPassword('past', { expires: '2025-01-01' }), 'EXPIRY_INVALID');
    await expectCode(() => newPassword('bad', { expires: 'tomorrow' }), 'EXPIRY_INVALID');
    await expectCode(() => newPassword('zero', { expires: '0d' }), 'EXPIRY_INVALID');
  });
});

describe('scopes', () => {
  it('admits only the protocols a password is scoped to', async () => {
    const mailOnly = await newPassword('mail', { scopes: 'imap, SMTP' });
    expect(mailOnly.scopes).toEqual(['imap', 'smtp']);
    expect((await f.login('alice@example.org', mailOnly.password, 'imap')).kind).toBe('accepted');
    expect((await f.login('alice@example.org', mailOnly.password, 'smtp')).kind).toBe('accepted');
    expect((await f.login('alice@example.org', mailOnly.password, 'caldav')).kind).toBe('failed');
    expect((await f.login('alice@example.org', mailOnly.password, 'carddav')).kind).toBe('failed');
    expect((await newPassword('all')).scopes).toEqual(['imap', 'pop3', 'smtp', 'caldav', 'carddav']);
    await expectCode(() => newPassword('bad', { scopes: 'imap,nntp' }), 'SCOPE_INVALID');
    await expectCode(() => newPassword('none', { scopes: ' , ' }), 'SCOPE_INVALID');
  });
});

describe('labels', () => {
  it('accepts any script up to 64 characters and stores it as given (NFC, trimmed)', async () => {
    for (const label of ['iPhone de María', 'Телефон', '手机上的邮件', 'البريد على الهاتف', 'मेरा लैपटॉप', '📱 phone', 'x'.repeat(64), '😀'.repeat(64)]) {
      expect((await newPassword(label)).label).toBe(label);
    }
    expect(await f.accounts.revokeAll('alice@example.org')).toHaveLength(8);
    expect(validateLabel('  padded  ')).toBe('padded');
    expect(validateLabel('Cafe\u0301')).toBe('Café'); // NFC
  });

  it('refuses empty, too long, control and bidi-override characters before asking anything else', async () => {
    for (const bad of ['', '   ', 'x'.repeat(65), '😀'.repeat(65), 'line\nbreak', 'tab\there', 'esc\u001b[31mred', 'bell\u0007', 'c1\u0085', 'del\u007f', 'rtl\u202eevil', 'isolate\u2066x']) {
      await expectCode(() => newPassword(bad), 'LABEL_INVALID');
    }
    expect(await f.accounts.listPasswords('alice@example.org')).toHaveLength(0);
  });
});

describe('login names', () => {
  it('are trimmed and case-insensitive everywhere', async () => {
    await f.accounts.addAccount('  Bob@Example.ORG ', 'bobs primary', { mode: 'password', secret: 'bobs primary' });
    expect((await f.accounts.getAccount('bob@example.org')).login).toBe('bob@example.org');
    await expectCode(() => f.accounts.addAccount('BOB@example.org', 'other', { mode: 'password', secret: 'other' }), 'ACCOUNT_EXISTS');
    const p = await f.accounts.createPassword('BOB@EXAMPLE.ORG', 'bobs primary', { label: 'x' });
    expect((await f.login(' BOB@example.org ', p.password)).kind).toBe('accepted');
    await expectCode(() => f.accounts.addAccount('has space@example.org', 'pw', { mode: 'password', secret: 'pw' }), 'LOGIN_INVALID');
    await expectCode(() => f.accounts.addAccount('ctl\u0007@example.org', 'pw', { mode: 'password', secret: 'pw' }), 'LOGIN_INVALID');
    await expectCode(() => f.accounts.getAccount('nobody@example.org'), 'ACCOUNT_NOT_FOUND');
  });

  it('app passwords are accepted with or without hyphens, in any case, with surrounding spaces', async () => {
    const p = await newPassword('typed');
    const letters = p.password.replace(/-/g, '');
    for (const form of [p.password, letters, letters.toUpperCase(), `  ${p.password.toUpperCase()}  `, p.password.replace(/-/g, ' ')]) {
      expect((await f.login('alice@example.org', form)).kind).toBe('accepted');
    }
    expect((await f.login('alice@example.org', letters.slice(1) + 'a')).kind).toBe('failed');
  });

  it('the primary password is refused at login and recorded', async () => {
    expect((await f.login('alice@example.org', PRIMARY)).kind).toBe('primary-refused');
    await f.writes.idle(); // the failure is queued, and written after the answer
    expect((await f.accounts.history('alice@example.org')).some((e) => e.type === 'primary.refused')).toBe(true);
  });

  it('removing an account ends its passwords and keeps its history', async () => {
    const p = await newPassword('gone');
    const id = (await f.accounts.getAccount('alice@example.org')).id;
    await f.accounts.removeAccount('alice@example.org');
    expect((await f.login('alice@example.org', p.password)).kind).toBe('failed');
    expect((await f.store.events.listForAccount(id)).map((e) => e.type)).toContain('account.removed');
  });
});

describe('primary passwords longer than bcrypt reads (72 bytes)', () => {
  const LONG = `${'ein langer Satz über Äpfel, '.repeat(3)}und dann das Ende`; // > 72 bytes of UTF-8
  const SAME_PREFIX = `${Buffer.from(LONG, 'utf8').subarray(0, 72).toString('utf8')} und etwas anderes`;

  it('counts every byte: a password sharing only the first 72 bytes is wrong', async () => {
    expect(Buffer.byteLength(LONG, 'utf8')).toBeGreaterThan(72);
    expect(Buffer.from(SAME_PREFIX, 'utf8').subarray(0, 72).equals(Buffer.from(LONG, 'utf8').subarray(0, 72))).toBe(true);
    await f.accounts.addAccount('carol@example.org', LONG, { mode: 'master' });
    f.secrets.add(LONG);
    await expectCode(() => f.accounts.createPassword('carol@example.org', SAME_PREFIX, { label: 'x' }), 'PRIMARY_PASSWORD_WRONG');
    const created = await f.accounts.createPassword('carol@example.org', LONG, { label: 'tablet' });
    f.secrets.add(created.password);
    expect((await f.login('carol@example.org', LONG)).kind).toBe('primary-refused');
    expect((await f.login('carol@example.org', SAME_PREFIX)).kind).toBe('failed');
  });
});
