/**
 * Envelope encryption of the upstream secret (src/crypto/envelope.ts):
 *  - seal/open round trip for any plaintext and associated data (property-based);
 *  - any flipped byte (version, IV, tag, ciphertext) and any wrong key or associated data fails
 *    with ENVELOPE_UNWRAP_FAILED, never with garbage plaintext;
 *  - through the account rules: each app password unseals the upstream secret (also one that
 *    differs from the primary password); the primary password unseals the data key, a wrong one
 *    does not; boxes cannot be swapped between accounts.
 */
import { hkdfSync } from 'node:crypto';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AAD, keyFromAppPassword, keyFromPrimaryPassword, newDataKey, newSalt, open, seal } from './envelope.js';
import { isPosternError } from '../errors.js';
import { createAuthFixture, type AuthFixture } from '../../test/helpers/auth-fixture.js';
import { sqliteDb } from '../store/index.js';

function expectUnwrapFailure(fn: () => unknown): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(isPosternError(thrown, 'ENVELOPE_UNWRAP_FAILED')).toBe(true);
}

describe('seal and open', () => {
  it('round-trips any plaintext under any associated data', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), fc.string(), (plain, aad) => {
      const key = newDataKey();
      expect(open(key, seal(key, Buffer.from(plain), aad), aad).equals(Buffer.from(plain))).toBe(true);
    }), { numRuns: 200 });
  });

  it('fails on every flipped byte of the box', () => {
    const key = newDataKey();
    const box = seal(key, Buffer.from('upstream secret'), 'aad');
    for (let i = 0; i < box.length; i++) {
      const tampered = Buffer.from(box);
      tampered[i] = tampered[i]! ^ 0x01;
      expectUnwrapFailure(() => open(key, tampered, 'aad'));
    }
    expectUnwrapFailure(() => open(key, box.subarray(0, box.length - 1), 'aad'));
    expectUnwrapFailure(() => open(key, box.subarray(0, 20), 'aad'));
    expectUnwrapFailure(() => open(key, Buffer.concat([box, Buffer.from([0])]), 'aad'));
  });

  it('fails under a wrong key or wrong associated data', () => {
    const key = newDataKey();
    const box = seal(key, Buffer.from('upstream secret'), AAD.secret(1));
    expectUnwrapFailure(() => open(newDataKey(), box, AAD.secret(1)));
    expectUnwrapFailure(() => open(key, box, AAD.secret(2)));
  });

  it('derives keys that depend on the password and the salt', () => {
    const salt = newSalt();
    const dek = newDataKey();
    const box = seal(keyFromPrimaryPassword('right password', salt), dek, 'p');
    expect(open(keyFromPrimaryPassword('right password', salt), box, 'p').equals(dek)).toBe(true);
    expectUnwrapFailure(() => open(keyFromPrimaryPassword('wrong password', salt), box, 'p'));
    expectUnwrapFailure(() => open(keyFromPrimaryPassword('right password', newSalt()), box, 'p'));
    const appBox = seal(keyFromAppPassword('abcdefghijklmnop', salt), dek, 'a');
    expect(open(keyFromAppPassword('abcdefghijklmnop', salt), appBox, 'a').equals(dek)).toBe(true);
    expectUnwrapFailure(() => open(keyFromAppPassword('abcdefghijklmnoq', salt), appBox, 'a'));
  });
});

describe('app-password key derivation', () => {
  // Boxes sealed before the two-HMAC form must still open: it must be HKDF-SHA256 to the bit.
  it('is exactly RFC 5869 HKDF-SHA256, as hkdfSync computes it', () => {
    fc.assert(fc.property(fc.stringMatching(/^[a-z]{16}$/), fc.uint8Array({ minLength: 16, maxLength: 16 }), (password, salt) => {
      const reference = Buffer.from(hkdfSync('sha256', Buffer.from(password, 'utf8'), Buffer.from(salt), 'postern/dek-wrap/app-password/v1', 32));
      expect(keyFromAppPassword(password, Buffer.from(salt)).equals(reference)).toBe(true);
    }));
  });
});

