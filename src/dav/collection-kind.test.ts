/**
 * Reading a collection's kind from a Depth-0 multistatus, the parent rule, and the cache of
 * answers. Pins: calendar and address-book resource types are recognised under any namespace
 * prefix; look-alike elements (calendar-proxy-read, a calendar-home-set href) are not; the parent
 * of a path is its collection. The cache never lets one upstream account's answer decide another
 * account's check (a 403 to Alice does not make Bob's calendar "other" for Bob; per-user path
 * mappings stay per user), never keeps "other" (403, 404 or a plain collection: the answer that
 * admits either scope), keeps a definite kind for its TTL, and forgets a path for every account.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CollectionKinds, kindFromMultistatus, parentOf } from './collection-kind.js';
import { HttpUpstream } from '../upstream/http.js';

const ms = (resourcetype: string, extra = '') =>
  `<?xml version="1.0"?><multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><response><href>/a/</href><propstat><prop>${extra}<resourcetype>${resourcetype}</resourcetype></prop></propstat></response></multistatus>`;

describe('kindFromMultistatus', () => {
  it('recognises calendars and address books, any prefix', () => {
    expect(kindFromMultistatus(ms('<collection /><C:calendar />'))).toBe('calendar');
    expect(kindFromMultistatus(ms('<collection/><calendar xmlns="urn:ietf:params:xml:ns:caldav"/>'))).toBe('calendar');
    expect(kindFromMultistatus(ms('<D:collection/><CR:addressbook/>'))).toBe('addressbook');
    expect(kindFromMultistatus('<d:multistatus xmlns:d="DAV:"><d:response><d:propstat><d:prop><d:resourcetype><d:collection/><card:addressbook xmlns:card="urn:ietf:params:xml:ns:carddav"/></d:resourcetype></d:prop></d:propstat></d:response></d:multistatus>')).toBe('addressbook');
  });

  it('does not mistake look-alikes or other properties for a kind', () => {
    expect(kindFromMultistatus(ms('<collection/><principal/>'))).toBe('other');
    expect(kindFromMultistatus(ms('<collection/><CS:calendar-proxy-read xmlns:CS="http://calendarserver.org/ns/"/>'))).toBe('other');
    expect(kindFromMultistatus(ms('', '<C:calendar-home-set><href>/a/</href></C:calendar-home-set>'))).toBe('other');
    expect(kindFromMultistatus(ms('<collection/>', '<C:calendar-description>a <calendar> of mine</C:calendar-description>'))).toBe('other');
    expect(kindFromMultistatus('not xml at all')).toBe('other');
  });
});

describe('parentOf', () => {
  it('gives the enclosing collection', () => {
    expect(parentOf('/alice/work/e1.ics')).toBe('/alice/work/');
    expect(parentOf('/alice/work/')).toBe('/alice/');
    expect(parentOf('/alice/work')).toBe('/alice/');
    expect(parentOf('/alice/')).toBe('/');
    expect(parentOf('/')).toBeNull();
  });
});

describe('CollectionKinds cache', () => {
  const ALICE = { kind: 'password', username: 'alice', password: 'alice-secret' } as const;
  const BOB = { kind: 'password', username: 'bob', password: 'bob-secret' } as const;
  /** What each upstream user is shown at a path; anything else is a plain collection. */
  const VIEW: Record<string, Record<string, number | string>> = {
    alice: { '/bob/cal/': 403, '/bob/book/': 404, '/mine/': '<C:calendar/>', '/alice/cal/': '<C:calendar/>' },
    bob: { '/bob/cal/': '<C:calendar/>', '/mine/': '<CR:addressbook/>' },
  };
  let server: http.Server;
  let origin: string;
  let upstream: HttpUpstream;
  const probes: string[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      req.resume();
      const user = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString().split(':')[0]!;
      probes.push(`${user} ${req.url}`);
      const seen = VIEW[user]?.[req.url!] ?? '';
      if (typeof seen === 'number') return void res.writeHead(seen).end();
      res.writeHead(207, { 'content-type': 'application/xml' }).end(ms(`<collection/>${seen}`));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    upstream = new HttpUpstream({ rejectUnauthorized: true, timeoutMs: 2000 }, [origin]);
  });

  afterAll(async () => {
    upstream?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  });

  it("does not let a 403 to one account decide another account's check", async () => {
    const kinds = new CollectionKinds(upstream);
    expect(await kinds.kindAt(origin, '/bob/cal/', ALICE)).toBe('other');
    expect(await kinds.kindAt(origin, '/bob/cal/', BOB)).toBe('calendar');
    expect(await kinds.kindAt(origin, '/bob/cal/event-without-extension', BOB)).toBe('calendar');
  });

  it('keeps a definite kind per account only', async () => {
    const kinds = new CollectionKinds(upstream);
    expect(await kinds.kindAt(origin, '/mine/', ALICE)).toBe('calendar');
    expect(await kinds.kindAt(origin, '/mine/', BOB)).toBe('addressbook');
    expect(await kinds.kindAt(origin, '/mine/', ALICE)).toBe('calendar');
  });

  it('never keeps "other", keeps a definite kind for its TTL, and forgets a path for every account', async () => {
    let now = 1_000_000;
    const kinds = new CollectionKinds(upstream, () => now);
    const count = async (run: () => Promise<unknown>) => {
      const before = probes.length;
      await run();
      return probes.length - before;
    };
    // 403, 404 and a plain collection are asked again every time.
    for (const path of ['/bob/cal/', '/bob/book/', '/alice/']) {
      await kinds.kindAt(origin, path, ALICE);
      expect(await count(() => kinds.kindAt(origin, path, ALICE)), path).toBeGreaterThan(0);
    }
    await kinds.kindAt(origin, '/alice/cal/', ALICE);
    expect(await count(() => kinds.kindAt(origin, '/alice/cal/', ALICE))).toBe(0);
    expect(await count(() => kinds.kindAt(origin, '/alice/cal/x', ALICE))).toBe(0);
    now += 61_000;
    expect(await count(() => kinds.kindAt(origin, '/alice/cal/', ALICE))).toBe(1);
    await kinds.kindAt(origin, '/bob/cal/', BOB);
    kinds.forget(origin, '/');
    expect(await count(() => kinds.kindAt(origin, '/alice/cal/', ALICE))).toBe(1);
    expect(await count(() => kinds.kindAt(origin, '/bob/cal/', BOB))).toBe(1);
  });

  it('walks no higher than the configured base path (above it is not the provider\'s DAV tree)', async () => {
    const kinds = new CollectionKinds(upstream);
    probes.length = 0;
    expect(await kinds.kindAt(origin, '/remote.php/dav/x/y', ALICE, '/remote.php/dav/')).toBe('other');
    expect(probes).toEqual(['alice /remote.php/dav/x/y', 'alice /remote.php/dav/x/', 'alice /remote.php/dav/']);
  });
});
