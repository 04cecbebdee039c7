/**
 * Attacks on following sibling hosts (iCloud's `pNN-caldav`, issue 11). Security property: the real
 * credentials go to a configured upstream origin, or to a host a configured upstream named AND the
 * admin's pattern allows, and nowhere else. In-process https upstreams on loopback, reached by name
 * through the test resolver (fakes are what can lie):
 * - `caldav.icloud.test`, configured with `follow: ['*.icloud.test:*']`, hands out its principal on
 *   `p07-caldav.icloud.test` and, lying, a home on `p07-caldav.evil.test` (outside the pattern);
 * - `p99-caldav.icloud.test` matches the pattern but is never handed out: only a client names it.
 * Pins: the handed-out sibling is mounted and reached with the account's credentials; the lying
 * host is left as written and never contacted; a client naming the never-handed host by path,
 * percent-encoded path, absolute or path Destination, request-body href or Host header reaches
 * nothing there; dot segments and encoded slashes cannot cross from one mount into another.
 */
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSelfSigned } from '../../../src/net/certs.js';
import { hostLookup } from '../../helpers/dav-hosts.js';
import { startPostern, type PosternHarness } from '../../helpers/postern.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { basic, davClient, type DavTestClient } from '../support/client.js';

const NAMES = ['caldav.icloud.test', 'p07-caldav.icloud.test', 'p99-caldav.icloud.test', 'p07-caldav.evil.test'] as const;
type Name = (typeof NAMES)[number];
const UPSTREAM_SECRET = 'icloud-app-specific-upstream-secret';
const PRIMARY = 'alice primary passphrase';

const servers = new Map<Name, { server: https.Server; origin: string; seen: string[] }>();
let postern: PosternHarness;
let client: DavTestClient;
let auth: string;
let dir: string;

const origin = (name: Name) => servers.get(name)!.origin;
const host = (name: Name) => new URL(origin(name)).host;
const seenAt = (name: Name) => servers.get(name)!.seen;

function multistatus(hrefs: string[]): string {
  return `<?xml version="1.0" encoding="utf-8"?><d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:response><d:href>/</d:href><d:propstat><d:prop>${hrefs
    .map((h, i) => (i === 0 ? `<d:current-user-principal><d:href>${h}</d:href></d:current-user-principal>` : `<c:calendar-home-set><d:href>${h}</d:href></c:calendar-home-set>`))
    .join('')}</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response></d:multistatus>`;
}

function answer(name: Name) {
  return (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      servers.get(name)!.seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? '-'} ${String(req.headers.destination ?? '')}`);
      const body = name === 'caldav.icloud.test'
        ? multistatus([`${origin('p07-caldav.icloud.test')}/123/principal/`, `${origin('p07-caldav.evil.test')}/123/calendars/`])
        : multistatus(['/123/principal/', '/123/calendars/']);
      res.writeHead(207, { 'content-type': 'application/xml; charset=utf-8' }).end(body);
    });
  };
}

beforeAll(async () => {
  dir = await makeTempDir('postern-siblings-');
  const cert = generateSelfSigned([...NAMES]);
  const caFile = path.join(dir, 'ca.pem');
  writeFileSync(caFile, cert.certPem);
  for (const name of NAMES) {
    const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, answer(name));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.set(name, { server, origin: `https://${name}:${(server.address() as AddressInfo).port}`, seen: [] });
  }
  postern = await startPostern({
    config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldav: { url: `${origin('caldav.icloud.test')}/`, follow: ['*.icloud.test:*'] }, caFile } },
    upstreamLookup: hostLookup(Object.fromEntries(NAMES.map((n) => [n, '127.0.0.1']))),
    secrets: [UPSTREAM_SECRET],
  });
  await postern.addUser('alice', PRIMARY, { mode: 'password', secret: UPSTREAM_SECRET });
  auth = basic('alice', (await postern.newPassword('alice', PRIMARY, { label: 'phone' })).password);
  client = davClient(postern.port('dav'), postern.caPem);
});

afterAll(async () => {
  client?.close();
  await postern?.stop();
  for (const { server } of servers.values()) server.close();
  await removeTempDir(dir);
});

