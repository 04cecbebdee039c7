/**
 * The rules a "Connect your account" callback must pass: this session's request, its state, once,
 * in time — on a real store, with a second store on the same database file standing in for a
 * second instance. Pins: the request started on one instance is found by the other, once (a
 * replay to either finds nothing); the row holds the request sealed (no verifier or state in
 * clear) and a box does not open under another cookie or in another row.
 */
import { afterEach, expect, it } from 'vitest';
import { createAuthFixture, type AuthFixture } from '../../test/helpers/auth-fixture.js';
import { openStore, sqliteDb, type Store } from '../store/index.js';
import { CONNECT_TTL_MS, ConnectFlows, type ConnectSession } from './connect-flows.js';
import { PortalSessions } from './sessions.js';

const MIN = 60_000;
const VERIFIER = 'verifier-'.padEnd(43, 'v');
const start = (state: string) => ({ url: 'https://as.example/auth', redirectUri: 'https://page.example/connect/callback', state, verifier: VERIFIER });

let f: AuthFixture;
let sessions: PortalSessions;
let other: Store | undefined;
afterEach(async () => {
  await other?.close();
  other = undefined;
  await f?.close();
});

async function rig(): Promise<{ flows: ConnectFlows; one: ConnectSession; two: ConnectSession }> {
  f = createAuthFixture({ clock: 'movable' });
  await f.addUser('ida', 'ida-primary-Secret-1');
  sessions = new PortalSessions(f.store, { idleMs: 15 * MIN, absoluteMs: 12 * 60 * MIN, recentAuthMs: 10 * MIN }, () => f.now.value);
  const account = await f.accounts.getAccount('ida');
  const where = { address: '192.0.2.40', browser: 'Test/1.0' };
  const a = await sessions.create(account, 'complete', 'ida-primary-Secret-1', where);
  const b = await sessions.create(account, 'complete', 'ida-primary-Secret-1', where);
  return { flows: new ConnectFlows(f.store, () => f.now.value), one: { session: { id: a.id }, token: a.token }, two: { session: { id: b.id }, token: b.token } };
}

it('hands back the request for its own session and state, once (a replayed callback finds nothing)', async () => {
  const { flows, one } = await rig();
  await flows.begin(one, 'ms', start('s1'));
  expect((await flows.take(one, 's1'))?.provider).toBe('ms');
  expect(await flows.take(one, 's1')).toBeNull();
});

it('started on one instance, taken on another; the replay finds nothing on either', async () => {
  const { flows, one } = await rig();
  other = openStore(f.dbPath);
  const twin = new ConnectFlows(other, () => f.now.value);
  await flows.begin(one, 'ms', start('s1'));
  expect(await twin.take(one, 's1')).toEqual({ provider: 'ms', start: start('s1'), expiresAt: f.now.value + CONNECT_TTL_MS });
  expect(await twin.take(one, 's1')).toBeNull();
  expect(await flows.take(one, 's1')).toBeNull();
});

it('the row holds the request sealed: no verifier or state in clear, and it does not open under another cookie or row', async () => {
  const { flows, one, two } = await rig();
  await flows.begin(one, 'ms', start('state-in-clear-would-show'));
  const raw = sqliteDb(f.store).prepare('SELECT connect_box FROM portal_sessions WHERE id = ?').pluck().get(one.session.id) as Buffer;
  expect(raw.includes(Buffer.from(VERIFIER))).toBe(false);
  expect(raw.includes(Buffer.from('state-in-clear-would-show'))).toBe(false);
  // Another cookie value for this row (one rotated away) opens nothing, and the take still voids it.
  expect(await flows.take({ session: one.session, token: two.token }, 'state-in-clear-would-show')).toBeNull();
  expect(await flows.take(one, 'state-in-clear-would-show')).toBeNull();
  // Moved to another session's row, it does not open there either.
  sqliteDb(f.store).prepare('UPDATE portal_sessions SET connect_box = ? WHERE id = ?').run(raw, two.session.id);
  expect(await flows.take({ session: two.session, token: one.token }, 'state-in-clear-would-show')).toBeNull();
});

it('forged state: a wrong or empty state is refused and voids the request', async () => {
  const { flows, one } = await rig();
  await flows.begin(one, 'ms', start('s1'));
  expect(await flows.take(one, 's2')).toBeNull();
  expect(await flows.take(one, 's1')).toBeNull();
  await flows.begin(one, 'ms', start('s1'));
  expect(await flows.take(one, '')).toBeNull();
});

it("another session's state does not open this session's request", async () => {
  const { flows, one, two } = await rig();
  await flows.begin(one, 'ms', start('mine'));
  await flows.begin(two, 'ms', start('theirs'));
  expect(await flows.take(one, 'theirs')).toBeNull();
  expect(await flows.take(two, 'theirs')).not.toBeNull();
});

it('expires after the short lifetime, and a new start replaces the earlier one', async () => {
  const { flows, one } = await rig();
  await flows.begin(one, 'ms', start('old'));
  await flows.begin(one, 'ms', start('new'));
  expect(await flows.take(one, 'old')).toBeNull();
  await flows.begin(one, 'ms', start('s'));
  f.now.value += CONNECT_TTL_MS;
  expect(await flows.take(one, 's')).toBeNull();
});

it('ending the session drops its request', async () => {
  const { flows, one } = await rig();
  await flows.begin(one, 'ms', start('s1'));
  await sessions.end(one.session.id);
  expect(sqliteDb(f.store).prepare('SELECT connect_box FROM portal_sessions WHERE id = ?').pluck().get(one.session.id)).toBeNull();
});
