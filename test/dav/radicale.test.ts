/**
 * The real path: tsdav (a real DAV client library) → postern → a real Radicale.
 *
 * Pins: discovery through postern (RFC 6764 well-known, current-user-principal, home sets);
 * a calendar created, an event put, listed, updated (If-Match with the ETag) and deleted; the same
 * for an address book and a vCard; what the client did really happened upstream (checked against
 * Radicale directly with the real credentials); the client never needs the real password.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAVClient } from 'tsdav';
import { davClient } from './support/client.js';
import { ALICE, startDavRig, type DavRig } from './support/setup.js';

let rig: DavRig;
let appPassword: string;

beforeAll(async () => {
  rig = await startDavRig();
  appPassword = (await rig.postern.newPassword(ALICE.login, ALICE.primary, { label: 'phone' })).password;
});

afterAll(async () => {
  await rig?.stop();
});

function client(accountType: 'caldav' | 'carddav'): DAVClient {
  return new DAVClient({
    serverUrl: `${rig.base}/`,
    credentials: { username: ALICE.login, password: appPassword },
    authMethod: 'Basic',
    defaultAccountType: accountType,
    fetch: rig.client.fetch,
  });
}

/** What Radicale itself holds, asked directly with the real password. */
async function upstreamGet(path: string): Promise<{ status: number; text: string }> {
  const res = await fetch(new URL(path, rig.radicale.url), { headers: { authorization: `Basic ${Buffer.from(`${ALICE.login}:${ALICE.upstream}`).toString('base64')}` } });
  return { status: res.status, text: await res.text() };
}

const event = (summary: string) => [
  'BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//postern tests//EN', 'BEGIN:VEVENT',
  'UID:postern-test-event-1', 'DTSTAMP:20260101T090000Z', 'DTSTART:20260105T090000Z', 'DTEND:20260105T100000Z',
  `SUMMARY:${summary}`, 'END:VEVENT', 'END:VCALENDAR', '',
].join('\r\n');

const vcard = (name: string) => ['BEGIN:VCARD', 'VERSION:3.0', 'UID:postern-test-card-1', `FN:${name}`, `N:${name};;;;`, 'END:VCARD', ''].join('\r\n');

describe('CalDAV through postern against Radicale', () => {
  it('discovers the principal through /.well-known/caldav', async () => {
    const wellKnown = await rig.client.request({ method: 'PROPFIND', path: '/.well-known/caldav', headers: { authorization: basicAuth(), depth: '0' } });
    expect(wellKnown.status).toBe(301);
    expect(wellKnown.headers.location).toBe('/');
    const dav = client('caldav');
    await dav.login();
    expect(dav.account?.rootUrl).toBe(`${rig.base}/`);
    expect(dav.account?.principalUrl).toBe(`${rig.base}/alice/`);
    expect(dav.account?.homeUrl).toBe(`${rig.base}/alice/`);
  });

  it('creates a calendar, puts, lists, updates and deletes an event', async () => {
    const dav = client('caldav');
    await dav.login();
    const made = await dav.makeCalendar({ url: `${rig.base}/alice/work/`, props: { displayname: 'Work' } });
    expect(made[0]?.ok).toBe(true);
    const calendars = await dav.fetchCalendars();
    const work = calendars.find((c) => c.url === `${rig.base}/alice/work/`);
    expect(work?.displayName).toBe('Work');

    const created = await dav.createCalendarObject({ calendar: work!, filename: 'meeting.ics', iCalString: event('Planning') });
    expect(created.status).toBe(201);
    let objects = await dav.fetchCalendarObjects({ calendar: work! });
    expect(objects).toHaveLength(1);
    expect(objects[0]!.url).toBe(`${rig.base}/alice/work/meeting.ics`);
    expect(objects[0]!.data).toContain('SUMMARY:Planning');
    expect(objects[0]!.etag).toBeTruthy();

    expect((await upstreamGet('/alice/work/meeting.ics')).text).toContain('SUMMARY:Planning');

    const updated = await dav.updateCalendarObject({ calendarObject: { ...objects[0]!, data: event('Planning (moved)') } });
    expect(updated.ok).toBe(true);
    // The old ETag no longer matches: If-Match passes through and the upstream enforces it.
    const stale = await dav.updateCalendarObject({ calendarObject: { ...objects[0]!, data: event('lost update') } });
    expect(stale.status).toBe(412);
    objects = await dav.fetchCalendarObjects({ calendar: work! });
    expect(objects[0]!.data).toContain('SUMMARY:Planning (moved)');

    const deleted = await dav.deleteCalendarObject({ calendarObject: objects[0]! });
    expect(deleted.ok).toBe(true);
    expect(await dav.fetchCalendarObjects({ calendar: work! })).toHaveLength(0);
    expect((await upstreamGet('/alice/work/meeting.ics')).status).toBe(404);
  });
});

