/**
 * The history's contract on both engines (engines.ts). Pins: events read back newest first
 * (ties by id), with their detail parsed; pages skip and take as asked; rows are append-only (an
 * UPDATE is refused by the trigger); pruning deletes at most `limit` of the oldest before a time.
 */
import { expect, it } from 'vitest';
import { anAccount, describeEngines } from './engines.js';

describeEngines('events', (store) => {
  it('lists an account’s events newest first and pages through them', async () => {
    const s = store();
    const alice = await anAccount(s);
    for (let i = 0; i < 7; i++) {
      await s.events.append({ type: 'password.used', at: 100 + Math.floor(i / 2), accountId: alice, login: 'alice', passwordId: `p${i}`, protocol: 'imap', address: '192.0.2.1', detail: { n: i } });
    }
    await s.events.append({ type: 'login.failed', at: 200, login: 'mallory' });
    const all = await s.events.listForAccount(alice);
    expect(all.map((e) => e.passwordId)).toEqual(['p6', 'p5', 'p4', 'p3', 'p2', 'p1', 'p0']);
    expect(all[0]).toMatchObject({ at: 103, type: 'password.used', accountId: alice, login: 'alice', protocol: 'imap', address: '192.0.2.1', detail: { n: 6 } });
    expect((await s.events.listForAccount(alice, 2)).map((e) => e.passwordId)).toEqual(['p6', 'p5']);
    expect((await s.events.listPage(alice, 3, 2)).map((e) => e.passwordId)).toEqual(['p4', 'p3', 'p2']);
    expect(await s.events.listPage(alice, 3, 7)).toEqual([]);
  });

  it('keeps events append-only', async () => {
    const s = store();
    await s.events.append({ type: 'login.failed', at: 1, login: 'x' });
    await expect(s.exec(`UPDATE events SET login = 'y'`)).rejects.toThrow(/append-only/);
  });

  it('prunes at most `limit` of the oldest events before a time', async () => {
    const s = store();
    for (const at of [5, 1, 3, 2, 4, 9]) await s.events.append({ type: 'login.failed', at, login: `l${at}` });
    expect(await s.events.pruneBefore(5, 2)).toBe(2);
    expect((await s.rows('SELECT at FROM events ORDER BY at')).map((r) => r.at)).toEqual([3, 4, 5, 9]);
    expect(await s.events.pruneBefore(5, 100)).toBe(2);
    expect(await s.events.pruneBefore(5, 100)).toBe(0);
  });
});
