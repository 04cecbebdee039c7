/**
 * The account repository's contract on both engines (engines.ts). Pins: rows read back as
 * written (buffers as buffers, BIGINT times as numbers); the conditional updates (swapSecretBox,
 * replacePrimaryHash, setUpstreamStatus) change a row only when their condition holds and say
 * so; the oauth2 mode needs its provider (migration 5's CHECK); removing an account cascades to
 * its passwords, second factor, recovery codes and portal sessions, and keeps its history.
 */
import { expect, it } from 'vitest';
import { aPassword, anAccount, describeEngines } from './engines.js';

describeEngines('accounts', (store) => {
  it('reads an account back as written, by login, id and in login order', async () => {
    const s = store();
    const b = await anAccount(s, 'bob', 1_700_000_000_000);
    const a = await anAccount(s, 'Alice', 1_700_000_000_001);
    expect(await s.accounts.get(b)).toEqual({
      id: b, login: 'bob', upstreamMode: 'master', upstreamUser: 'bob', primaryHash: 'h', primarySalt: null, dekPrimary: Buffer.from('dek'),
      secretBox: null, upstreamStatus: 'unknown', upstreamStatusAt: null, createdAt: 1_700_000_000_000, primaryChangedAt: 1_700_000_000_000, oauth2Provider: null,
    });
    expect((await s.accounts.findByLogin('Alice'))?.id).toBe(a);
    expect(await s.accounts.findByLogin('alice')).toBeUndefined();
    expect(await s.accounts.get(999)).toBeUndefined();
    expect((await s.accounts.list()).map((x) => x.login)).toEqual(['Alice', 'bob']);
  });

  it('swaps the sealed secret only if it is still the one expected', async () => {
    const s = store();
    const id = await anAccount(s);
    expect(await s.accounts.secretBox(id)).toBeNull();
    expect(await s.accounts.secretBox(999)).toBeUndefined();
    await s.accounts.setSecretBox(id, Buffer.from('one'));
    expect(await s.accounts.swapSecretBox(id, Buffer.from('other'), Buffer.from('two'))).toBe(false);
    expect(await s.accounts.swapSecretBox(id, Buffer.from('one'), Buffer.from('two'))).toBe(true);
    expect(await s.accounts.secretBox(id)).toEqual(Buffer.from('two'));
  });

  it('gives the OAuth2 refresh lease to one holder at a time, takes over a lapsed one, and releases only its own', async () => {
    const s = store();
    const id = await anAccount(s);
    expect(await s.accounts.takeRefreshLease(id, 1_000, 31_000)).toBe(true);
    expect(await s.accounts.takeRefreshLease(id, 2_000, 32_000)).toBe(false);
    // Lapsed (a holder that died): the next takes it over; the old holder's release leaves it.
    expect(await s.accounts.takeRefreshLease(id, 31_000, 61_000)).toBe(true);
    await s.accounts.releaseRefreshLease(id, 31_000);
    expect(await s.accounts.takeRefreshLease(id, 40_000, 70_000)).toBe(false);
    await s.accounts.releaseRefreshLease(id, 61_000);
    expect(await s.accounts.takeRefreshLease(id, 40_000, 70_000)).toBe(true);
  });

  it('changes the primary password, rehashes only over the expected hash, and records upstream status flips once', async () => {
    const s = store();
    const id = await anAccount(s);
    await s.accounts.setPrimary(id, { primaryHash: 'h2', primarySalt: Buffer.from('s'), dekPrimary: Buffer.from('d2'), secretBox: Buffer.from('b2'), now: 5000 });
    expect(await s.accounts.get(id)).toMatchObject({ primaryHash: 'h2', primarySalt: Buffer.from('s'), secretBox: Buffer.from('b2'), primaryChangedAt: 5000 });
    expect(await s.accounts.replacePrimaryHash(id, 'h', 'h3')).toBe(false);
    expect(await s.accounts.replacePrimaryHash(id, 'h2', 'h3')).toBe(true);
    expect(await s.accounts.setUpstreamStatus(id, 'ok', 6000)).toBe(true);
    expect(await s.accounts.setUpstreamStatus(id, 'ok', 7000)).toBe(false);
    expect(await s.accounts.setUpstreamStatus(999, 'ok', 7000)).toBe(false);
    expect(await s.accounts.upstreamStatus(id)).toBe('ok');
    expect(await s.accounts.upstreamStatus(999)).toBeUndefined();
    expect(await s.accounts.get(id)).toMatchObject({ upstreamStatusAt: 6000 });
  });

  it('switches to upstream mode oauth2 only with a provider', async () => {
    const s = store();
    const id = await anAccount(s);
    await s.accounts.setUpstream(id, { upstreamMode: 'oauth2', upstreamUser: 'a@example.com', primarySalt: null, dekPrimary: null, secretBox: Buffer.from('t'), oauth2Provider: 'google', now: 9 });
    expect(await s.accounts.get(id)).toMatchObject({ upstreamMode: 'oauth2', oauth2Provider: 'google', upstreamStatus: 'unknown', upstreamStatusAt: 9 });
    await expect(s.accounts.insert({ login: 'x', upstreamMode: 'oauth2', upstreamUser: 'x', primaryHash: 'h', primarySalt: null, dekPrimary: null, now: 1 }))
      .rejects.toThrow(/check/i);
    await expect(anAccount(s, 'alice')).rejects.toThrow(/unique/i);
  });

  it('removing an account cascades to its passwords, second factor, codes and portal sessions, and keeps its history', async () => {
    const s = store();
    const alice = await anAccount(s, 'alice');
    const bob = await anAccount(s, 'bob');
    await aPassword(s, alice, 1);
    await aPassword(s, bob, 2);
    await s.secondFactors.enrol(alice, Buffer.from('totp'), 1, [Buffer.alloc(32, 9)], 10);
    await s.portalSessions.insert({ tokenDigest: Buffer.alloc(32, 5), accountId: alice, stage: 'complete', at: 10, primaryChangedAt: 1000, address: '192.0.2.1', browser: 'b' });
    await s.events.append({ type: 'account.created', at: 10, accountId: alice, login: 'alice' });
    expect(await s.accounts.remove(alice)).toBe(true);
    expect(await s.accounts.remove(alice)).toBe(false);
    expect(await s.passwords.listForAccount(alice)).toEqual([]);
    expect(await s.passwords.findByDigest(Buffer.alloc(32, 1))).toBeUndefined();
    expect(await s.secondFactors.get(alice)).toBeUndefined();
    expect(await s.secondFactors.recoveryCodesLeft(alice)).toBe(0);
    expect(await s.portalSessions.findByDigest(Buffer.alloc(32, 5))).toBeUndefined();
    expect(await s.events.listForAccount(alice)).toHaveLength(1);
    expect(await s.passwords.listForAccount(bob)).toHaveLength(1);
  });
});
