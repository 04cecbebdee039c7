/**
 * Postern in front of the Fastmail shape (issue 11): a real Cyrus httpd on two TLS origins,
 * `caldav.fastmail.test` and `carddav.fastmail.test`, both with `/dav/principals/user/<u>/`. The
 * admin's config is the provider's two URLs; clients start from postern's bare origin.
 *
 * Pins: tsdav walks well-known → principal → home → list → create, read, update (If-Match), delete
 * for an event and a contact through postern, every URL it is handed being on postern's origin
 * under the mount of the upstream that served it (`/@caldav.fastmail.test:PORT/dav/…`), never on a
 * Cyrus host; a caldav-only password is refused on the carddav mount (principal, home, a contact)
 * and a carddav-only one on the caldav mount, each still working on its own; no secret reaches a log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostFetch, type HostFetch } from '../../helpers/dav-fetch.js';
import { startCyrus, type CyrusServer } from '../../helpers/cyrus.js';
import { startPostern, type PosternHarness } from '../../helpers/postern.js';
import { discover, startUrl } from '../../../src/dav/discovery.js';
import { DavRoutes } from '../../../src/dav/routes.js';
import { HttpUpstream } from '../../../src/upstream/http.js';
import { basicAuth, walkCalDav, walkCardDav } from '../servers/walk.js';
import { pythonCaldavWalk } from './support/python-caldav.js';
import { expectOnlyPostern, scopedPasswords, type ScopedPasswords } from './support/through-postern.js';

const ALICE = { name: 'alice', password: 'cyrus-alice-upstream-secret', primary: 'alice primary passphrase 1' };
let cyrus: CyrusServer;
let postern: PosternHarness;
let client: HostFetch;
let origin: string;
const passwords: ScopedPasswords = { both: '', caldav: '', carddav: '' };

beforeAll(async () => {
  cyrus = await startCyrus({ users: [{ name: ALICE.name, password: ALICE.password }] });
  postern = await startPostern({
    config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldav: { url: `${cyrus.caldavOrigin}/` }, carddav: { url: `${cyrus.carddavOrigin}/` }, caFile: cyrus.caFile } },
    upstreamLookup: cyrus.lookup,
    secrets: [ALICE.password],
  });
  await postern.addUser(ALICE.name, ALICE.primary, { mode: 'password', secret: ALICE.password });
  Object.assign(passwords, await scopedPasswords(postern, ALICE));
  origin = `https://127.0.0.1:${postern.port('dav')}`;
  client = hostFetch({ caPem: postern.caPem, hosts: {} });
}, 90_000);

afterAll(async () => {
  client?.close();
  await postern?.stop();
  await cyrus?.stop();
});

const target = (password: string) => ({ serverUrl: `${origin}/`, username: ALICE.name, password, fetch: client.fetch });
const calMount = () => `${origin}/@${new URL(cyrus.caldavOrigin).host}`;
const cardMount = () => `${origin}/@${new URL(cyrus.carddavOrigin).host}`;

const onlyPostern = () => expectOnlyPostern(client, origin);

describe('Fastmail shape (Cyrus, two origins)', () => {
  it('walks CalDAV from postern\'s bare origin, under the caldav mount', async () => {
    const walk = await walkCalDav(target(passwords.both));
    expect(walk.wellKnown.status).toBe(301);
    expect(walk.wellKnown.location).toBe(`${calMount()}/dav/calendars`);
    expect(walk.principalUrl).toBe(`${calMount()}/dav/principals/user/alice/`);
    expect(walk.homeUrl).toBe(`${calMount()}/dav/calendars/user/alice/`);
    expect(walk.collections).toContain(`${calMount()}/dav/calendars/user/alice/Default/`);
    onlyPostern();
  });

  it('walks CardDAV from postern\'s bare origin, under the carddav mount', async () => {
    const walk = await walkCardDav(target(passwords.both));
    expect(walk.wellKnown.location).toBe(`${cardMount()}/dav/addressbooks`);
    expect(walk.principalUrl).toBe(`${cardMount()}/dav/principals/user/alice/`);
    expect(walk.homeUrl).toBe(`${cardMount()}/dav/addressbooks/user/alice/`);
    onlyPostern();
  });

  // python-caldav 0.11 (Debian) does no RFC 6764 discovery and keeps the URL it was given as the
  // principal's base, so it is given the DAV root as Fastmail's docs name it, under postern's mount.
  it('python-caldav (a second real client) walks principal, home, calendars and an event (issue 11: it used to get NotFoundError)', async () => {
    const walk = await pythonCaldavWalk({ url: `${calMount()}/dav/`, user: ALICE.name, password: passwords.caldav, caPem: postern.caPem, dir: postern.dir });
    // It prints `@` percent-encoded (`/%40caldav…`): the same path (request-target.ts decodes segments).
    const plain = decodeURIComponent;
    expect(plain(walk.principal)).toBe(`${calMount()}/dav/principals/user/alice/`);
    expect(plain(walk.home)).toBe(`${calMount()}/dav/calendars/user/alice/`);
    expect(walk.calendars.map(plain)).toContain(`${calMount()}/dav/calendars/user/alice/Default/`);
    expect(walk).toMatchObject({ read: true, updated: true, deleted: true });
  });

  it('walks each kind with a password holding only that scope', async () => {
    await walkCalDav(target(passwords.caldav));
    await walkCardDav(target(passwords.carddav));
  });

  it('refuses a single-scope password on the other kind\'s mount, principal included', async () => {
    const propfind = async (url: string, password: string) => {
      const res = await client.fetch(url, { method: 'PROPFIND', headers: { authorization: basicAuth(ALICE.name, password), depth: '0' } });
      await res.arrayBuffer();
      return res.status;
    };
    for (const path of ['/dav/principals/user/alice/', '/dav/addressbooks/user/alice/', '/dav/addressbooks/user/alice/Default/x.vcf', '/dav/calendars/user/alice/']) {
      expect(await propfind(cardMount() + path, passwords.caldav), path).toBe(401);
    }
    for (const path of ['/dav/principals/user/alice/', '/dav/calendars/user/alice/', '/dav/calendars/user/alice/Default/']) {
      expect(await propfind(calMount() + path, passwords.carddav), path).toBe(401);
    }
    expect(await propfind(`${calMount()}/dav/principals/user/alice/`, passwords.caldav)).toBe(207);
    expect(await propfind(`${cardMount()}/dav/principals/user/alice/`, passwords.carddav)).toBe(207);
    const wellKnown = await client.fetch(`${origin}/.well-known/carddav`, { method: 'PROPFIND', headers: { authorization: basicAuth(ALICE.name, passwords.caldav) }, redirect: 'manual' });
    expect(wellKnown.status).toBe(401);
  });

  it('dav check\'s discovery walks both origins with the account\'s credentials (what `postern dav check` prints)', async () => {
    const routes = DavRoutes.fromConfig({ caldav: { url: `${cyrus.caldavOrigin}/` }, carddav: { url: `${cyrus.carddavOrigin}/` } });
    const upstream = new HttpUpstream({ caFile: cyrus.caFile, rejectUnauthorized: true, timeoutMs: 5000, lookup: cyrus.lookup }, routes.origins());
    const credential = { kind: 'password' as const, username: ALICE.name, password: ALICE.password };
    try {
      const cal = await discover({ routes, upstream, credential }, 'caldav', startUrl(`${cyrus.caldavOrigin}/`, 'caldav'));
      expect(cal).toMatchObject({ principal: `${cyrus.caldavOrigin}/dav/principals/user/alice/`, home: `${cyrus.caldavOrigin}/dav/calendars/user/alice/` });
      expect(cal.collections.map((c) => c.url)).toContain(`${cyrus.caldavOrigin}/dav/calendars/user/alice/Default/`);
      const card = await discover({ routes, upstream, credential }, 'carddav', startUrl(`${cyrus.carddavOrigin}/`, 'carddav'));
      expect(card).toMatchObject({ principal: `${cyrus.carddavOrigin}/dav/principals/user/alice/`, home: `${cyrus.carddavOrigin}/dav/addressbooks/user/alice/` });
      const wrong = discover({ routes, upstream, credential: { ...credential, password: 'not-it' } }, 'caldav', startUrl(`${cyrus.caldavOrigin}/`, 'caldav'));
      await expect(wrong).rejects.toMatchObject({ code: 'UPSTREAM_AUTH_REJECTED' });
    } finally {
      upstream.close();
    }
  });
});
