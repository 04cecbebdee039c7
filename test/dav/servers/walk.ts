/**
 * The walk every DAV client does on a new account, driven by tsdav (a real client library) from the
 * bare origin: RFC 6764 `/.well-known/caldav|carddav` → current-user-principal (RFC 5397) →
 * calendar-home-set (RFC 4791 §6.2.1) / addressbook-home-set (RFC 6352 §7.1.1) → list the
 * collections → create, read back, update (If-Match, RFC 7232) and delete one event or contact.
 *
 * Shared by the direct tests of each provider-shaped upstream (test/dav/servers/*.test.ts) and meant
 * for the same walk through postern: give it postern's origin and a fetch that reaches it. It asserts
 * the steps that must hold everywhere and returns the URLs it was handed, so each test can pin the
 * shape (which host, which path) it expects.
 */
import { DAVClient, type DAVCalendar, type DAVAddressBook } from 'tsdav';
import { expect } from 'vitest';

export interface WalkTarget {
  /** Where the client starts: a bare origin with `/`, as a user types it. */
  serverUrl: string;
  username: string;
  password: string;
  fetch: typeof globalThis.fetch;
}

export interface Walk {
  wellKnown: { status: number; location: string | null };
  principalUrl: string;
  homeUrl: string;
  collections: string[];
  collectionUrl: string;
  objectUrl: string;
}

const UID = 'postern-walk-1';

export const event = (summary: string): string =>
  [
    'BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//postern tests//EN', 'BEGIN:VEVENT',
    `UID:${UID}`, 'DTSTAMP:20260101T090000Z', 'DTSTART:20260105T090000Z', 'DTEND:20260105T100000Z',
    `SUMMARY:${summary}`, 'END:VEVENT', 'END:VCALENDAR', '',
  ].join('\r\n');

export const vcard = (name: string): string =>
  ['BEGIN:VCARD', 'VERSION:3.0', `UID:${UID}`, `FN:${name}`, `N:${name};;;;`, 'END:VCARD', ''].join('\r\n');

