/**
 * The DAV upstream turns a request down for a reason that is not the stored credentials (issue 18,
 * item 2): 423 Locked, 429 Too Many Requests, 503, 507 Insufficient Storage. A real Radicale cannot
 * be made to answer these, so a scripted upstream does (test/dav/support/scripted-upstream.ts).
 * Pins:
 *  - answering the client's own request, each status is relayed as the upstream sent it (status and
 *    body), never turned into "rejected credentials", and the account is not flagged;
 *  - answering postern's collection-kind probe (a single-scope password on a shared root), the
 *    client gets the upstream's status with postern's sentence for it (not 502 Bad gateway), logged
 *    as `upstream.login_refused` with the status (info for 429/503, warn for 507), never as
 *    `upstream.fault`, and the account is not flagged;
 *  - 401 to the probe still flags the account.
 */
import { describe, expect, it } from 'vitest';
import { basic } from './support/client.js';
import { ALICE_PRIMARY, useScriptedUpstream } from './support/scripted-upstream.js';

const rig = useScriptedUpstream();
const INFO = 30;
const WARN = 40;

const statusOf = async () => (await rig.postern.app.store.accounts.findByLogin('alice'))?.upstreamStatus;
const isProbe = (headers: Record<string, unknown>) => headers.depth === '0';

describe('the upstream refuses for a reason of its own', () => {
  it.each([423, 429, 503, 507])('relays %i to the client\'s own request as it came, the account not flagged', async (status) => {
    rig.handler = rig.recordAnd((_req, res) => {
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(`upstream says ${status}`);
    });
    const res = await rig.client.request({ method: 'GET', path: '/alice/work/e.ics', headers: { authorization: rig.auth } });
    expect(res.status).toBe(status);
    expect(res.text).toBe(`upstream says ${status}`);
    expect(rig.postern.logs.events('upstream.credentials_rejected')).toEqual([]);
    expect(await statusOf()).not.toBe('rejected');
  });

  it.each([
    { status: 429, text: /^Too many requests: /, level: INFO },
    { status: 503, text: /^Service unavailable: the calendar and contacts server is unavailable/, level: INFO },
    { status: 507, text: /^Insufficient storage: /, level: WARN },
    { status: 423, text: /^Locked: /, level: INFO },
  ])('gives the client $status when the upstream answers the collection probe with it', async ({ status, text, level }) => {
    const calOnly = basic('alice', (await rig.postern.newPassword('alice', ALICE_PRIMARY, { label: `cal ${status}`, scopes: 'caldav' })).password);
    const before = rig.postern.logs.events('upstream.login_refused').length;
    rig.handler = rig.recordAnd((req, res) => {
      if (!isProbe(req.headers)) return res.end('not a probe');
      res.writeHead(status, { 'content-type': 'text/html' });
      res.end('<html>busy</html>');
    });
    const res = await rig.client.request({ method: 'GET', path: '/alice/work/e.ics', headers: { authorization: calOnly } });
    expect(res.status).toBe(status);
    expect(res.text).toMatch(text);
    const refusals = rig.postern.logs.events('upstream.login_refused').slice(before);
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({ level, stage: 'probe', code: String(status), user: 'alice' });
    expect(rig.postern.logs.events('upstream.fault').filter((e) => e.stage === 'probe')).toEqual([]);
    expect(rig.postern.logs.events('upstream.credentials_rejected')).toEqual([]);
    expect(await statusOf()).not.toBe('rejected');
  });

  it('still flags the account when the upstream answers the probe with 401', async () => {
    const calOnly = basic('alice', (await rig.postern.newPassword('alice', ALICE_PRIMARY, { label: 'cal 401', scopes: 'caldav' })).password);
    rig.handler = rig.recordAnd((_req, res) => {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="x"' });
      res.end();
    });
    const res = await rig.client.request({ method: 'GET', path: '/alice/home/e.ics', headers: { authorization: calOnly } });
    expect(res.status).toBe(502);
    // The flag goes through the write queue after the answer: waited for, not read at once.
    await expect.poll(() => statusOf(), { timeout: 5_000 }).toBe('rejected');
  });
});
