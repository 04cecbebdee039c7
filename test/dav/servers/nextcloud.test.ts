/**
 * The Nextcloud-shaped upstream on its own (no postern): HAProxy (TLS + Basic) in front of one
 * Xandikos per user, everything under `/remote.php/dav/` on `nextcloud.test`, walked by tsdav from
 * the bare origin.
 *
 * Pins: `.well-known` answers 301 to `/remote.php/dav/` without credentials; the principal is
 * `/remote.php/dav/principals/users/<u>/`; the homes and the provisioned collections are below the
 * same prefix; events and contacts round-trip; HAProxy refuses a wrong password and no password;
 * users are kept apart (each has their own Xandikos).
 */
import { access } from 'node:fs/promises';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostFetch, type HostFetch } from '../../helpers/dav-fetch.js';
import { startNextcloud, type NextcloudServer } from '../../helpers/nextcloud.js';
import { basicAuth, walkCalDav, walkCardDav } from './walk.js';

const ALICE = { name: 'alice', password: 'nextcloud-alice-secret' };
const BOB = { name: 'bob', password: 'nextcloud-bob-secret' };
let nextcloud: NextcloudServer;
let client: HostFetch;

beforeAll(async () => {
  const started = Date.now();
  nextcloud = await startNextcloud({ users: [ALICE, BOB] });
  console.info(`nextcloud shape (haproxy + 2 xandikos) started in ${Date.now() - started} ms`);
  client = hostFetch({ caPem: nextcloud.caPem, hosts: nextcloud.hosts });
}, 60_000);

afterAll(async () => {
  client?.close();
  await nextcloud?.stop();
});

const target = (user = ALICE) => ({ serverUrl: `${nextcloud.origin}/`, username: user.name, password: user.password, fetch: client.fetch });

describe('Xandikos behind HAProxy in the Nextcloud shape', () => {
  it('walks CalDAV: /remote.php/dav/principals/users/<u>/ and a home below the prefix', async () => {
    const walk = await walkCalDav(target());
    expect(walk.wellKnown).toEqual({ status: 301, location: '/remote.php/dav/' });
    expect(walk.principalUrl).toBe(`${nextcloud.origin}/remote.php/dav/principals/users/alice/`);
    expect(walk.homeUrl).toBe(`${nextcloud.origin}${nextcloud.calendarHomePath('alice')}`);
    expect(walk.collections).toContain(`${nextcloud.origin}${nextcloud.calendarHomePath('alice')}calendar/`);
    expect(walk.objectUrl.startsWith(`${nextcloud.origin}/remote.php/dav/`)).toBe(true);
  });

  it('walks CardDAV: the address book home below the same prefix', async () => {
    const walk = await walkCardDav(target());
    expect(walk.wellKnown).toEqual({ status: 301, location: '/remote.php/dav/' });
    expect(walk.principalUrl).toBe(`${nextcloud.origin}/remote.php/dav/principals/users/alice/`);
    expect(walk.homeUrl).toBe(`${nextcloud.origin}${nextcloud.addressbookHomePath('alice')}`);
    expect(walk.collections).toContain(`${nextcloud.origin}${nextcloud.addressbookHomePath('alice')}addressbook/`);
  });

  it('refuses a wrong password and a missing one with 401', async () => {
    const url = `${nextcloud.origin}${nextcloud.principalPath('alice')}`;
    const wrong = await client.fetch(url, { method: 'PROPFIND', headers: { authorization: basicAuth(ALICE.name, 'not-it'), depth: '0' } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toMatch(/^Basic realm="Nextcloud"/);
    const crossed = await client.fetch(url, { method: 'PROPFIND', headers: { authorization: basicAuth(ALICE.name, BOB.password), depth: '0' } });
    expect(crossed.status).toBe(401);
    const none = await client.fetch(url, { method: 'PROPFIND', headers: { depth: '0' } });
    expect(none.status).toBe(401);
  });

  it('keeps users apart: bob sees his own principal and nothing of alice\'s', async () => {
    const walk = await walkCalDav(target(BOB));
    expect(walk.principalUrl).toBe(`${nextcloud.origin}/remote.php/dav/principals/users/bob/`);
    const theirs = await client.fetch(`${nextcloud.origin}${nextcloud.calendarHomePath('alice')}calendar/`, {
      headers: { authorization: basicAuth(BOB.name, BOB.password) },
    });
    expect(theirs.status).toBe(404);
  });
});

describe('Nextcloud harness lifecycle', () => {
  it('stop() closes the origin, ends HAProxy and the Xandikos processes and removes the temp dir', async () => {
    const own = await startNextcloud({ users: [ALICE] });
    expect(own.pids).toHaveLength(2);
    await own.stop();
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(own.pids.filter(alive)).toEqual([]);
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: own.hosts[own.host]!, port: own.port });
      socket.once('connect', () => (socket.destroy(), resolve(false)));
      socket.once('error', () => resolve(true));
    });
    expect(refused).toBe(true);
    await expect(access(own.dir)).rejects.toThrow();
  }, 60_000);
});
