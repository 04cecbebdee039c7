/**
 * The portal-session and second-factor repositories' contracts on both engines (engines.ts).
 * Pins: a session is found by its cookie digest, updated only while live, ended once; code
 * failures count up; pruning removes ended and too-old rows. The sealed boxes (migration 11): the
 * Connect box is taken once (the UPDATE … RETURNING that reads it clears it), the token rotation
 * replaces the recent-auth box and drops the Connect box, a stale recent-auth box is dropped only
 * if not typed again meanwhile, the sweep clears boxes past their time, and ending a session or
 * all of an account's NULLs both. A TOTP step is accepted only when
 * later than the last one, a recovery code once; enrolling replaces key and codes; reset removes
 * both.
 */
import { expect, it } from 'vitest';
import { anAccount, describeEngines } from './engines.js';

describeEngines('portal sessions', (store) => {
  it('finds a session by digest, updates it only while live, ends it, and prunes', async () => {
    const s = store();
    const alice = await anAccount(s);
    const id = await s.portalSessions.insert({ tokenDigest: Buffer.alloc(32, 1), accountId: alice, stage: 'password', at: 100, primaryChangedAt: 50, address: '192.0.2.1', browser: 'Firefox' });
    expect(await s.portalSessions.findByDigest(Buffer.alloc(32, 1))).toEqual({
      id, accountId: alice, stage: 'password', createdAt: 100, seenAt: 100, passwordAt: 100, primaryChangedAt: 50, codeFailures: 0,
      pendingTotpBox: null, recentAuthBox: null, address: '192.0.2.1', browser: 'Firefox', endedAt: null,
    });
    expect(await s.portalSessions.findByDigest(Buffer.alloc(32, 2))).toBeUndefined();
    await s.portalSessions.setPendingTotp(id, Buffer.from('pending'));
    expect(await s.portalSessions.codeFailed(id)).toBe(1);
    expect(await s.portalSessions.codeFailed(id)).toBe(2);
    expect(await s.portalSessions.codeFailed(999)).toBe(0);
    await s.portalSessions.touch(id, 110);
    await s.portalSessions.passwordTyped(id, 120, Buffer.from('typed'));
    expect(await s.portalSessions.findByDigest(Buffer.alloc(32, 1))).toMatchObject({ seenAt: 110, passwordAt: 120, codeFailures: 2, pendingTotpBox: Buffer.from('pending'), recentAuthBox: Buffer.from('typed') });
    await s.portalSessions.setStage(id, 'complete');
    expect(await s.portalSessions.findByDigest(Buffer.alloc(32, 1))).toMatchObject({ stage: 'complete', codeFailures: 0, pendingTotpBox: null });
    await s.portalSessions.end(id, 130);
    await s.portalSessions.end(id, 140);
    await s.portalSessions.touch(id, 150);
    expect(await s.portalSessions.findByDigest(Buffer.alloc(32, 1))).toMatchObject({ endedAt: 130, seenAt: 110 });

    const other = await s.portalSessions.insert({ tokenDigest: Buffer.alloc(32, 3), accountId: alice, stage: 'complete', at: 200, primaryChangedAt: 50, address: '192.0.2.2', browser: 'b' });
    await s.portalSessions.insert({ tokenDigest: Buffer.alloc(32, 4), accountId: alice, stage: 'complete', at: 10, primaryChangedAt: 50, address: '192.0.2.2', browser: 'b' });
    expect(await s.portalSessions.endAll(alice, 300)).toBe(2);
    expect(await s.portalSessions.endAll(alice, 310)).toBe(0);
    expect(await s.portalSessions.prune(135, 50)).toBe(2); // the one ended at 130, the one created at 10
    expect((await s.portalSessions.findByDigest(Buffer.alloc(32, 3)))?.id).toBe(other);
  });
});

