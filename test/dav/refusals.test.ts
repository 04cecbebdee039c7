/**
 * Refusals on the DAV listener, against a real Radicale behind postern.
 *
 * Pins: no credentials → 401 with exactly `Basic realm="postern", charset="UTF-8"`; the primary
 * password → 401 with the app-password sentence (and a history entry); wrong password, unknown
 * user, out-of-scope password and malformed Authorization all get the identical 401 (out of scope
 * as one account's own upstream view decides, never another account's cached probe); a revoked
 * password is refused on the next request and the idle keep-alive connection that used it is
 * closed within 1 s; stored credentials the upstream refuses → 502 and the account is flagged;
 * master-mode accounts get a clear 503, not a leak; nothing unauthenticated reaches Radicale.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PRIMARY_PASSWORD_REFUSED_TEXT } from '../../src/auth/types.js';
import { REPLY_TEXT } from '../../src/dav/replies.js';
import { basic, davClient, type RawResponse } from './support/client.js';
import { startPostern } from '../helpers/postern.js';
import { ALICE, BOB, startDavRig, type DavRig } from './support/setup.js';

const CHALLENGE = 'Basic realm="postern", charset="UTF-8"';
let rig: DavRig;
let appPassword: string;

beforeAll(async () => {
  rig = await startDavRig();
  appPassword = (await rig.postern.newPassword(ALICE.login, ALICE.primary, { label: 'laptop' })).password;
});

afterAll(async () => {
  await rig?.stop();
});

const propfind = (authorization?: string, path = '/alice/') =>
  rig.client.request({ method: 'PROPFIND', path, headers: { depth: '0', ...(authorization === undefined ? {} : { authorization }) } });

/** The parts of a refusal a client can observe; two refusals must not differ in any of them. */
function observable(res: RawResponse) {
  return { status: res.status, challenge: res.headers['www-authenticate'], type: res.headers['content-type'], body: res.text };
}

