/**
 * Postern in front of the iCloud shape (issue 11): discovery on `caldav.icloud.test` /
 * `contacts.icloud.test` hands out the account's partition host (`p07-caldav.` / `p07-contacts.`)
 * as absolute URLs under `/<dsid>/`; a real Radicale serves the data (test/helpers/icloud.ts). The
 * admin's config is the two discovery URLs with `follow: ['*.icloud.test:*']`.
 *
 * Pins: tsdav walks from postern's bare origin through well-known → principal → home → list →
 * event/contact create, read, update (If-Match), delete, every URL on postern's origin, the
 * partition reached under its own mount (`/@p07-caldav.icloud.test:PORT/<dsid>/…`) by postern with
 * the account's credentials (the front answers 421 to a wrong Host, so a wrong host would fail);
 * each partition serves only the scope of the upstream that handed it out: single-scope passwords
 * are refused on the other kind's discovery host and partition.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostFetch, type HostFetch } from '../../helpers/dav-fetch.js';
import { startICloud, type ICloudServer } from '../../helpers/icloud.js';
import { startPostern, type PosternHarness } from '../../helpers/postern.js';
import { basicAuth, walkCalDav, walkCardDav } from '../servers/walk.js';
import { expectOnlyPostern, scopedPasswords, type ScopedPasswords } from './support/through-postern.js';

const ALICE = { name: 'alice', password: 'icloud-alice-app-specific-secret', primary: 'alice primary passphrase 1' };
let icloud: ICloudServer;
let postern: PosternHarness;
let client: HostFetch;
let origin: string;
const passwords: ScopedPasswords = { both: '', caldav: '', carddav: '' };

beforeAll(async () => {
  icloud = await startICloud({ users: [{ name: ALICE.name, password: ALICE.password }] });
  const follow = ['*.icloud.test:*'];
  postern = await startPostern({
    config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldav: { url: `${icloud.caldavOrigin}/`, follow }, carddav: { url: `${icloud.contactsOrigin}/`, follow }, caFile: icloud.caFile } },
    upstreamLookup: icloud.lookup,
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
  await icloud?.stop();
});

const target = (password: string) => ({ serverUrl: `${origin}/`, username: ALICE.name, password, fetch: client.fetch });
const mount = (upstreamOrigin: string) => `${origin}/@${new URL(upstreamOrigin).host}`;

const onlyPostern = () => expectOnlyPostern(client, origin);

describe('iCloud shape (sibling hosts handed out at discovery)', () => {
  it('walks CalDAV from postern\'s bare origin, following caldav. to its partition', async () => {
    const walk = await walkCalDav(target(passwords.both));
    const partition = `${mount(icloud.caldavPartitionOrigin)}/${icloud.dsid('alice')}/alice/`;
    // The front redirects to the path `/`: it stays a path, under the discovery host's mount.
    expect(walk.wellKnown).toEqual({ status: 301, location: `/@${new URL(icloud.caldavOrigin).host}/` });
    expect(walk.principalUrl).toBe(partition);
    expect(walk.homeUrl).toBe(partition);
    expect(walk.objectUrl.startsWith(partition)).toBe(true);
    onlyPostern();
    const followed = postern.logs.events('dav.host_followed').map((e) => e.host);
    expect(followed).toContain(icloud.caldavPartitionOrigin);
    expect(icloud.requests.some((r) => r.host === new URL(icloud.caldavPartitionOrigin).hostname && r.method === 'PUT' && r.status === 201)).toBe(true);
    expect(icloud.requests.filter((r) => r.status === 421)).toEqual([]);
  });

  it('walks CardDAV from postern\'s bare origin, following contacts. to its partition', async () => {
    const walk = await walkCardDav(target(passwords.both));
    const partition = `${mount(icloud.contactsPartitionOrigin)}/${icloud.dsid('alice')}/alice/`;
    expect(walk.wellKnown.location).toBe(`/@${new URL(icloud.contactsOrigin).host}/`);
    expect(walk.principalUrl).toBe(partition);
    expect(walk.homeUrl).toBe(partition);
    onlyPostern();
  });

  it('walks each kind with a password holding only that scope', async () => {
    await walkCalDav(target(passwords.caldav));
    await walkCardDav(target(passwords.carddav));
  });

  it('refuses a single-scope password on the other kind\'s discovery host and partition', async () => {
    const propfind = async (url: string, password: string) => {
      const res = await client.fetch(url, { method: 'PROPFIND', headers: { authorization: basicAuth(ALICE.name, password), depth: '0' } });
      await res.arrayBuffer();
      return res.status;
    };
    const dsid = icloud.dsid('alice');
    expect(await propfind(`${mount(icloud.contactsOrigin)}/`, passwords.caldav)).toBe(401);
    expect(await propfind(`${mount(icloud.contactsPartitionOrigin)}/${dsid}/alice/`, passwords.caldav)).toBe(401);
    expect(await propfind(`${mount(icloud.caldavOrigin)}/`, passwords.carddav)).toBe(401);
    expect(await propfind(`${mount(icloud.caldavPartitionOrigin)}/${dsid}/alice/`, passwords.carddav)).toBe(401);
    expect(await propfind(`${mount(icloud.caldavPartitionOrigin)}/${dsid}/alice/`, passwords.caldav)).toBe(207);
  });
});