export function basicAuth(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

async function wellKnown(target: WalkTarget, kind: 'caldav' | 'carddav'): Promise<Walk['wellKnown']> {
  const res = await target.fetch(new URL(`/.well-known/${kind}`, target.serverUrl), {
    method: 'PROPFIND',
    headers: { authorization: basicAuth(target.username, target.password), depth: '0' },
    redirect: 'manual',
  });
  await res.arrayBuffer();
  return { status: res.status, location: res.headers.get('location') };
}

async function login(target: WalkTarget, kind: 'caldav' | 'carddav'): Promise<DAVClient> {
  const dav = new DAVClient({
    serverUrl: target.serverUrl,
    credentials: { username: target.username, password: target.password },
    authMethod: 'Basic',
    defaultAccountType: kind,
    fetch: target.fetch,
  });
  await dav.login();
  expect(dav.account?.principalUrl).toBeTruthy();
  expect(dav.account?.homeUrl).toBeTruthy();
  return dav;
}

/** An event calendar of the account, made under the home when the server provisions none. */
async function eventCalendar(dav: DAVClient, homeUrl: string): Promise<DAVCalendar[]> {
  const supportsEvents = (c: DAVCalendar) => !c.components || c.components.includes('VEVENT');
  let calendars = (await dav.fetchCalendars()).filter(supportsEvents);
  if (calendars.length === 0) {
    const made = await dav.makeCalendar({ url: new URL('postern-walk/', homeUrl).href, props: { displayname: 'Walk' } });
    expect(made[0]?.ok).toBe(true);
    calendars = (await dav.fetchCalendars()).filter(supportsEvents);
  }
  expect(calendars.length).toBeGreaterThan(0);
  return calendars;
}

export async function walkCalDav(target: WalkTarget): Promise<Walk> {
  const known = await wellKnown(target, 'caldav');
  const dav = await login(target, 'caldav');
  const calendars = await eventCalendar(dav, dav.account!.homeUrl!);
  const calendar = calendars[0]!;
  const created = await dav.createCalendarObject({ calendar, filename: 'postern-walk.ics', iCalString: event('Planning') });
  expect(created.status).toBe(201);
  let objects = await dav.fetchCalendarObjects({ calendar });
  let mine = objects.find((o) => o.url.endsWith('/postern-walk.ics'));
  expect(mine?.data).toContain('SUMMARY:Planning');
  expect(mine?.etag).toBeTruthy();
  const objectUrl = mine!.url;

  const updated = await dav.updateCalendarObject({ calendarObject: { ...mine!, data: event('Planning (moved)') } });
  expect(updated.ok).toBe(true);
  const stale = await dav.updateCalendarObject({ calendarObject: { ...mine!, data: event('lost update') } });
  expect(stale.status).toBe(412);
  objects = await dav.fetchCalendarObjects({ calendar });
  mine = objects.find((o) => o.url === objectUrl);
  expect(mine?.data).toContain('SUMMARY:Planning (moved)');

  const deleted = await dav.deleteCalendarObject({ calendarObject: mine! });
  expect(deleted.ok).toBe(true);
  expect((await dav.fetchCalendarObjects({ calendar })).find((o) => o.url === objectUrl)).toBeUndefined();
  return {
    wellKnown: known,
    principalUrl: dav.account!.principalUrl!,
    homeUrl: dav.account!.homeUrl!,
    collections: calendars.map((c) => c.url),
    collectionUrl: calendar.url,
    objectUrl,
  };
}

/** An address book of the account, made with extended MKCOL (RFC 5689) when there is none. */
async function addressBooks(dav: DAVClient, target: WalkTarget, homeUrl: string): Promise<DAVAddressBook[]> {
  let books = await dav.fetchAddressBooks();
  if (books.length === 0) {
    const res = await target.fetch(new URL('postern-walk-contacts/', homeUrl), {
      method: 'MKCOL',
      headers: { authorization: basicAuth(target.username, target.password), 'content-type': 'application/xml; charset=utf-8' },
      body: '<?xml version="1.0" encoding="utf-8"?><D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype><D:collection/><C:addressbook/></D:resourcetype><D:displayname>Walk</D:displayname></D:prop></D:set></D:mkcol>',
    });
    expect(res.status).toBe(201);
    books = await dav.fetchAddressBooks();
  }
  expect(books.length).toBeGreaterThan(0);
  return books;
}

/**
 * The vCards of a book, listed the way vdirsyncer and DAVx5 do: PROPFIND Depth 1 for the hrefs,
 * then addressbook-multiget (RFC 6352 §8.7). tsdav's own listing is an addressbook-query with a
 * prop-filter, which Xandikos 0.2.8 (Debian 12) answers with a 500 (AttributeError in its filter).
 */
async function vCards(dav: DAVClient, addressBook: DAVAddressBook) {
  const listing = await dav.propfind({ url: addressBook.url, props: { 'd:getetag': {} }, depth: '1' });
  const objectUrls = listing
    .map((r) => r.href ?? '')
    .filter((href) => href.endsWith('.vcf'))
    .map((href) => new URL(href, addressBook.url).href);
  return objectUrls.length === 0 ? [] : dav.fetchVCards({ addressBook, objectUrls });
}

export async function walkCardDav(target: WalkTarget): Promise<Walk> {
  const known = await wellKnown(target, 'carddav');
  const dav = await login(target, 'carddav');
  const books = await addressBooks(dav, target, dav.account!.homeUrl!);
  const addressBook = books[0]!;
  const created = await dav.createVCard({ addressBook, filename: 'postern-walk.vcf', vCardString: vcard('Ada Lovelace') });
  expect(created.status).toBe(201);
  let cards = await vCards(dav, addressBook);
  let mine = cards.find((c) => c.url.endsWith('/postern-walk.vcf'));
  expect(mine?.data).toContain('FN:Ada Lovelace');
  expect(mine?.etag).toBeTruthy();
  const objectUrl = mine!.url;

  const updated = await dav.updateVCard({ vCard: { ...mine!, data: vcard('Ada King') } });
  expect(updated.ok).toBe(true);
  const stale = await dav.updateVCard({ vCard: { ...mine!, data: vcard('lost update') } });
  expect(stale.status).toBe(412);
  cards = await vCards(dav, addressBook);
  mine = cards.find((c) => c.url === objectUrl);
  expect(mine?.data).toContain('FN:Ada King');

  const deleted = await dav.deleteVCard({ vCard: mine! });
  expect(deleted.ok).toBe(true);
  expect((await vCards(dav, addressBook)).find((c) => c.url === objectUrl)).toBeUndefined();
  return {
    wellKnown: known,
    principalUrl: dav.account!.principalUrl!,
    homeUrl: dav.account!.homeUrl!,
    collections: books.map((b) => b.url),
    collectionUrl: addressBook.url,
    objectUrl,
  };
}