describe('refusals', () => {
  it('answers no credentials with the RFC 7617 challenge', async () => {
    const res = await propfind();
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe(CHALLENGE);
    expect(res.text).toBe(`${REPLY_TEXT.unauthorized}\n`);
  });

  it('keeps the connection across the challenge, so the retry with credentials reuses it', async () => {
    const challenged = await rig.client.request({ method: 'PROPFIND', path: '/alice/', headers: { depth: '0', 'content-type': 'application/xml' }, body: '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>' });
    expect(challenged.status).toBe(401);
    expect(challenged.headers.connection).not.toBe('close');
    const retried = await propfind(basic(ALICE.login, appPassword));
    expect(retried.status).toBe(207);
    expect(retried.socket).toBe(challenged.socket);
  });

  it('refuses the primary password with the app-password sentence, recorded in history', async () => {
    const res = await propfind(basic(ALICE.login, ALICE.primary));
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe(CHALLENGE);
    expect(res.text).toBe(`${PRIMARY_PASSWORD_REFUSED_TEXT}\n`);
    expect((await rig.postern.accounts.history(ALICE.login)).some((e) => e.type === 'primary.refused' && e.protocol !== null && e.protocol.endsWith('dav'))).toBe(true);
    expect(rig.postern.logs.events('auth.primary_refused').length).toBeGreaterThan(0);
  });

  it('answers a wrong password and an unknown user identically', async () => {
    const wrong = await propfind(basic(ALICE.login, 'abcd-efgh-ijkl-mnop'));
    const unknown = await propfind(basic('nobody', 'abcd-efgh-ijkl-mnop'));
    const none = await propfind();
    expect(observable(wrong)).toEqual(observable(none));
    expect(observable(unknown)).toEqual(observable(none));
  });

  it('refuses an app password without a DAV scope, identically to a wrong one', async () => {
    const mailOnly = (await rig.postern.newPassword(ALICE.login, ALICE.primary, { label: 'mail only', scopes: 'imap,smtp' })).password;
    const res = await propfind(basic(ALICE.login, mailOnly));
    expect(observable(res)).toEqual(observable(await propfind()));
  });

  it('on the shared Radicale root, a calendar-only password may not touch vCards, nor a contacts-only one calendars', async () => {
    const calOnly = (await rig.postern.newPassword(ALICE.login, ALICE.primary, { label: 'calendar app', scopes: 'caldav' })).password;
    const cardOnly = (await rig.postern.newPassword(ALICE.login, ALICE.primary, { label: 'contacts app', scopes: 'carddav' })).password;
    // Principal discovery is needed by both and allowed with either scope.
    expect((await propfind(basic(ALICE.login, calOnly))).status).toBe(207);
    expect((await propfind(basic(ALICE.login, cardOnly))).status).toBe(207);
    const mkcalendar = await rig.client.request({ method: 'MKCALENDAR', path: '/alice/scoped-cal/', headers: { authorization: basic(ALICE.login, cardOnly) } });
    expect(mkcalendar.status).toBe(401);
    const vcard = await rig.client.request({
      method: 'PUT', path: '/alice/book/x.vcf',
      headers: { authorization: basic(ALICE.login, calOnly), 'content-type': 'text/vcard' },
      body: 'BEGIN:VCARD\r\nVERSION:3.0\r\nFN:X\r\nEND:VCARD\r\n',
    });
    expect(vcard.status).toBe(401);
    const ics = await rig.client.request({ method: 'GET', path: '/alice/work/any.ics', headers: { authorization: basic(ALICE.login, cardOnly) } });
    expect(ics.status).toBe(401);
    const allowed = await rig.client.request({ method: 'MKCALENDAR', path: '/alice/scoped-cal/', headers: { authorization: basic(ALICE.login, calOnly) } });
    expect(allowed.status).toBe(201);
  });

  it('holds a single-scope password to the kind of collection a path is in, asked of Radicale', async () => {
    const full = basic(ALICE.login, appPassword);
    const make = async (method: string, path: string, body?: string) => {
      const res = await rig.client.request({ method, path, headers: { authorization: full, 'content-type': 'application/xml' }, body });
      expect(res.status, `${method} ${path}`).toBe(201);
    };
    await make('MKCALENDAR', '/alice/kind-cal/');
    await make('MKCOL', '/alice/kind-book/', '<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype><D:collection/><C:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>');
    const put = await rig.client.request({ method: 'PUT', path: '/alice/kind-cal/noext', headers: { authorization: full, 'content-type': 'text/calendar' }, body: 'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:k1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260101T000000Z\r\nSUMMARY:secret meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n' });
    expect(put.status).toBe(201);
    const calOnly = basic(ALICE.login, (await rig.postern.newPassword(ALICE.login, ALICE.primary, { label: 'cal app 2', scopes: 'caldav' })).password);
    const cardOnly = basic(ALICE.login, (await rig.postern.newPassword(ALICE.login, ALICE.primary, { label: 'card app 2', scopes: 'carddav' })).password);
    const status = async (authorization: string, method: string, path: string, depth = '1') =>
      (await rig.client.request({ method, path, headers: { authorization, depth, 'content-type': 'application/xml' } })).status;

    expect(await status(cardOnly, 'PROPFIND', '/alice/kind-cal/')).toBe(401);
    expect(await status(cardOnly, 'PROPFIND', '/alice/kind-cal')).toBe(401);
    expect(await status(cardOnly, 'REPORT', '/alice/kind-cal/')).toBe(401);
    expect(await status(cardOnly, 'GET', '/alice/kind-cal/noext')).toBe(401);
    expect(await status(cardOnly, 'DELETE', '/alice/kind-cal/')).toBe(401);
    expect(await status(cardOnly, 'PROPFIND', '/alice/kind-book/')).toBe(207);
    expect(await status(calOnly, 'PROPFIND', '/alice/kind-book/')).toBe(401);
    expect(await status(calOnly, 'PROPFIND', '/alice/kind-cal/')).toBe(207);
    expect(await status(calOnly, 'GET', '/alice/kind-cal/noext')).toBe(200);
    expect(await status(cardOnly, 'PROPFIND', '/alice/', '0')).toBe(207);
    expect(rig.postern.logs.events('dav.scope_refused').length).toBeGreaterThanOrEqual(6);

    // A collection replaced through postern is probed afresh, not judged by a cached kind.
    expect(await status(full, 'DELETE', '/alice/kind-book/')).toBe(200);
    await make('MKCALENDAR', '/alice/kind-book/');
    expect(await status(cardOnly, 'PROPFIND', '/alice/kind-book/')).toBe(401);
    expect(await status(calOnly, 'PROPFIND', '/alice/kind-book/')).toBe(207);
  });

  it("does not let another account's refused probe open a calendar to a contacts-only password", async () => {
    const bobFull = basic(BOB.login, (await rig.postern.newPassword(BOB.login, BOB.primary, { label: 'bob full' })).password);
    const bobCards = basic(BOB.login, (await rig.postern.newPassword(BOB.login, BOB.primary, { label: 'bob contacts', scopes: 'carddav' })).password);
    const aliceCards = basic(ALICE.login, (await rig.postern.newPassword(ALICE.login, ALICE.primary, { label: 'alice contacts 3', scopes: 'carddav' })).password);
    expect((await rig.client.request({ method: 'MKCALENDAR', path: '/bob/private-cal/', headers: { authorization: bobFull } })).status).toBe(201);
    const propfind = (authorization: string) => rig.client.request({ method: 'PROPFIND', path: '/bob/private-cal/', headers: { authorization, depth: '1', 'content-type': 'application/xml' } });
    // Radicale (owner_only) answers Alice's probe of Bob's calendar with 403.
    expect((await propfind(aliceCards)).status).toBe(403);
    expect((await propfind(bobCards)).status).toBe(401);
  });

  it('treats malformed Authorization headers as no credentials, without crashing', async () => {
    const none = observable(await propfind());
    const headers = [
      'Basic !!!notbase64!!!',
      `Basic ${Buffer.from('no-colon-here').toString('base64')}`,
      `Basic ${Buffer.from([0xff, 0xfe, 0x3a, 0x41]).toString('base64')}`,
      `Basic ${Buffer.from('alice:pass\u0000word').toString('base64')}`,
      `Basic ${Buffer.from(':password-without-login').toString('base64')}`,
      'Bearer some-token',
      'Basic',
      `Basic ${'QUFB'.repeat(600)}`,
    ];
    for (const header of headers) expect(observable(await propfind(header)), header.slice(0, 40)).toEqual(none);
    const huge = await rig.client.request({ method: 'PROPFIND', path: '/alice/', headers: { authorization: `Basic ${'QUFB'.repeat(6000)}` } }).catch((err: Error) => err);
    if (huge instanceof Error) throw huge;
    expect(huge.status).toBe(431);
    expect((await propfind(basic(ALICE.login, appPassword))).status).toBe(207);
  });

  it('never lets an unauthenticated request reach the upstream', async () => {
    const marker = `/alice/never-${Date.now()}/`;
    await rig.client.request({ method: 'MKCOL', path: marker });
    await rig.client.request({ method: 'MKCOL', path: marker, headers: { authorization: basic(ALICE.login, 'wrong-wrong-wrong-wrong') } });
    // Control: Radicale logs the path of every request it receives, so an authenticated one shows.
    const control = `/alice/control-${Date.now()}/`;
    await propfind(basic(ALICE.login, appPassword), control);
    let log = '';
    for (let i = 0; i < 50 && !log.includes(control); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      log = await readFile(rig.radicale.logFile, 'utf8');
    }
    expect(log).toContain(control);
    expect(log).not.toContain(marker);
  });

  it('refuses a large unauthenticated upload with 401 and closes instead of reading it', async () => {
    const res = await rig.client.request({
      method: 'PUT', path: '/alice/work/big.ics',
      headers: { 'content-type': 'text/calendar', 'content-length': String(50 * 1024 * 1024), expect: '100-continue' },
      body: undefined,
    });
    expect(res.status).toBe(401);
    expect(res.headers.connection).toBe('close');
  });
});

