/**
 * The upstream-origin escape: a request target or Destination that a URL parser could read as
 * another authority must never make postern send an account's real credentials anywhere but the
 * configured upstream. A catcher listens next to the configured upstream and must see nothing.
 *
 * Pins: only origin-form targets are served; `//host`, absolute-form, backslashes, encoded
 * variants and `@`-tricks get a plain-text 400 and `Connection: close`, logged as
 * `dav.target_refused` with a truncated target and no credentials; an `@` inside an ordinary path
 * reaches the configured upstream as that same path; the path upstream receives is the one routing
 * judged, with the client's percent-encoding kept and empty segments removed; a Destination on
 * another server is 502 (RFC 4918 §9.9.4), a malformed one 400, never forwarded.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { REPLY_TEXT } from '../../src/dav/replies.js';
import { startCatcherRig, type CatcherRig } from './support/catcher.js';

let rig: CatcherRig;
let catcher: string;

beforeAll(async () => {
  rig = await startCatcherRig();
  catcher = `127.0.0.1:${rig.catcherPort}`;
});

afterAll(async () => {
  await rig?.stop();
});

beforeEach(() => {
  rig.recorded.length = 0;
});

const request = (method: string, target: string, extra = '', auth = rig.auth.carddav) =>
  rig.raw(`${method} ${target} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nDepth: 0${extra}`);

describe('an authority-form target never reaches another host', () => {
  const targets = () => [
    `//${catcher}/alice/`,
    `///${catcher}/alice/`,
    `//alice@${catcher}/alice/`,
    `//localhost@${catcher}/alice/`,
    `//%31%32%37.0.0.1:${rig.catcherPort}/alice/`,
    `//[::ffff:127.0.0.1]:${rig.catcherPort}/alice/`,
    `http://${catcher}/alice/`,
    `https://${catcher}/alice/`,
    `HTTP://${catcher}/alice/`,
    `http:${catcher}/alice/`,
    `${catcher}/alice/`,
    `\\\\${catcher}\\alice\\`,
    `/\\${catcher}/alice/`,
    `/%5C${catcher}/alice/`,
    `/%2F${catcher}/alice/`,
    `/.//${catcher}/alice/`,
    `/%2e/%2f${catcher}/`,
    '*',
  ];

  it('answers every one with a plain-text 400 and closes; the catcher sees no connection', async () => {
    for (const target of targets()) {
      for (const method of ['PROPFIND', 'GET', 'OPTIONS']) {
        const answer = await request(method, target);
        expect(answer.status, `${method} ${target}`).toBe(400);
        if (answer.body !== '') {
          expect(answer.head, target).toMatch(/content-type: text\/plain/i);
          expect(answer.body).toBe(`${REPLY_TEXT.badRequest}\n`);
        }
        expect(answer.closed || /connection: close/i.test(answer.head), target).toBe(true);
      }
    }
    expect(rig.caught()).toBe(0);
    expect(rig.recorded).toEqual([]);
  });

  it('logs the refusal with a truncated target and no credentials', async () => {
    const long = `//${catcher}/${'a'.repeat(500)}/`;
    expect((await request('PROPFIND', long)).status).toBe(400);
    const events = rig.postern.logs.events('dav.target_refused');
    expect(events.length).toBeGreaterThan(0);
    const last = events.at(-1)!;
    expect(String(last.target).length).toBeLessThanOrEqual(100);
    expect(JSON.stringify(last)).not.toMatch(/authorization|Basic /i);
    expect(rig.caught()).toBe(0);
  });
});

describe('paths that look like tricks but are ordinary paths stay on the configured upstream', () => {
  it('sends `@` and `:` in a path to the configured origin, as that path', async () => {
    const answer = await request('PROPFIND', `/@${catcher}/alice@example.org/`, '', rig.auth.full);
    expect(answer.status).toBe(207);
    expect(rig.recorded).toHaveLength(1);
    expect(rig.recorded[0]!.url).toBe(`/@${catcher}/alice@example.org/`);
    expect(rig.recorded[0]!.host).toBe(rig.upstreamOrigin.slice('http://'.length));
    expect(rig.caught()).toBe(0);
  });

  it('forwards the path routing judged: empty segments gone, percent-encoding kept', async () => {
    expect((await request('GET', '/alice//my%20cal///e%40x.ics?x=%2F1', '', rig.auth.full)).status).toBe(207);
    expect(rig.recorded.map((r) => r.url)).toEqual(['/alice/my%20cal/e%40x.ics?x=%2F1']);
  });
});

describe('a Destination elsewhere is never forwarded', () => {
  const destinations = () => [
    [`http://${catcher}/alice/b/`, 502],
    [`https://${catcher}/alice/b/`, 502],
    [`https://localhost@${catcher}/alice/b/`, 400],
    [`https://localhost:${rig.postern.port('dav')}@${catcher}/alice/b/`, 400],
    [`//${catcher}/alice/b/`, 400],
    [`\\\\${catcher}\\alice\\b`, 400],
    [`/\\${catcher}/alice/b/`, 400],
    [`https://localhost\\@${catcher}/alice/b/`, 400],
    [`/alice/../b/`, 400],
    [`/alice/%2e%2e/b/`, 400],
    [`/alice/%2Fb/`, 400],
    ['ftp://localhost/alice/b/', 502],
  ] as const;

  it('answers 502 for another server and 400 for a malformed one; nothing is sent anywhere', async () => {
    for (const [destination, status] of destinations()) {
      for (const method of ['MOVE', 'COPY']) {
        const answer = await request(method, '/alice/a/', `\r\nDestination: ${destination}`, rig.auth.full);
        expect(answer.status, `${method} → ${destination}`).toBe(status);
      }
    }
    expect(rig.caught()).toBe(0);
    expect(rig.recorded).toEqual([]);
  });

  it('sends a Destination on postern itself to the configured upstream', async () => {
    const answer = await request('MOVE', '/alice/a/', `\r\nDestination: https://localhost/alice//b%20c/`, rig.auth.full);
    expect(answer.status).toBe(207);
    expect(rig.recorded.map((r) => [r.url, r.destination])).toEqual([['/alice/a/', `${rig.upstreamOrigin}/alice/b%20c/`]]);
  });
});
