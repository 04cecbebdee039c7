/**
 * The app-password repository's contract on both engines (engines.ts). Pins: the login lookup
 * returns exactly the login's columns for a known digest and nothing for another; revoke and
 * revokeAll are conditional (a second revoke changes nothing) and drop the sealed key; expiry is
 * swept at the expiry instant and reported with the login; the change log moves on revoke,
 * expiry change, sweep and deletion, never on markUsed or history; states() reports removed ids
 * by their absence.
 */
import { expect, it } from 'vitest';
import { aPassword, anAccount, describeEngines } from './engines.js';

describeEngines('app passwords', (store) => {
  it('finds a login by its digest with the account columns it needs, and nothing for an unknown digest', async () => {
    const s = store();
    const account = await anAccount(s);
    await s.accounts.setSecretBox(account, Buffer.from('sealed'));
    const id = await aPassword(s, account, 1, { expiresAt: 9999 });
    expect(await s.passwords.findByDigest(Buffer.alloc(32, 1))).toEqual({
      password: { id, publicId: 'pub1', scopes: ['imap', 'smtp'], expiresAt: 9999, revokedAt: null, dekSalt: Buffer.from('salt1'), dekBox: Buffer.from('box1') },
      account: { id: account, login: 'alice', upstreamMode: 'master', upstreamUser: 'alice', secretBox: Buffer.from('sealed'), upstreamStatus: 'unknown', oauth2Provider: null },
    });
    expect(await s.passwords.findByDigest(Buffer.alloc(32, 2))).toBeUndefined();
  });

  it('finds a login and its throttle gate in one read, the gate also for an unknown digest', async () => {
    const s = store();
    const account = await anAccount(s);
    await s.accounts.setSecretBox(account, Buffer.from('sealed'));
    await aPassword(s, account, 1);
    const keys = { address: 'a:192.0.2.1', account: 'l:alice', pair: 'p:192.0.2.1\nalice' };
    await s.throttle.add([keys.address, keys.account, keys.pair, 'w:192.0.2.1\nalice\nd1'], 0, 10);
    await s.throttle.add([keys.address, 'a:192.0.2.9', 'l:bob'], 60_000, 60_005);
    await s.throttle.block(keys.address, 70_000);
    await s.throttle.block('a:192.0.2.9', 80_000);
    const whole = { ...keys, sinceBucket: 0, now: 60_010 };
    const found = await s.passwords.findForLogin(Buffer.alloc(32, 1), whole);
    expect(found.match).toEqual(await s.passwords.findByDigest(Buffer.alloc(32, 1)));
    expect(found.gate).toEqual({ addressFailures: 2, addressLastAt: 60_005, accountFailures: 1, pairFailures: 1, blockedUntil: 70_000 });
    expect(await s.passwords.findForLogin(Buffer.alloc(32, 2), whole)).toEqual({ match: undefined, gate: found.gate });
    expect((await s.passwords.findForLogin(Buffer.alloc(32, 1), { ...whole, sinceBucket: 60_000, now: 70_000 })).gate)
      .toEqual({ addressFailures: 1, addressLastAt: 60_005, accountFailures: 0, pairFailures: 0, blockedUntil: 0 });
    const clean = { address: 'a:198.51.100.1', account: 'l:carol', pair: 'p:198.51.100.1\ncarol', sinceBucket: 0, now: 60_010 };
    expect((await s.passwords.findForLogin(Buffer.alloc(32, 1), clean)).gate)
      .toEqual({ addressFailures: 0, addressLastAt: 0, accountFailures: 0, pairFailures: 0, blockedUntil: 0 });
  });

  it('lists, finds by public id and counts active passwords', async () => {
    const s = store();
    const account = await anAccount(s);
    await aPassword(s, account, 2, { createdAt: 5 });
    await aPassword(s, account, 1, { createdAt: 5, expiresAt: 100 });
    await aPassword(s, account, 3, { createdAt: 1 });
    expect((await s.passwords.listForAccount(account)).map((p) => p.publicId)).toEqual(['pub3', 'pub2', 'pub1']);
    expect(await s.passwords.findByPublicId('pub1')).toMatchObject({ accountId: account, label: 'label 1', scopes: ['imap', 'smtp'], expiresAt: 100, lastUsedAt: null });
    expect(await s.passwords.findByPublicId('nope')).toBeUndefined();
    expect(await s.passwords.countActive(account, 50)).toBe(3);
    expect(await s.passwords.countActive(account, 100)).toBe(2);
  });

  it('revokes once: the second revoke changes nothing; revokeAll returns only those it revoked', async () => {
    const s = store();
    const account = await anAccount(s);
    const a = await aPassword(s, account, 1);
    const b = await aPassword(s, account, 2);
    await aPassword(s, account, 3);
    expect(await s.passwords.revoke(a, 'admin', 2000)).toBe(true);
    expect(await s.passwords.revoke(a, 'admin', 3000)).toBe(false);
    expect(await s.passwords.findByPublicId('pub1')).toMatchObject({ revokedAt: 2000, revokedReason: 'admin', dekBox: null, dekSalt: null });
    const all = await s.passwords.revokeAll(account, 'revoke-all', 4000);
    expect(all.sort((x, y) => x.id - y.id)).toEqual([{ id: b, publicId: 'pub2' }, { id: b + 1, publicId: 'pub3' }]);
    expect(await s.passwords.revokeAll(account, 'revoke-all', 5000)).toEqual([]);
    expect(await s.passwords.countActive(account, 0)).toBe(0);
  });

  it('sweeps passwords past their expiry at the expiry instant, per account or all, and reports the login', async () => {
    const s = store();
    const alice = await anAccount(s, 'alice');
    const bob = await anAccount(s, 'bob');
    const a = await aPassword(s, alice, 1, { expiresAt: 100 });
    await aPassword(s, alice, 2, { expiresAt: 500 });
    const b = await aPassword(s, bob, 3, { expiresAt: 100 });
    expect(await s.passwords.anyDue(99)).toBe(false);
    expect(await s.passwords.anyDue(100)).toBe(true);
    expect(await s.passwords.anyDue(100, bob)).toBe(true);
    expect(await s.passwords.expireDue(200, alice)).toEqual([{ id: a, publicId: 'pub1', accountId: alice, login: 'alice', expiresAt: 100 }]);
    expect(await s.passwords.expireDue(200)).toEqual([{ id: b, publicId: 'pub3', accountId: bob, login: 'bob', expiresAt: 100 }]);
    expect(await s.passwords.expireDue(200)).toEqual([]);
    expect(await s.passwords.anyDue(200)).toBe(false);
    expect(await s.passwords.findByPublicId('pub1')).toMatchObject({ revokedAt: 100, revokedReason: 'expiry', dekBox: null });
  });

  it('moves the change log on revoke, expiry change, sweep and deletion only — not on markUsed or history', async () => {
    const s = store();
    const alice = await anAccount(s, 'alice');
    const bob = await anAccount(s, 'bob');
    const a = await aPassword(s, alice, 1);
    const b = await aPassword(s, alice, 2, { expiresAt: 50 });
    const c = await aPassword(s, bob, 3);
    const d = await aPassword(s, bob, 4);
    expect(await s.passwords.revision()).toBe(0);
    await s.passwords.markUsed(a, 10, 'imap', '192.0.2.1');
    await s.events.append({ type: 'password.used', at: 10, accountId: alice, passwordId: 'pub1' });
    await s.accounts.setUpstreamStatus(alice, 'ok', 10);
    expect(await s.passwords.revision()).toBe(0);
    expect(await s.passwords.findByPublicId('pub1')).toMatchObject({ lastUsedAt: 10, lastUsedProtocol: 'imap', lastUsedAddress: '192.0.2.1' });

    await s.passwords.revoke(a, 'admin', 20);
    await s.passwords.revoke(a, 'admin', 21); // no change: not logged
    await s.exec(`UPDATE app_passwords SET expires_at = 60 WHERE id = ${b}`);
    await s.exec(`UPDATE app_passwords SET expires_at = 60 WHERE id = ${b}`); // unchanged: not logged
    await s.passwords.expireDue(100);
    await s.accounts.remove(bob);
    const log = await s.passwords.changedSince(0);
    // The removal logs the account's passwords before its cascade logs them again (as on SQLite).
    expect(log).toEqual([a, b, b, c, d, c, d].map((passwordId, i) => ({ revision: i + 1, passwordId })));
    expect(await s.passwords.revision()).toBe(7);
    expect((await s.passwords.changedSince(5)).map((x) => x.passwordId)).toEqual([c, d]);
  });

  it('keeps the latest 10,000 changes; the revision keeps counting past what was pruned', async () => {
    const s = store();
    const alice = await anAccount(s);
    await aPassword(s, alice, 1, { expiresAt: 1 });
    await s.transaction(async () => {
      for (let i = 0; i < 10_050; i += 50) await s.exec(Array(50).fill('UPDATE app_passwords SET expires_at = expires_at + 1;').join('\n'));
    });
    expect(await s.passwords.revision()).toBe(10_050);
    const kept = await s.passwords.changedSince(0);
    expect(kept).toHaveLength(10_000);
    expect(kept[0]!.revision).toBe(51);
    await s.exec('DELETE FROM password_changes');
    await s.exec('UPDATE app_passwords SET expires_at = expires_at + 1');
    expect(await s.passwords.revision()).toBe(10_051);
  });

  it('reports the state of watched passwords; ids removed with their account are absent', async () => {
    const s = store();
    const alice = await anAccount(s, 'alice');
    const bob = await anAccount(s, 'bob');
    const a = await aPassword(s, alice, 1, { expiresAt: 70 });
    const b = await aPassword(s, bob, 2);
    await s.passwords.revoke(a, 'primary-password-change', 30);
    await s.accounts.remove(bob);
    expect(await s.passwords.states([a, b, 999])).toEqual([{ id: a, revokedAt: 30, revokedReason: 'primary-password-change', expiresAt: 70 }]);
    expect(await s.passwords.states([])).toEqual([]);
  });

  it('refuses a second password with the same digest', async () => {
    const s = store();
    const alice = await anAccount(s);
    await aPassword(s, alice, 1);
    await expect(s.passwords.insert({
      publicId: 'other', accountId: alice, digest: Buffer.alloc(32, 1), label: 'l', scopes: ['imap'], createdAt: 1, expiresAt: null, dekSalt: null, dekBox: null,
    })).rejects.toThrow(/unique/i);
  });
});