describe('revocation', () => {
  it('refuses the next request and closes the idle keep-alive connection within 1 s', async () => {
    const { password, publicId } = await rig.postern.newPassword(ALICE.login, ALICE.primary, { label: 'to revoke' });
    const first = await propfind(basic(ALICE.login, password));
    expect(first.status).toBe(207);
    const socket = first.socket;
    expect(socket.destroyed).toBe(false);
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now())));
    const revokedAt = performance.now();
    await rig.postern.accounts.revokePassword(ALICE.login, publicId);
    const closedAt = await Promise.race([closed, new Promise<number>((resolve) => setTimeout(() => resolve(Infinity), 1500))]);
    expect(closedAt - revokedAt).toBeLessThan(1000);
    const again = await propfind(basic(ALICE.login, password));
    expect(again.status).toBe(401);
    expect(again.headers['www-authenticate']).toBe(CHALLENGE);
    const event = await rig.postern.logs.waitForEvent('session.revoked');
    expect(event.passwordId).toBe(publicId);
  });

  it('keeps connections of other passwords open', async () => {
    const keep = (await rig.postern.newPassword(ALICE.login, ALICE.primary, { label: 'keeps working' })).password;
    const doomed = await rig.postern.newPassword(ALICE.login, ALICE.primary, { label: 'doomed' });
    const kept = await propfind(basic(ALICE.login, keep));
    expect(kept.status).toBe(207);
    await rig.postern.accounts.revokePassword(ALICE.login, doomed.publicId);
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(kept.socket.destroyed).toBe(false);
    const again = await propfind(basic(ALICE.login, keep));
    expect(again.socket).toBe(kept.socket);
    expect(again.status).toBe(207);
  });
});

