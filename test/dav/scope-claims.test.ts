/**
 * The scope bypass by lying hints, against a real Radicale that serves calendars and address books
 * side by side: a password with one DAV scope must never reach the other kind of collection,
 * whatever the request claims about itself.
 *
 * Pins: for every method, a contacts-only password is refused (the same 401 as any refusal) on a
 * calendar and what lies in it even with `Content-Type: text/vcard` and a `.vcf` name, and a
 * calendar-only password likewise on an address book with `text/calendar` and `.ics`; MOVE/COPY
 * are held to the kind at their Destination as well as at their source; the right password still
 * gets through (controls); nothing the refused requests asked for happened upstream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic } from './support/client.js';
import { ALICE, startDavRig, type DavRig } from './support/setup.js';

let rig: DavRig;
let full: string;
let calOnly: string;
let cardOnly: string;

const EVENT = 'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:lie-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260101T000000Z\r\nSUMMARY:secret meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n';
const CARD = 'BEGIN:VCARD\r\nVERSION:3.0\r\nUID:lie-2\r\nFN:Secret Contact\r\nN:Contact;Secret;;;\r\nEND:VCARD\r\n';
const MKBOOK = '<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype><D:collection/><C:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>';
const METHODS = ['GET', 'HEAD', 'PUT', 'DELETE', 'PROPFIND', 'REPORT', 'PROPPATCH', 'MKCOL', 'MKCALENDAR', 'MOVE', 'COPY', 'OPTIONS', 'POST', 'LOCK'];

beforeAll(async () => {
  rig = await startDavRig();
  const make = async (label: string, scopes?: string) => basic(ALICE.login, (await rig.postern.newPassword(ALICE.login, ALICE.primary, { label, scopes })).password);
  full = await make('full');
  calOnly = await make('calendar app', 'caldav');
  cardOnly = await make('contacts app', 'carddav');
  const setup = async (method: string, path: string, contentType?: string, body?: string) => {
    const res = await rig.client.request({ method, path, headers: { authorization: full, ...(contentType ? { 'content-type': contentType } : {}) }, body });
    expect(res.status, `${method} ${path}`).toBe(201);
  };
  await setup('MKCALENDAR', '/alice/cal/');
  await setup('MKCOL', '/alice/book/', 'application/xml', MKBOOK);
  // Names that lie about what they are: an event called .vcf, a vCard called .ics.
  await setup('PUT', '/alice/cal/lie.vcf', 'text/calendar', EVENT);
  await setup('PUT', '/alice/book/lie.ics', 'text/vcard', CARD);
});

afterAll(async () => {
  await rig?.stop();
});

interface Direction {
  name: string;
  password: () => string;
  /** The other kind's collection and a resource in it. */
  collection: string;
  resource: string;
  /** What the password may touch: its own kind's collection. */
  own: string;
  /** The lying hint. */
  claim: string;
  claimName: string;
}

const DIRECTIONS: Direction[] = [
  { name: 'a contacts-only password on a calendar', password: () => cardOnly, collection: '/alice/cal/', resource: '/alice/cal/lie.vcf', own: '/alice/book/', claim: 'text/vcard', claimName: 'x.vcf' },
  { name: 'a calendar-only password on an address book', password: () => calOnly, collection: '/alice/book/', resource: '/alice/book/lie.ics', own: '/alice/cal/', claim: 'text/calendar', claimName: 'x.ics' },
];

function attempt(d: Direction, method: string, path: string, destination?: string) {
  const body = ['PUT', 'POST', 'PROPFIND', 'REPORT', 'PROPPATCH', 'LOCK'].includes(method) ? (d.claim === 'text/vcard' ? CARD : EVENT) : undefined;
  return rig.client.request({
    method, path,
    headers: { authorization: d.password(), 'content-type': d.claim, depth: '1', ...(destination ? { destination } : {}) },
    body,
  });
}

describe.each(DIRECTIONS)('$name, with hints that lie', (d) => {
  it('is refused for every method, on the collection and on what is in it', async () => {
    for (const method of METHODS) {
      // Levels that do not exist below the collection are still in it (found by origin-fuzz.test.ts).
      for (const path of [d.collection, d.resource, `${d.collection}${d.claimName}`, `${d.collection}sub/`, `${d.collection}missing/deeper/${d.claimName}`]) {
        const destination = method === 'MOVE' || method === 'COPY' ? `${d.own}${d.claimName}` : undefined;
        const res = await attempt(d, method, path, destination);
        expect(res.status, `${method} ${path}`).toBe(401);
      }
    }
  });

  it('cannot MOVE or COPY its own kind into the other kind', async () => {
    for (const method of ['MOVE', 'COPY']) {
      const res = await attempt(d, method, `${d.own}${d.claimName}`, `${rig.base}${d.collection}${d.claimName}`);
      expect(res.status, method).toBe(401);
      const relative = await attempt(d, method, d.own, `${d.collection}moved/`);
      expect(relative.status, `${method} collection`).toBe(401);
    }
  });
});

describe('nothing refused happened, and the right passwords still work', () => {
  it('leaves both resources in place and serves them to the matching scope', async () => {
    const event = await rig.client.request({ method: 'GET', path: '/alice/cal/lie.vcf', headers: { authorization: calOnly } });
    expect(event.status).toBe(200);
    expect(event.text).toContain('SUMMARY:secret meeting');
    const card = await rig.client.request({ method: 'GET', path: '/alice/book/lie.ics', headers: { authorization: cardOnly } });
    expect(card.status).toBe(200);
    expect(card.text).toContain('FN:Secret Contact');
    for (const path of ['/alice/cal/x.vcf', '/alice/book/x.ics', '/alice/cal/sub/', '/alice/book/sub/', '/alice/cal/moved/', '/alice/book/moved/']) {
      expect((await rig.client.request({ method: 'GET', path, headers: { authorization: full } })).status, path).toBe(404);
    }
    expect((await rig.client.request({ method: 'PROPFIND', path: '/alice/', headers: { authorization: cardOnly, depth: '0' } })).status).toBe(207);
    expect(rig.postern.logs.events('dav.scope_refused').length).toBeGreaterThan(0);
  });
});
