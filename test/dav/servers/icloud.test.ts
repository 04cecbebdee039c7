/**
 * The iCloud-shaped upstream on its own (no postern): Radicale behind the discovery front, walked by
 * tsdav from the bare discovery origins `caldav.icloud.test` and `contacts.icloud.test`.
 *
 * Pins: `.well-known` → 301 `/`; discovery hands out the principal and homes as absolute URLs on the
 * sibling partition host under `/<dsid>/`; every request after discovery goes to the partition host,
 * by its own address (a Host that does not match the address gets 421); the event and the contact
 * really land in Radicale; a wrong password is refused by Radicale through both hosts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostFetch, type HostFetch } from '../../helpers/dav-fetch.js';
import { startICloud, type ICloudServer } from '../../helpers/icloud.js';
import { basicAuth, walkCalDav, walkCardDav } from './walk.js';

const ALICE = { name: 'alice', password: 'icloud-alice-secret' };
const BOB = { name: 'bob', password: 'icloud-bob-secret' };
let icloud: ICloudServer;
let client: HostFetch;

beforeAll(async () => {
  const started = Date.now();
  icloud = await startICloud({ users: [ALICE, BOB], hrefs: 'absolute' });
  console.info(`icloud shape (radicale + front) started in ${Date.now() - started} ms`);
  client = hostFetch({ caPem: icloud.caPem, hosts: icloud.hosts });
}, 60_000);

afterAll(async () => {
  client?.close();
  await icloud?.stop();
});

const target = (origin: string, user = ALICE) => ({ serverUrl: `${origin}/`, username: user.name, password: user.password, fetch: client.fetch });

describe('Radicale behind the iCloud-shaped discovery front (absolute hrefs, walked by tsdav)', () => {
  it('walks CalDAV from caldav. and is sent to p07-caldav. under /<dsid>/', async () => {
    const seen = client.requests.length;
    const walk = await walkCalDav(target(icloud.caldavOrigin));
    const partition = `${icloud.caldavPartitionOrigin}/${icloud.dsid('alice')}/alice/`;
    expect(walk.wellKnown).toEqual({ status: 301, location: '/' });
    expect(walk.principalUrl).toBe(partition);
    expect(walk.homeUrl).toBe(partition);
    expect(walk.objectUrl.startsWith(partition)).toBe(true);
    const hosts = client.requests.slice(seen).map((r) => new URL(r.url).host);
    // Discovery on caldav., then everything on the partition host.
    const firstPartition = hosts.indexOf(new URL(icloud.caldavPartitionOrigin).host);
    expect(firstPartition).toBeGreaterThan(0);
    expect(hosts.slice(firstPartition).every((h) => h === new URL(icloud.caldavPartitionOrigin).host)).toBe(true);
    const stored = await fetch(new URL(`/alice/`, icloud.radicale.url), { method: 'PROPFIND', headers: { authorization: basicAuth(ALICE.name, ALICE.password), depth: '1' } });
    expect(await stored.text()).toContain('/alice/postern-walk/');
  });

  it('walks CardDAV from contacts. and is sent to p07-contacts.', async () => {
    const walk = await walkCardDav(target(icloud.contactsOrigin));
    const partition = `${icloud.contactsPartitionOrigin}/${icloud.dsid('alice')}/alice/`;
    expect(walk.wellKnown).toEqual({ status: 301, location: '/' });
    expect(walk.principalUrl).toBe(partition);
    expect(walk.homeUrl).toBe(partition);
    expect(walk.objectUrl.startsWith(partition)).toBe(true);
  });

  it('gives each user their own dsid', async () => {
    const walk = await walkCalDav(target(icloud.caldavOrigin, BOB));
    expect(icloud.dsid('bob')).not.toBe(icloud.dsid('alice'));
    expect(walk.principalUrl).toBe(`${icloud.caldavPartitionOrigin}/${icloud.dsid('bob')}/bob/`);
  });

  it('refuses a wrong password on both hosts, and a Host that is not the address\'s name', async () => {
    const wrong = { authorization: basicAuth(ALICE.name, 'not-it'), depth: '0' };
    expect((await client.fetch(`${icloud.caldavOrigin}/`, { method: 'PROPFIND', headers: wrong })).status).toBe(401);
    expect((await client.fetch(`${icloud.caldavPartitionOrigin}${icloud.principalPath('alice')}`, { method: 'PROPFIND', headers: wrong })).status).toBe(401);
    const misdirected = await client.fetch(`${icloud.caldavOrigin}/`, {
      method: 'PROPFIND',
      headers: { authorization: basicAuth(ALICE.name, ALICE.password), depth: '0', host: new URL(icloud.caldavPartitionOrigin).host },
    });
    expect(misdirected.status).toBe(421);
  });
});

describe('the default shape: path-absolute hrefs on the partition host', () => {
  let shaped: ICloudServer;
  let raw: HostFetch;
  beforeAll(async () => {
    shaped = await startICloud({ users: [ALICE] });
    raw = hostFetch({ caPem: shaped.caPem, hosts: shaped.hosts });
  }, 60_000);
  afterAll(async () => {
    raw?.close();
    await shaped?.stop();
  });

  const propfind = async (url: string, prop: string) => {
    const res = await raw.fetch(url, {
      method: 'PROPFIND',
      headers: { authorization: basicAuth(ALICE.name, ALICE.password), depth: '0', 'content-type': 'application/xml' },
      body: `<propfind xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="urn:ietf:params:xml:ns:carddav"><prop>${prop}</prop></propfind>`,
    });
    expect(res.status).toBe(207);
    return res.text();
  };

  it('hands out the partition principal at discovery, then answers in /<dsid>/ paths on the partition', async () => {
    const dsid = shaped.dsid('alice');
    const root = await propfind(`${shaped.caldavOrigin}/`, '<current-user-principal/>');
    expect(root).toContain(`<current-user-principal><href>${shaped.caldavPartitionOrigin}/${dsid}/alice/</href>`);
    const principal = await propfind(`${shaped.caldavPartitionOrigin}/${dsid}/alice/`, '<C:calendar-home-set/>');
    expect(principal).toContain(`<href>/${dsid}/alice/</href>`);
    expect(principal).not.toContain('https://');
    const contacts = await propfind(`${shaped.contactsOrigin}/`, '<current-user-principal/>');
    expect(contacts).toContain(`<href>${shaped.contactsPartitionOrigin}/${dsid}/alice/</href>`);
    expect(shaped.requests.map((r) => r.host)).toEqual(['caldav.icloud.test', 'p07-caldav.icloud.test', 'contacts.icloud.test']);
  });

  it('answers 404 outside /<dsid>/ on the partition and 405 to anything but PROPFIND on discovery', async () => {
    const auth = { authorization: basicAuth(ALICE.name, ALICE.password) };
    expect((await raw.fetch(`${shaped.caldavPartitionOrigin}/alice/`, { headers: auth })).status).toBe(404);
    expect((await raw.fetch(`${shaped.caldavOrigin}/alice/`, { method: 'PUT', headers: auth, body: 'x' })).status).toBe(405);
  });
});
