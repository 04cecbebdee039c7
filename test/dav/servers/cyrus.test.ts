/**
 * The Fastmail-shaped upstream on its own (no postern): a real Cyrus httpd on two TLS origins,
 * `caldav.fastmail.test` and `carddav.fastmail.test`, walked by tsdav from each bare origin.
 *
 * Pins the shape the DAV proxy tests rely on: each origin's `.well-known` redirects into `/dav/…`;
 * the principal is `/dav/principals/user/<u>/`, under neither home; the homes are
 * `/dav/calendars/user/<u>/` and `/dav/addressbooks/user/<u>/` on the origin that was asked; events
 * and contacts really round-trip; a wrong password is refused; both names are served by their own
 * address with a certificate for that name.
 */
import { execFile } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostFetch, type HostFetch } from '../../helpers/dav-fetch.js';
import { startCyrus, type CyrusServer } from '../../helpers/cyrus.js';
import { basicAuth, walkCalDav, walkCardDav } from './walk.js';

const ALICE = { name: 'alice', password: 'cyrus-alice-secret' };
const BOB = { name: 'bob', password: 'cyrus-bob-secret' };
let cyrus: CyrusServer;
let client: HostFetch;

beforeAll(async () => {
  const started = Date.now();
  cyrus = await startCyrus({ users: [ALICE, BOB] });
  console.info(`cyrus started in ${Date.now() - started} ms (2 users provisioned)`);
  client = hostFetch({ caPem: cyrus.caPem, hosts: cyrus.hosts });
}, 60_000);

afterAll(async () => {
  client?.close();
  await cyrus?.stop();
});

const target = (origin: string, user = ALICE) => ({ serverUrl: `${origin}/`, username: user.name, password: user.password, fetch: client.fetch });

describe('Cyrus in the Fastmail shape', () => {
  it('walks CalDAV from the caldav origin: /dav/principals/user/<u>/ and /dav/calendars/user/<u>/', async () => {
    const walk = await walkCalDav(target(cyrus.caldavOrigin));
    expect(walk.wellKnown.status).toBe(301);
    expect(walk.wellKnown.location).toBe(`${cyrus.caldavOrigin}/dav/calendars`);
    expect(walk.principalUrl).toBe(`${cyrus.caldavOrigin}/dav/principals/user/alice/`);
    expect(walk.homeUrl).toBe(`${cyrus.caldavOrigin}/dav/calendars/user/alice/`);
    expect(walk.collections).toContain(`${cyrus.caldavOrigin}/dav/calendars/user/alice/Default/`);
    expect(walk.objectUrl).toBe(`${walk.collectionUrl}postern-walk.ics`);
  });

  it('walks CardDAV from the carddav origin: /dav/addressbooks/user/<u>/', async () => {
    const walk = await walkCardDav(target(cyrus.carddavOrigin));
    expect(walk.wellKnown.status).toBe(301);
    expect(walk.wellKnown.location).toBe(`${cyrus.carddavOrigin}/dav/addressbooks`);
    expect(walk.principalUrl).toBe(`${cyrus.carddavOrigin}/dav/principals/user/alice/`);
    expect(walk.homeUrl).toBe(`${cyrus.carddavOrigin}/dav/addressbooks/user/alice/`);
    expect(walk.collections).toContain(`${cyrus.carddavOrigin}/dav/addressbooks/user/alice/Default/`);
  });

  it('serves each origin on its own address, with a certificate for its name', async () => {
    expect(cyrus.hosts[cyrus.caldavHost]).not.toBe(cyrus.hosts[cyrus.carddavHost]);
    for (const origin of [cyrus.caldavOrigin, cyrus.carddavOrigin]) {
      const res = await client.fetch(`${origin}${cyrus.principalPath('bob')}`, { method: 'PROPFIND', headers: { authorization: basicAuth(BOB.name, BOB.password), depth: '0' } });
      expect(res.status).toBe(207);
      expect(await res.text()).toContain('/dav/principals/user/bob/');
    }
  });

  it('refuses a wrong password and another user\'s home', async () => {
    const wrong = await client.fetch(`${cyrus.caldavOrigin}${cyrus.calendarHomePath('alice')}`, { method: 'PROPFIND', headers: { authorization: basicAuth(ALICE.name, 'not-it'), depth: '0' } });
    expect(wrong.status).toBe(401);
    const foreign = await client.fetch(`${cyrus.caldavOrigin}${cyrus.calendarHomePath('alice')}Default/intruder.ics`, {
      method: 'PUT',
      headers: { authorization: basicAuth(BOB.name, BOB.password), 'content-type': 'text/calendar' },
      body: 'BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n',
    });
    // Cyrus answers a path in another user's tree with a redirect into the caller's own (a share view).
    expect(foreign.status).toBeGreaterThanOrEqual(300);
    const there = await client.fetch(`${cyrus.caldavOrigin}${cyrus.calendarHomePath('alice')}Default/intruder.ics`, { headers: { authorization: basicAuth(ALICE.name, ALICE.password) } });
    expect(there.status).toBe(404);
  });
});

const refused = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => (socket.destroy(), resolve(false)));
    socket.once('error', () => resolve(true));
  });

describe('Cyrus harness lifecycle', () => {
  it('stop() ends master and every service it forked, closes both origins and removes the temp dir', async () => {
    const own = await startCyrus({ users: [ALICE] });
    const pid = Number((await readFile(join(own.dir, 'run', 'master.pid'), 'utf8')).trim());
    const group = async () => (await promisify(execFile)('ps', ['-o', 'pid=', '-g', String(pid)]).then((r) => r.stdout, () => '')).trim();
    expect(await group()).not.toBe('');
    await own.stop();
    expect(await group()).toBe('');
    for (const host of Object.values(own.hosts)) expect(await refused(host, own.port)).toBe(true);
    await expect(access(own.dir)).rejects.toThrow();
  }, 60_000);
});