const propfind = (path: string, headers: Record<string, string> = {}) => client.request({ method: 'PROPFIND', path, headers: { authorization: auth, depth: '0', ...headers } });
const upstreamAuth = basic('alice', UPSTREAM_SECRET);

describe('sibling hosts', () => {
  it('follows the host the upstream handed out (within the pattern) with the account\'s credentials', async () => {
    const front = await propfind('/');
    expect(front.status).toBe(207);
    const base = `https://127.0.0.1:${postern.port('dav')}`;
    expect(front.text).toContain(`<d:href>${base}/@${host('p07-caldav.icloud.test')}/123/principal/</d:href>`);
    const principal = await propfind(`/@${host('p07-caldav.icloud.test')}/123/principal/`);
    expect(principal.status).toBe(207);
    expect(principal.text).toContain(`<d:href>/@${host('p07-caldav.icloud.test')}/123/calendars/</d:href>`);
    expect(seenAt('p07-caldav.icloud.test')).toEqual([`PROPFIND /123/principal/ ${upstreamAuth} `]);
    expect(postern.logs.events('dav.host_followed')).toHaveLength(1);
  });

  it('lying upstream: a handed-out host outside the pattern stays as written and is never contacted', async () => {
    const front = await propfind('/');
    expect(front.text).toContain(`<d:href>${origin('p07-caldav.evil.test')}/123/calendars/</d:href>`);
    expect((await propfind(`/@${host('p07-caldav.evil.test')}/123/calendars/`)).status).toBe(404);
    expect(seenAt('p07-caldav.evil.test')).toEqual([]);
  });

  it('a client naming an allowed-pattern host it was never handed reaches nothing there', async () => {
    const p99 = host('p99-caldav.icloud.test');
    const base = `https://127.0.0.1:${postern.port('dav')}`;
    expect((await propfind(`/@${p99}/1/`)).status).toBe(404);
    expect((await propfind(`/%40${p99}/1/`)).status).toBe(404);
    expect((await propfind(`/@${p99.toUpperCase()}/1/`)).status).toBe(404);
    expect((await client.request({ method: 'GET', path: `https://${p99}/1/`, headers: { authorization: auth } })).status).toBe(400);
    expect((await client.request({ method: 'GET', path: `//${p99}/1/`, headers: { authorization: auth } })).status).toBe(400);
    const front = `/@${host('p07-caldav.icloud.test')}/123/calendars/a.ics`;
    for (const destination of [`https://${p99}/1/b.ics`, `${origin('p99-caldav.icloud.test')}/1/b.ics`, `/@${p99}/1/b.ics`, `${base}/@${p99}/1/b.ics`]) {
      expect((await client.request({ method: 'MOVE', path: front, headers: { authorization: auth, destination } })).status, destination).toBe(502);
    }
    const report = `<?xml version="1.0"?><c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:href>${base}/@${p99}/1/x.ics</d:href><d:href>/@${p99}/1/y.ics</d:href></c:calendar-multiget>`;
    const viaBody = await client.request({ method: 'REPORT', path: '/', headers: { authorization: auth, 'content-type': 'application/xml', depth: '1' }, body: Buffer.from(report) });
    expect(viaBody.status).toBe(207);
    for (const hostHeader of [p99, 'p99-caldav.icloud.test']) {
      expect((await propfind(`/@${p99}/1/`, { host: hostHeader })).status).toBe(404);
      expect((await propfind('/', { host: hostHeader })).status).toBe(207);
    }
    expect(seenAt('p99-caldav.icloud.test')).toEqual([]);
  });

  it('dot segments and encoded slashes cannot cross from one mount into another', async () => {
    const front = host('caldav.icloud.test');
    const p99 = host('p99-caldav.icloud.test');
    for (const path of [`/@${front}/../@${p99}/1/`, `/@${front}/%2e%2e/@${p99}/1/`, `/@${front}%2F..%2F@${p99}/1/`, `/@${front}/..%2F@${p99}/`, `/@${front}\\..\\@${p99}/`]) {
      expect((await propfind(path)).status, path).toBe(400);
    }
    expect(seenAt('p99-caldav.icloud.test')).toEqual([]);
  });
});
