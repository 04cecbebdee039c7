/**
 * The stored primary-password hash against a stolen database. Pins:
 * - a new account's hash is keyed scrypt, not bcrypt: with the database alone (no key file) a
 *   guess cannot be checked, not even the right one, and plain scrypt of the password is not it;
 * - with the key file a guess costs the envelope's scrypt (same parameters as the primary wrap);
 * - a legacy bcrypt hash still verifies (login path and CLI) and is replaced in place by the new
 *   kind at the next successful primary-password check; a wrong one leaves it as it was;
 * - a primary-password change writes the new kind.
 */
import { randomBytes, scryptSync } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { afterEach, describe, expect, it } from 'vitest';
import { AccountService } from '../accounts/service.js';
import { inlinePrimaryChecker } from '../auth/primary-checker.js';
import { SCRYPT_PARAMS } from './envelope.js';
import { bcryptInput, needsRehash, primaryPasswordMatches } from './primary-hash.js';
import { isPosternError } from '../errors.js';
import { createAuthFixture, type AuthFixture } from '../../test/helpers/auth-fixture.js';
import { sqliteDb } from '../store/index.js';

const PRIMARY = 'correct horse battery staple';
let f: AuthFixture | undefined;

afterEach(async () => {
  await f?.close();
  f = undefined;
});

async function setup(): Promise<AuthFixture> {
  f = createAuthFixture({ checker: inlinePrimaryChecker() });
  await f.addUser('alice', PRIMARY);
  return f;
}

const storedHash = async (fx: AuthFixture) => (await fx.accounts.getAccount('alice')).primaryHash;

function setLegacyHash(fx: AuthFixture, hash: string): void {
  sqliteDb(fx.store).prepare('UPDATE accounts SET primary_hash = ? WHERE login = ?').run(hash, 'alice');
}

describe('offline guessing against a stolen database', () => {
  it('a new account\'s hash is not bcrypt and cannot be verified without the key file', async () => {
    const fx = await setup();
    const hash = await storedHash(fx);
    expect(hash).not.toMatch(/^\$2[aby]?\$/);
    expect(hash).toMatch(/^\$scrypt-hmac\$v=1\$n=32768,r=8,p=1\$/);
    expect(primaryPasswordMatches(PRIMARY, hash, fx.digestKey)).toBe(true);
    // The thief has the row but not the key file: even the right password does not verify.
    expect(primaryPasswordMatches(PRIMARY, hash, randomBytes(32))).toBe(false);
    const [, , , , salt, digest] = hash.split('$');
    const unkeyed = scryptSync(PRIMARY.normalize('NFC'), Buffer.from(salt!, 'base64'), 32, SCRYPT_PARAMS);
    expect(unkeyed.equals(Buffer.from(digest!, 'base64'))).toBe(false);
    // Nor does a copy of the database opened with another key file.
    const thief = new AccountService(fx.store, randomBytes(32));
    await expect(thief.verifyPrimary(await thief.getAccount('alice'), PRIMARY)).rejects.toThrow(expect.objectContaining({ code: 'PRIMARY_PASSWORD_WRONG' }));
  });

  it('with the key file, a guess costs the same scrypt as the primary wrap of the data key', async () => {
    const fx = await setup();
    const [, , , params] = (await storedHash(fx)).split('$');
    expect(params).toBe(`n=${SCRYPT_PARAMS.N},r=${SCRYPT_PARAMS.r},p=${SCRYPT_PARAMS.p}`);
  });
});

describe('legacy bcrypt hashes', () => {
  it('an old bcrypt hash still verifies and is upgraded in place after a successful check', async () => {
    const fx = await setup();
    const legacy = bcrypt.hashSync(PRIMARY, 10);
    setLegacyHash(fx, legacy);
    // The login path still recognises (and refuses) the primary password.
    expect(await fx.attempt('alice', PRIMARY)).toEqual({ kind: 'primary-refused', hint: true });
    // A wrong primary password proves nothing: the hash stays as it was.
    let wrong: unknown;
    try {
      await fx.accounts.createPassword('alice', 'not the primary', { label: 'x' });
    } catch (err) {
      wrong = err;
    }
    expect(isPosternError(wrong) && wrong.code).toBe('PRIMARY_PASSWORD_WRONG');
    expect(await storedHash(fx)).toBe(legacy);
    // `postern password new` checks the primary password: that check upgrades the hash.
    const created = await fx.newPassword('alice', PRIMARY);
    const upgraded = await storedHash(fx);
    expect(upgraded).not.toBe(legacy);
    expect(needsRehash(upgraded)).toBe(false);
    expect(primaryPasswordMatches(PRIMARY, upgraded, fx.digestKey)).toBe(true);
    expect(primaryPasswordMatches(PRIMARY, upgraded, randomBytes(32))).toBe(false);
    // Both paths keep working on the upgraded hash.
    expect(await fx.attempt('alice', PRIMARY, '192.0.2.11')).toEqual({ kind: 'primary-refused', hint: true });
    expect((await fx.attempt('alice', created.password, '192.0.2.12')).kind).toBe('accepted');
    // The next check finds nothing to upgrade.
    await fx.newPassword('alice', PRIMARY);
    expect(await storedHash(fx)).toBe(upgraded);
  });

  it('a long legacy hash (pre-hashed past bcrypt\'s 72 bytes) verifies and upgrades too', async () => {
    const fx = await setup();
    const long = PRIMARY.padEnd(100, '!');
    await fx.accounts.setPrimaryPassword('alice', long);
    setLegacyHash(fx, bcrypt.hashSync(bcryptInput(long), 4));
    fx.secrets.add(long);
    await fx.newPassword('alice', long);
    expect(needsRehash(await storedHash(fx))).toBe(false);
  });

  it('a primary-password change writes the new kind', async () => {
    const fx = await setup();
    setLegacyHash(fx, bcrypt.hashSync(PRIMARY, 4));
    fx.secrets.add('a brand new primary password');
    await fx.accounts.setPrimaryPassword('alice', 'a brand new primary password');
    expect(needsRehash(await storedHash(fx))).toBe(false);
    expect(primaryPasswordMatches('a brand new primary password', await storedHash(fx), fx.digestKey)).toBe(true);
  });
});