describeEngines('portal session boxes', (store) => {
  /** Both box columns of a row as stored (a Buffer, or null: BLOB and BYTEA read alike). */
  const boxes = async (s: ReturnType<typeof store>, id: number) => {
    const [row] = await s.rows(`SELECT recent_auth_box AS recent, connect_box AS connect FROM portal_sessions WHERE id = ${Number(id)}`);
    return { recent: row!.recent ?? null, connect: row!.connect ?? null };
  };

  it('takes the Connect box once, rotates, sweeps, and NULLs both boxes when sessions end', async () => {
    const s = store();
    const alice = await anAccount(s);
    const session = (n: number, at: number) => s.portalSessions.insert({ tokenDigest: Buffer.alloc(32, n), accountId: alice, stage: 'complete', at, primaryChangedAt: 50, address: '192.0.2.1', browser: 'b' });
    const one = await session(1, 100);
    expect(await s.portalSessions.takeConnect(one)).toBeNull();
    await s.portalSessions.setRecentAuth(one, Buffer.from('r1'));
    await s.portalSessions.setConnect(one, Buffer.from('c1'));
    await s.portalSessions.setConnect(one, Buffer.from('c2'));
    expect(await s.portalSessions.takeConnect(one)).toEqual(Buffer.from('c2'));
    expect(await s.portalSessions.takeConnect(one)).toBeNull();
    // Racing takers (on PostgreSQL each on its own pooled connection): exactly one gets the box.
    await s.portalSessions.setConnect(one, Buffer.from('raced'));
    const taken = await Promise.all(Array.from({ length: 8 }, () => s.portalSessions.takeConnect(one)));
    expect(taken.filter((b) => b !== null)).toEqual([Buffer.from('raced')]);

    // Rotation: the new digest finds the row with the re-sealed password and no Connect box.
    await s.portalSessions.setConnect(one, Buffer.from('c3'));
    expect(await s.portalSessions.rotateToken(one, Buffer.alloc(32, 11), Buffer.from('r1-new'))).toBe(true);
    expect(await s.portalSessions.findByDigest(Buffer.alloc(32, 1))).toBeUndefined();
    expect((await s.portalSessions.findByDigest(Buffer.alloc(32, 11)))?.recentAuthBox).toEqual(Buffer.from('r1-new'));
    expect(await boxes(s, one)).toEqual({ recent: Buffer.from('r1-new'), connect: null });

    // A stale box is dropped only while it is still the one typed at that time.
    await s.portalSessions.passwordTyped(one, 150, Buffer.from('r150'));
    await s.portalSessions.dropRecentAuth(one, 100);
    expect((await boxes(s, one)).recent).toEqual(Buffer.from('r150'));
    await s.portalSessions.dropRecentAuth(one, 150);
    expect((await boxes(s, one)).recent).toBeNull();

    // The sweep: recent-auth boxes typed before the first bound, Connect boxes of sessions not seen since the second.
    const two = await session(2, 200);
    await s.portalSessions.setRecentAuth(two, Buffer.from('r2'));
    await s.portalSessions.setConnect(two, Buffer.from('c2'));
    await s.portalSessions.passwordTyped(one, 160, Buffer.from('r160'));
    await s.portalSessions.setConnect(one, Buffer.from('c4'));
    await s.portalSessions.touch(one, 155);
    expect(await s.portalSessions.forgetStaleBoxes(170, 150)).toBe(1);
    expect(await boxes(s, one)).toEqual({ recent: null, connect: Buffer.from('c4') });
    expect(await boxes(s, two)).toEqual({ recent: Buffer.from('r2'), connect: Buffer.from('c2') });
    expect(await s.portalSessions.forgetStaleBoxes(170, 150)).toBe(0);
    expect(await s.portalSessions.forgetStaleBoxes(170, 160)).toBe(1);
    expect(await boxes(s, one)).toEqual({ recent: null, connect: null });

    await s.portalSessions.end(two, 300);
    expect(await boxes(s, two)).toEqual({ recent: null, connect: null });
    await s.portalSessions.passwordTyped(one, 310, Buffer.from('r310'));
    expect(await s.portalSessions.endAll(alice, 320)).toBe(1);
    expect(await boxes(s, one)).toEqual({ recent: null, connect: null });
    // Ended rows take no new boxes.
    await s.portalSessions.setConnect(one, Buffer.from('late'));
    await s.portalSessions.setRecentAuth(one, Buffer.from('late'));
    expect(await boxes(s, one)).toEqual({ recent: null, connect: null });
  });
});

