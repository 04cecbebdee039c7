/**
 * Postern in front of the Nextcloud / SabreDAV / Baïkal shape (issue 11): one TLS origin, one
 * prefix (`/remote.php/dav/`), principals and both kinds of homes below it (real HAProxy + Xandikos,
 * test/helpers/nextcloud.ts). The admin's config is the provider's one DAV URL for both kinds.
 *
 * Pins: tsdav walks from postern's bare origin — postern answers well-known itself with a redirect
 * to the base path — through principal → home → list → event/contact create, read, update
 * (If-Match), delete, every URL on postern's origin and the same path as upstream (one origin: the
 * root mount); single-scope passwords are refused on the other kind's home and collections (the
 * kind check of a shared root), and still work on their own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostFetch, type HostFetch } from '../../helpers/dav-fetch.js';
import { startNextcloud, type NextcloudServer } from '../../helpers/nextcloud.js';
import { startPostern, type PosternHarness } from '../../helpers/postern.js';
import { basicAuth, walkCalDav, walkCardDav } from '../servers/walk.js';
import { expectOnlyPostern, scopedPasswords, type ScopedPasswords } from './support/through-postern.js';

const ALICE = { name: 'alice', password: 'nextcloud-alice-app-password', primary: 'alice primary passphrase 1' };
let nextcloud: NextcloudServer;
let postern: PosternHarness;
let client: HostFetch;
let origin: string;
const passwords: ScopedPasswords = { both: '', caldav: '', carddav: '' };

beforeAll(async () => {
  nextcloud = await startNextcloud({ users: [{ name: ALICE.name, password: ALICE.password }] });
  const url = `${nextcloud.origin}/remote.php/dav/`;
  postern = await startPostern({
    config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldav: { url }, carddav: { url }, caFile: nextcloud.caFile } },
    upstreamLookup: nextcloud.lookup,
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
  await nextcloud?.stop();
});

const target = (password: string) => ({ serverUrl: `${origin}/`, username: ALICE.name, password, fetch: client.fetch });

const onlyPostern = () => expectOnlyPostern(client, origin);

describe('Nextcloud shape (one origin, one prefix)', () => {
  it('walks CalDAV from postern\'s bare origin', async () => {
    const walk = await walkCalDav(target(passwords.both));
    expect(walk.wellKnown).toEqual({ status: 301, location: `${origin}/remote.php/dav/` });
    expect(walk.principalUrl).toBe(`${origin}/remote.php/dav/principals/users/alice/`);
    expect(walk.homeUrl).toBe(`${origin}${nextcloud.calendarHomePath('alice')}`);
    expect(walk.collections).toContain(`${origin}${nextcloud.calendarHomePath('alice')}calendar/`);
    onlyPostern();
  });

  it('walks CardDAV from postern\'s bare origin', async () => {
    const walk = await walkCardDav(target(passwords.both));
    expect(walk.principalUrl).toBe(`${origin}/remote.php/dav/principals/users/alice/`);
    expect(walk.homeUrl).toBe(`${origin}${nextcloud.addressbookHomePath('alice')}`);
    onlyPostern();
  });

  it('walks each kind with a password holding only that scope', async () => {
    await walkCalDav(target(passwords.caldav));
    await walkCardDav(target(passwords.carddav));
  });

  it('refuses a single-scope password on the other kind\'s collections', async () => {
    const propfind = async (path: string, password: string, depth = '0') => {
      const res = await client.fetch(`${origin}${path}`, { method: 'PROPFIND', headers: { authorization: basicAuth(ALICE.name, password), depth } });
      await res.arrayBuffer();
      return res.status;
    };
    const calendar = `${nextcloud.calendarHomePath('alice')}calendar/`;
    const book = `${nextcloud.addressbookHomePath('alice')}addressbook/`;
    expect(await propfind(book, passwords.caldav)).toBe(401);
    expect(await propfind(`${book}x.vcf`, passwords.caldav)).toBe(401);
    expect(await propfind(calendar, passwords.carddav, '1')).toBe(401);
    expect(await propfind(calendar, passwords.caldav)).toBe(207);
    expect(await propfind(book, passwords.carddav)).toBe(207);
  });
});