describe('CardDAV through postern against Radicale', () => {
  it('discovers the address book home through /.well-known/carddav', async () => {
    const dav = client('carddav');
    await dav.login();
    expect(dav.account?.principalUrl).toBe(`${rig.base}/alice/`);
    expect(dav.account?.homeUrl).toBe(`${rig.base}/alice/`);
  });

  it('creates an address book, puts, lists, updates and deletes a vCard', async () => {
    // Extended MKCOL (RFC 5689) is how CardDAV creates an address book; tsdav has no helper.
    const mkcol = await rig.client.request({
      method: 'MKCOL',
      path: '/alice/contacts/',
      headers: { authorization: basicAuth(), 'content-type': 'application/xml; charset=utf-8' },
      body: '<?xml version="1.0" encoding="utf-8"?><D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype><D:collection/><C:addressbook/></D:resourcetype><D:displayname>Contacts</D:displayname></D:prop></D:set></D:mkcol>',
    });
    expect(mkcol.status).toBe(201);
    const dav = client('carddav');
    await dav.login();
    const books = await dav.fetchAddressBooks();
    const contacts = books.find((b) => b.url === `${rig.base}/alice/contacts/`);
    expect(contacts?.displayName).toBe('Contacts');

    const created = await dav.createVCard({ addressBook: contacts!, filename: 'ada.vcf', vCardString: vcard('Ada Lovelace') });
    expect(created.status).toBe(201);
    let cards = await dav.fetchVCards({ addressBook: contacts! });
    expect(cards).toHaveLength(1);
    expect(cards[0]!.data).toContain('FN:Ada Lovelace');
    expect((await upstreamGet('/alice/contacts/ada.vcf')).text).toContain('FN:Ada Lovelace');

    const updated = await dav.updateVCard({ vCard: { ...cards[0]!, data: vcard('Ada King') } });
    expect(updated.ok).toBe(true);
    cards = await dav.fetchVCards({ addressBook: contacts! });
    expect(cards[0]!.data).toContain('FN:Ada King');

    const deleted = await dav.deleteVCard({ vCard: cards[0]! });
    expect(deleted.ok).toBe(true);
    expect(await dav.fetchVCards({ addressBook: contacts! })).toHaveLength(0);
  });
});

describe('requests are really authenticated each time', () => {
  it('verifies every request (auth.ok each time) and records the last use', async () => {
    const before = rig.postern.logs.events('auth.ok').length;
    const res = await rig.client.request({ method: 'PROPFIND', path: '/alice/', headers: { authorization: basicAuth(), depth: '0' } });
    expect(res.status).toBe(207);
    const res2 = await rig.client.request({ method: 'PROPFIND', path: '/alice/', headers: { authorization: basicAuth(), depth: '0' } });
    expect(res2.status).toBe(207);
    expect(rig.postern.logs.events('auth.ok').length).toBe(before + 2);
    const used = (await rig.postern.accounts.listPasswords(ALICE.login)).find((p) => p.label === 'phone');
    expect(used?.lastUsedProtocol).toMatch(/^(caldav|carddav)$/);
    expect(used?.lastUsedAddress).toBe('127.0.0.1');
  });

  it('logs one session.started (info, with ip) per connection and password, not one per request', async () => {
    const tablet = (await rig.postern.newPassword(ALICE.login, ALICE.primary, { label: 'tablet' })).password;
    const auth = (password: string) => `Basic ${Buffer.from(`${ALICE.login}:${password}`).toString('base64')}`;
    const started = () => rig.postern.logs.events('session.started');
    const before = started().length;
    const one = davClient(rig.postern.port('dav'), rig.postern.caPem);
    const two = davClient(rig.postern.port('dav'), rig.postern.caPem);
    try {
      const propfind = (c: typeof one, password: string) => c.request({ method: 'PROPFIND', path: '/alice/', headers: { authorization: auth(password), depth: '0' } });
      const sockets = new Set();
      for (let i = 0; i < 3; i++) {
        const res = await propfind(one, appPassword);
        expect(res.status).toBe(207);
        sockets.add(res.socket);
      }
      expect(sockets.size).toBe(1); // keep-alive: one connection
      expect(started().length).toBe(before + 1);
      expect((await propfind(one, tablet)).status).toBe(207); // another password on it: another login
      expect(started().length).toBe(before + 2);
      expect((await propfind(two, appPassword)).status).toBe(207); // another connection: another login
      expect((await propfind(two, appPassword)).status).toBe(207);
      const lines = started().slice(before);
      expect(lines).toHaveLength(3);
      for (const line of lines) expect(line).toMatchObject({ level: 30, ip: '127.0.0.1', user: ALICE.login });
      // auth.ok still comes with every request, at debug: the login's info line is session.started.
      expect(rig.postern.logs.events('auth.ok').slice(-6).every((e) => e.level === 20)).toBe(true);
    } finally {
      one.close();
      two.close();
    }
  });
});

function basicAuth(): string {
  return `Basic ${Buffer.from(`${ALICE.login}:${appPassword}`).toString('base64')}`;
}
