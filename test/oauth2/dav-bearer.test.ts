/**
 * DAV with OAuth2 Bearer end to end: a real authorization server (oidc-provider, JWT access
 * tokens per RFC 9068 for the DAV resource, refresh rotation) and a real DAV server that takes
 * only valid Bearer tokens (HAProxy's jwt_verify — signature, exp, aud — in front of Radicale,
 * test/helpers/bearer-gateway.ts), with postern in front of both. Pins:
 *  - the gateway really checks (no token, a forged `alg: none` token, garbage → 401), so what
 *    passes it below passed on postern's Bearer token alone;
 *  - CalDAV (MKCALENDAR, PUT, GET of an event) and CardDAV (an address book and a vCard) through
 *    postern with an app-specific password of an oauth2 account; postern sends
 *    `Authorization: Bearer <access token>`, never the app password;
 *  - an expired access token is refreshed transparently on the DAV leg (one refresh, the request
 *    answered, not refused by the gateway);
 *  - the grant refused by the provider (revoked) → 503 to the client, never 401 (which would make
 *    it discard its saved password), the account flagged;
 *  - no token in the logs or the database files.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBearerGateway, type BearerGateway } from '../helpers/bearer-gateway.js';
import { databaseBytes } from '../helpers/test-database.js';
import { basic, davClient, type DavTestClient } from '../dav/support/client.js';
import { startAuthorizationServer, type AuthorizationServer } from './authorization-server.js';
import { authoriseByDevice, LOGIN, PRIMARY, startOAuthPostern, UPSTREAM_USER } from './support.js';

const AUDIENCE = 'https://dav.provider.test/';
const SHORT_TTL_S = 3;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let as: AuthorizationServer;
let gateway: BearerGateway;
let postern: Awaited<ReturnType<typeof startOAuthPostern>>;
let client: DavTestClient;
let auth = '';

const event = (summary: string) => [
  'BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//postern tests//EN', 'BEGIN:VEVENT',
  'UID:postern-bearer-event-1', 'DTSTAMP:20260101T090000Z', 'DTSTART:20260105T090000Z', 'DTEND:20260105T100000Z',
  `SUMMARY:${summary}`, 'END:VEVENT', 'END:VCALENDAR', '',
].join('\r\n');
const vcard = (name: string) => ['BEGIN:VCARD', 'VERSION:3.0', 'UID:postern-bearer-card-1', `FN:${name}`, `N:${name};;;;`, 'END:VCARD', ''].join('\r\n');
const MKCALENDAR = '<?xml version="1.0" encoding="utf-8"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:displayname>Work</D:displayname></D:prop></D:set></C:mkcalendar>';
const MKADDRESSBOOK = '<?xml version="1.0" encoding="utf-8"?><D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>';

const account = () => postern.accounts.getAccount(LOGIN);
const get = (path: string) => client.request({ path, headers: { authorization: auth } });

beforeAll(async () => {
  as = await startAuthorizationServer({ jwtAudience: AUDIENCE });
  gateway = await startBearerGateway({ publicKeyPem: as.publicKeyPem!, audience: AUDIENCE, users: [UPSTREAM_USER] });
  postern = await startOAuthPostern(as, null, {
    refreshMarginMs: 1000,
    providers: { test: { preset: 'generic', issuer: as.issuer, clientId: as.clientId, scopes: ['openid', 'offline_access', 'dav'], allowInsecureHttp: true } },
  }, { dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: gateway.url, carddavUpstream: gateway.url } });
  client = davClient(postern.port('dav'), postern.caPem);
}, 90_000);

afterAll(async () => {
  client?.close();
  for (const token of as?.issuedTokens() ?? []) postern?.rememberSecret(token);
  const files = postern ? await databaseBytes(postern) : [];
  await postern?.stop();
  await gateway?.stop();
  await as?.stop();
  for (const token of as?.issuedTokens() ?? []) {
    for (const file of files) expect(file.includes(Buffer.from(token))).toBe(false);
  }
  expect(as?.issuedTokens().some((t) => t.split('.').length === 3)).toBe(true);
});

describe.sequential('DAV with OAuth2 Bearer', () => {
  it('the gateway refuses what is not a valid token for it: none, garbage, an unsigned (alg none) one', async () => {
    const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const unsigned = `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64({ sub: UPSTREAM_USER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 600 })}.`;
    for (const authorization of [undefined, 'Bearer garbage', `Bearer ${unsigned}`, basic(UPSTREAM_USER, 'unused-behind-the-gateway')]) {
      const res = await fetch(new URL(`${UPSTREAM_USER}/`, gateway.url), { method: 'PROPFIND', headers: { depth: '0', ...(authorization ? { authorization } : {}) } });
      expect(res.status, authorization ?? 'no authorization').toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    }
  });

  it('CalDAV and CardDAV through postern with an app-specific password of an oauth2 account: postern sends the Bearer token', async () => {
    as.accessTtlSeconds = SHORT_TTL_S;
    const added = await authoriseByDevice(postern, as, ['user', 'add', LOGIN, '--oauth', 'test', '--upstream-user', UPSTREAM_USER, '--password-stdin'], `${PRIMARY}\n`);
    expect(added.code, added.stderr).toBe(0);
    const { password } = await postern.newPassword(LOGIN, PRIMARY, { label: 'calendar' });
    auth = basic(LOGIN, password);
    const refusedBefore = gateway.refusals();

    const cal = await client.request({ method: 'MKCALENDAR', path: `/${UPSTREAM_USER}/work/`, headers: { authorization: auth, 'content-type': 'application/xml' }, body: MKCALENDAR });
    expect(cal.status, cal.text).toBe(201);
    const put = await client.request({ method: 'PUT', path: `/${UPSTREAM_USER}/work/meeting.ics`, headers: { authorization: auth, 'content-type': 'text/calendar' }, body: event('Planning') });
    expect(put.status, put.text).toBe(201);
    const read = await get(`/${UPSTREAM_USER}/work/meeting.ics`);
    expect(read.status).toBe(200);
    expect(read.text).toContain('SUMMARY:Planning');

    const book = await client.request({ method: 'MKCOL', path: `/${UPSTREAM_USER}/contacts/`, headers: { authorization: auth, 'content-type': 'application/xml' }, body: MKADDRESSBOOK });
    expect(book.status, book.text).toBe(201);
    const card = await client.request({ method: 'PUT', path: `/${UPSTREAM_USER}/contacts/ada.vcf`, headers: { authorization: auth, 'content-type': 'text/vcard' }, body: vcard('Ada Lovelace') });
    expect(card.status, card.text).toBe(201);
    expect((await get(`/${UPSTREAM_USER}/contacts/ada.vcf`)).text).toContain('FN:Ada Lovelace');

    await sleep(300); // HAProxy's log lines arrive on their own time
    expect(gateway.refusals()).toBe(refusedBefore);
    // Radicale stored it for the token's subject: the gateway let it through on the Bearer token.
    const radicaleLog = readFileSync(gateway.radicale.logFile, 'utf8');
    expect(radicaleLog).toMatch(/Successful login: 'alice'/);
  }, 60_000);

  it('an expired access token is refreshed transparently on the DAV leg', async () => {
    await sleep(SHORT_TTL_S * 1000 + 300);
    const refusedBefore = gateway.refusals();
    // The token postern holds is expired: the gateway itself refuses it…
    const held = as.issuedTokens().filter((t) => t.split('.').length === 3).at(-1)!;
    const stale = await fetch(new URL(`${UPSTREAM_USER}/work/meeting.ics`, gateway.url), { headers: { authorization: `Bearer ${held}` } });
    expect(stale.status).toBe(401);
    // …so the answer below came with a fresh one, fetched on the way.
    const refreshesBefore = as.refreshGrants();
    const read = await get(`/${UPSTREAM_USER}/work/meeting.ics`);
    expect(read.status).toBe(200);
    expect(read.text).toContain('SUMMARY:Planning');
    expect(as.refreshGrants()).toBe(refreshesBefore + 1);
    await sleep(300); // HAProxy's log lines arrive on their own time
    expect(gateway.refusals()).toBe(refusedBefore + 1); // the probe above, nothing of postern's
    expect(postern.logs.lines.some((l) => l.includes('"event":"oauth2.refreshed"') && l.includes('"stored":true'))).toBe(true);
  }, 30_000);

  it('a grant refused by the provider answers 503, not 401, and flags the account', async () => {
    await as.revokeGrants();
    await sleep(SHORT_TTL_S * 1000 + 300);
    const res = await get(`/${UPSTREAM_USER}/work/meeting.ics`);
    expect(res.status).toBe(503);
    expect(res.headers['www-authenticate']).toBeUndefined();
    // The flag goes through the write queue after the answer: waited for, not read at once.
    await expect.poll(async () => (await account()).upstreamStatus, { timeout: 5_000 }).toBe('rejected');
    expect(postern.logs.lines.some((l) => l.includes('"event":"upstream.grant_rejected"') && l.includes('"protocol":"caldav"'))).toBe(true);
  }, 30_000);
});