describe('stored credentials and account modes', () => {
  it('answers 502 when the upstream refuses the stored credentials, and flags the account', async () => {
    await rig.postern.addUser('carol', 'carol primary passphrase', { mode: 'password', secret: 'not-carols-radicale-password' });
    const pw = (await rig.postern.newPassword('carol', 'carol primary passphrase')).password;
    const res = await rig.client.request({ method: 'PROPFIND', path: '/carol/', headers: { authorization: basic('carol', pw), depth: '0' } });
    expect(res.status).toBe(502);
    expect(res.text).toBe(`${REPLY_TEXT.upstreamRejected}\n`);
    expect(res.headers['www-authenticate']).toBeUndefined();
    // The flag goes through the write queue after the answer: waited for, not read at once.
    await expect.poll(async () => (await rig.postern.accounts.getAccount('carol')).upstreamStatus, { timeout: 5_000 }).toBe('rejected');
    expect(rig.postern.logs.events('upstream.credentials_rejected').length).toBeGreaterThan(0);
  });

  it('a good request right after the upstream refused the stored credentials clears the flag again', async () => {
    // The accepted report used to be debounced per account for a minute and not reset by a
    // refusal, so the account stayed flagged "rejected" after its credentials were fixed.
    const primary = 'frank primary passphrase';
    const upstream = (secret: string) => ({ mode: 'password' as const, user: ALICE.login, secret });
    await rig.postern.addUser('frank', primary, upstream(ALICE.upstream));
    const status = async () => (await rig.postern.accounts.getAccount('frank')).upstreamStatus;
    const request = async () => (await propfind(basic('frank', (await rig.postern.newPassword('frank', primary)).password))).status;
    expect(await request()).toBe(207);
    await vi.waitFor(async () => expect(await status()).toBe('ok'), { timeout: 2_000 });
    await rig.postern.accounts.setUpstream('frank', primary, upstream('not-alices-radicale-password'));
    expect(await request()).toBe(502);
    await vi.waitFor(async () => expect(await status()).toBe('rejected'), { timeout: 2_000 });
    await rig.postern.accounts.setUpstream('frank', primary, upstream(ALICE.upstream));
    expect(await request()).toBe(207);
    await vi.waitFor(async () => expect(await status()).toBe('ok'), { timeout: 2_000 });
  });

  it('answers 503 for a master-mode account (Basic has no authorization identity)', async () => {
    await rig.postern.addUser('dave', 'dave primary passphrase', { mode: 'master' });
    const pw = (await rig.postern.newPassword('dave', 'dave primary passphrase')).password;
    const res = await rig.client.request({ method: 'PROPFIND', path: '/dave/', headers: { authorization: basic('dave', pw), depth: '0' } });
    // Without a configured master user the credential is unusable; with one, DAV refuses the mode.
    expect(res.status).toBe(503);
    expect(res.text).toBe(`${REPLY_TEXT.unavailable}\n`);
  });
});

describe('master mode with a master user configured', () => {
  it('refuses DAV with 503 and a log line naming the fix, without using the master credentials', async () => {
    const postern = await startPostern({
      config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: rig.radicale.url }, master: { user: 'master', password: 'master-secret-password-1' } },
      secrets: ['master-secret-password-1'],
    });
    const client = davClient(postern.port('dav'), postern.caPem);
    try {
      await postern.addUser('erin', 'erin primary passphrase', { mode: 'master' });
      const pw = (await postern.newPassword('erin', 'erin primary passphrase')).password;
      const res = await client.request({ method: 'PROPFIND', path: '/erin/', headers: { authorization: basic('erin', pw), depth: '0' } });
      expect(res.status).toBe(503);
      expect(res.text).toBe(`${REPLY_TEXT.unavailable}\n`);
      expect(postern.logs.events('upstream.mode_unsupported')).toHaveLength(1);
    } finally {
      client.close();
      await postern.stop();
    }
  });
});
