/**
 * Account-page sessions against a real store and a movable clock. Pins: the cookie is not in the
 * database (only its digest); a session ends after 15 minutes idle, 12 hours in all, when it is
 * ended elsewhere (another instance, the admin), when the primary password changes, and when the
 * account goes; the recent-auth password is held only inside its window and forgotten at the end.
 * It is kept in the row sealed under the cookie (no password in the database), so a second instance
 * (another store on the same file) has it; it survives the token rotation at the second factor;
 * its column is NULL once the window has passed (read or swept) and when the session ends.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createAuthFixture, type AuthFixture } from '../../test/helpers/auth-fixture.js';
import { PortalSessions, tokenDigest } from './sessions.js';
import { openStore, sqliteDb } from '../store/index.js';
import { createLogSink } from '../../test/helpers/log-sink.js';
import { startSessionBoxSweep } from './session-box-sweep.js';

const PRIMARY = 'ida-primary-Secret-1';
const MIN = 60_000;
const WHERE = { address: '192.0.2.40', browser: 'Test/1.0' };

let f: AuthFixture;
let sessions: PortalSessions;
afterEach(async () => {
  await f?.close();
});

async function rig() {
  f = createAuthFixture({ clock: 'movable' });
  await f.addUser('ida', PRIMARY);
  sessions = new PortalSessions(f.store, { idleMs: 15 * MIN, absoluteMs: 12 * 60 * MIN, recentAuthMs: 10 * MIN }, () => f.now.value);
  return await sessions.create(await f.accounts.getAccount('ida'), 'password', PRIMARY, WHERE);
}

describe('portal sessions', () => {
  it('stores a digest of the cookie, never the cookie', async () => {
    const { token } = await rig();
    expect(sqliteDb(f.store).prepare('SELECT COUNT(*) AS n FROM portal_sessions WHERE token_digest = ?').get(tokenDigest(token))).toEqual({ n: 1 });
    const raw = JSON.stringify(sqliteDb(f.store).prepare('SELECT * FROM portal_sessions').all());
    expect(raw).not.toContain(token);
    expect(await sessions.load(`${token}x`)).toBeNull();
  });

  it('ends after 15 minutes idle, and is not revived', async () => {
    const { token } = await rig();
    f.now.value += 14 * MIN;
    expect(await sessions.load(token)).not.toBeNull();
    f.now.value += 14 * MIN;
    expect(await sessions.load(token)).not.toBeNull();
    f.now.value += 16 * MIN;
    expect(await sessions.load(token)).toBeNull();
    f.now.value -= 16 * MIN;
    expect(await sessions.load(token)).toBeNull();
  });

  it('ends 12 hours after sign-in however active', async () => {
    const { token } = await rig();
    for (let i = 0; i < 71; i++) {
      f.now.value += 10 * MIN;
      expect(await sessions.load(token)).not.toBeNull();
    }
    f.now.value += 11 * MIN;
    expect(await sessions.load(token)).toBeNull();
  });

  it('ends when ended elsewhere, when the primary password changes, and when the account goes', async () => {
    const first = await rig();
    await f.store.portalSessions.endAll((await f.accounts.getAccount('ida')).id, f.now.value);
    expect(await sessions.load(first.token)).toBeNull();
    const second = await sessions.create(await f.accounts.getAccount('ida'), 'password', PRIMARY, WHERE);
    f.now.value += 1;
    await f.accounts.setPrimaryPassword('ida', 'ida-primary-Secret-2');
    f.secrets.add('ida-primary-Secret-2');
    expect(await sessions.load(second.token)).toBeNull();
    const third = await sessions.create(await f.accounts.getAccount('ida'), 'password', 'ida-primary-Secret-2', WHERE);
    await f.accounts.removeAccount('ida');
    expect(await sessions.load(third.token)).toBeNull();
  });

  it('holds the password for the recent-auth window only, and forgets it at the end of the session', async () => {
    const { token, id } = await rig();
    const live = (await sessions.load(token))!;
    expect(await sessions.recentPassword(live)).toBe(PRIMARY);
    f.now.value += 11 * MIN;
    // Kept alive by requests, but the password is too old: the read clears it.
    await f.store.portalSessions.touch(id, f.now.value);
    const later = (await sessions.load(token))!;
    expect(await sessions.recentPassword(later)).toBeNull();
    expect(recentBox(id)).toBeNull();
    await sessions.passwordTyped(later, PRIMARY);
    expect(await sessions.recentPassword((await sessions.load(token))!)).toBe(PRIMARY);
    await sessions.end(id);
    expect(recentBox(id)).toBeNull();
    expect(await sessions.recentPassword(later)).toBeNull();
  });

  it('keeps the password sealed in the row: not in the database, and read by a second instance', async () => {
    const { token, id } = await rig();
    const box = recentBox(id)!;
    expect(box).toBeInstanceOf(Buffer);
    expect(box.includes(Buffer.from(PRIMARY))).toBe(false);
    const other = openStore(f.dbPath);
    const twin = new PortalSessions(other, { idleMs: 15 * MIN, absoluteMs: 12 * 60 * MIN, recentAuthMs: 10 * MIN }, () => f.now.value);
    try {
      f.now.value += 9 * MIN;
      expect(await twin.recentPassword((await twin.load(token))!)).toBe(PRIMARY);
      // A cookie that is not this session's does not open its box, even put beside the row.
      const live = (await twin.load(token))!;
      expect(await twin.recentPassword({ ...live, token: `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}` })).toBeNull();
    } finally {
      await other.close();
    }
  });

  it('survives the cookie rotation at the second factor: the password is re-sealed under the new cookie', async () => {
    const { token, id } = await rig();
    const before = recentBox(id)!;
    const fresh = (await sessions.complete((await sessions.load(token))!))!;
    expect(await sessions.load(token)).toBeNull();
    expect(recentBox(id)!.equals(before)).toBe(false);
    expect(await sessions.recentPassword((await sessions.load(fresh))!)).toBe(PRIMARY);
  });

  it('clears boxes past their window without a read (the maintenance sweep), and all of an account\'s when its sessions are ended', async () => {
    const first = await rig();
    f.now.value += 11 * MIN;
    const second = await sessions.create(await f.accounts.getAccount('ida'), 'password', PRIMARY, WHERE);
    const sweep = startSessionBoxSweep(f.store, 10 * MIN, createLogSink().logger, { clock: () => f.now.value });
    try {
      await expect.poll(() => recentBox(first.id)).toBeNull();
    } finally {
      sweep.stop();
    }
    expect(recentBox(second.id)).not.toBeNull();
    await f.store.portalSessions.endAll((await f.accounts.getAccount('ida')).id, f.now.value);
    expect(recentBox(second.id)).toBeNull();
  });
});

function recentBox(id: number): Buffer | null {
  return sqliteDb(f.store).prepare('SELECT recent_auth_box FROM portal_sessions WHERE id = ?').pluck().get(id) as Buffer | null;
}