describe('envelopes in the store', () => {
  let f: AuthFixture;
  beforeEach(() => {
    f = createAuthFixture({ clock: 'movable' });
  });
  afterEach(() => f.close());

  it('each app password yields the upstream secret, which may differ from the primary password', async () => {
    await f.accounts.addAccount('alice', 'alice primary', { mode: 'password', secret: 'provider app password' });
    const one = await f.accounts.createPassword('alice', 'alice primary', { label: 'one' });
    const two = await f.accounts.createPassword('alice', 'alice primary', { label: 'two' });
    for (const p of [one, two]) {
      const outcome = await f.login('alice', p.password);
      expect(outcome.kind).toBe('accepted');
      if (outcome.kind === 'accepted') expect(outcome.credential).toEqual({ kind: 'password', username: 'alice', password: 'provider app password' });
    }
  });

  it('set-upstream without a new secret keeps a distinct upstream secret; with one, replaces it; app passwords keep working', async () => {
    await f.accounts.addAccount('alice', 'alice primary', { mode: 'password', secret: 'provider app password' });
    const p = await f.accounts.createPassword('alice', 'alice primary', { label: 'one' });
    expect(await f.accounts.setUpstream('alice', 'alice primary', { mode: 'password', user: 'alice.renamed' })).toEqual([]);
    let outcome = await f.login('alice', p.password);
    expect(outcome.kind === 'accepted' && outcome.credential).toEqual({ kind: 'password', username: 'alice.renamed', password: 'provider app password' });
    expect(f.accounts.upstreamSecretWithPrimary(await f.accounts.getAccount('alice'), 'alice primary')).toBe('provider app password');

    await f.accounts.setUpstream('alice', 'alice primary', { mode: 'password', secret: 'new provider password' });
    outcome = await f.login('alice', p.password);
    expect(outcome.kind === 'accepted' && outcome.credential).toEqual({ kind: 'password', username: 'alice.renamed', password: 'new provider password' });
  });

  it('a change of upstream mode revokes every app password, recorded as such', async () => {
    await f.accounts.addAccount('alice', 'alice primary', { mode: 'password', secret: 'provider app password' });
    const p = await f.accounts.createPassword('alice', 'alice primary', { label: 'one' });
    expect(await f.accounts.setUpstream('alice', 'alice primary', { mode: 'master' })).toEqual([p.publicId]);
    expect((await f.accounts.listPasswords('alice'))[0]).toMatchObject({ publicId: p.publicId, revokedReason: 'upstream-mode-change' });
    expect((await f.accounts.history('alice')).find((e) => e.type === 'password.revoked')).toMatchObject({ passwordId: p.publicId, detail: { reason: 'upstream-mode-change' } });
  });

  it('a wrong primary password neither creates a password nor unseals the data key', async () => {
    await f.accounts.addAccount('alice', 'alice primary', { mode: 'password', secret: 'alice primary' });
    let thrown: unknown;
    try {
      await f.accounts.createPassword('alice', 'not the primary', { label: 'x' });
    } catch (err) {
      thrown = err;
    }
    expect(isPosternError(thrown, 'PRIMARY_PASSWORD_WRONG')).toBe(true);
    const account = await f.accounts.getAccount('alice');
    expectUnwrapFailure(() => open(keyFromPrimaryPassword('not the primary', account.primarySalt!), account.dekPrimary!, AAD.dekForPrimary(account.id)));
  });

  it('a box moved to another account does not open (it is bound to its row)', async () => {
    await f.accounts.addAccount('alice', 'alice primary', { mode: 'password', secret: 'alice upstream' });
    await f.accounts.addAccount('mallory', 'mallory primary', { mode: 'password', secret: 'mallory upstream' });
    const p = await f.accounts.createPassword('mallory', 'mallory primary', { label: 'm' });
    const alice = await f.accounts.getAccount('alice');
    const mallory = await f.accounts.getAccount('mallory');
    // Mallory, with write access to the file, copies Alice's sealed secret into her own row.
    sqliteDb(f.store).prepare('UPDATE accounts SET secret_box = ? WHERE id = ?').run(alice.secretBox, mallory.id);
    expect((await f.login('mallory', p.password)).kind).toBe('credential-unusable');
  });

  it('a tampered sealed secret makes the credential unusable rather than wrong', async () => {
    await f.accounts.addAccount('alice', 'alice primary', { mode: 'password', secret: 'alice upstream' });
    const p = await f.accounts.createPassword('alice', 'alice primary', { label: 'a' });
    const box = Buffer.from((await f.accounts.getAccount('alice')).secretBox!);
    box[box.length - 1] = box[box.length - 1]! ^ 0xff;
    sqliteDb(f.store).prepare('UPDATE accounts SET secret_box = ? WHERE login = ?').run(box, 'alice');
    expect((await f.login('alice', p.password)).kind).toBe('credential-unusable');
  });
});