describeEngines('second factors', (store) => {
  it('accepts each TOTP step once and in order, each recovery code once; enrolling replaces; reset removes', async () => {
    const s = store();
    const alice = await anAccount(s);
    expect(await s.secondFactors.get(alice)).toBeUndefined();
    await s.secondFactors.enrol(alice, Buffer.from('k1'), 10, [Buffer.alloc(32, 1), Buffer.alloc(32, 2)], 500);
    expect(await s.secondFactors.get(alice)).toEqual({ accountId: alice, totpBox: Buffer.from('k1'), lastStep: 10, enrolledAt: 500 });
    expect(await s.secondFactors.acceptStep(alice, 10)).toBe(false);
    expect(await s.secondFactors.acceptStep(alice, 11)).toBe(true);
    expect(await s.secondFactors.acceptStep(alice, 11)).toBe(false);
    expect(await s.secondFactors.recoveryCodesLeft(alice)).toBe(2);
    expect(await s.secondFactors.useRecoveryCode(alice, Buffer.alloc(32, 1), 600)).toBe(true);
    expect(await s.secondFactors.useRecoveryCode(alice, Buffer.alloc(32, 1), 601)).toBe(false);
    expect(await s.secondFactors.useRecoveryCode(alice, Buffer.alloc(32, 7), 601)).toBe(false);
    expect(await s.secondFactors.recoveryCodesLeft(alice)).toBe(1);

    await s.transaction((tx) => tx.secondFactors.enrol(alice, Buffer.from('k2'), 3, [Buffer.alloc(32, 3), Buffer.alloc(32, 4), Buffer.alloc(32, 5)], 700));
    expect(await s.secondFactors.get(alice)).toEqual({ accountId: alice, totpBox: Buffer.from('k2'), lastStep: 3, enrolledAt: 700 });
    expect(await s.secondFactors.recoveryCodesLeft(alice)).toBe(3);
    expect(await s.secondFactors.useRecoveryCode(alice, Buffer.alloc(32, 2), 800)).toBe(false);
    expect((await s.rows('SELECT digest FROM recovery_codes ORDER BY id')).map((r) => (r.digest as Buffer)[0])).toEqual([3, 4, 5]);

    expect(await s.secondFactors.reset(alice)).toBe(true);
    expect(await s.secondFactors.reset(alice)).toBe(false);
    expect(await s.secondFactors.recoveryCodesLeft(alice)).toBe(0);
  });

  it('a passkey is removed only while another second factor remains', async () => {
    const s = store();
    const carol = await anAccount(s, 'carol');
    const key = (n: number) => ({ accountId: carol, credentialId: Buffer.from(`cred-${n}`), publicKey: Buffer.from('k'), counter: 0, transports: [], name: `Key ${n}`, at: 100 });
    const [one, two] = [await s.passkeys.insert(key(1)), await s.passkeys.insert(key(2))];
    expect(await s.transaction((tx) => tx.passkeys.remove(carol, one))).toBe(true);
    expect(await s.transaction((tx) => tx.passkeys.remove(carol, two))).toBe(false); // the last factor
    expect(await s.passkeys.count(carol)).toBe(1);
    await s.transaction((tx) => tx.secondFactors.enrol(carol, Buffer.from('k'), 1, [], 200));
    expect(await s.transaction((tx) => tx.passkeys.remove(carol, two))).toBe(true); // the app remains
    expect(await s.transaction((tx) => tx.passkeys.remove(carol, two))).toBe(false);
  });

  it('recovery codes without a TOTP key (a passkey first), kept when an app is enrolled beside it', async () => {
    const s = store();
    const bob = await anAccount(s, 'bob');
    await s.transaction((tx) => tx.secondFactors.setRecoveryCodes(bob, [Buffer.alloc(32, 8), Buffer.alloc(32, 9)]));
    expect(await s.secondFactors.get(bob)).toBeUndefined();
    expect(await s.secondFactors.useRecoveryCode(bob, Buffer.alloc(32, 8), 100)).toBe(true);
    await s.transaction((tx) => tx.secondFactors.enrol(bob, Buffer.from('k'), 1, null, 200));
    expect(await s.secondFactors.get(bob)).toMatchObject({ totpBox: Buffer.from('k'), lastStep: 1 });
    expect(await s.secondFactors.recoveryCodesLeft(bob)).toBe(1);
    expect(await s.secondFactors.useRecoveryCode(bob, Buffer.alloc(32, 9), 300)).toBe(true);
  });

  it('rolls a failed transaction back whole', async () => {
    const s = store();
    const alice = await anAccount(s);
    await expect(s.transaction(async (tx) => {
      await tx.secondFactors.enrol(alice, Buffer.from('k'), 1, [Buffer.alloc(32, 1)], 1);
      await tx.secondFactors.enrol(alice, Buffer.from('k'), 1, [Buffer.alloc(32, 1), Buffer.alloc(32, 1)], 1); // duplicate digest
    })).rejects.toThrow(/unique/i);
    expect(await s.secondFactors.get(alice)).toBeUndefined();
    expect(await s.secondFactors.recoveryCodesLeft(alice)).toBe(0);
  });
});
