/**
 * Property test of the DAV front (issue 9): generated request targets, paths (dot segments,
 * encodings, backslashes, `//`, `@`, unicode), Host, Destination, Content-Type, X-Forwarded-* and
 * Authorization variations, sent raw to a real postern in front of a recording upstream.
 *
 * Invariants, whatever was sent: the catcher next to the upstream never sees a connection; every
 * request the upstream receives is origin-form on the configured origin, with any Destination on
 * that same origin; a calendar-only password never gets a relayed request into the address book
 * (/alice/book/) and a contacts-only one never into the calendar (/alice/cal/), source or
 * Destination. Run count is modest (CI on 2 cores).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routingPath } from '../../src/dav/request-target.js';
import { startCatcherRig, type CatcherRig } from './support/catcher.js';

let rig: CatcherRig;

beforeAll(async () => {
  rig = await startCatcherRig();
});

afterAll(async () => {
  await rig?.stop();
});

const catcherHost = () => `127.0.0.1:${rig.catcherPort}`;

const segment = fc.oneof(
  fc.constantFrom('alice', 'cal', 'book', 'e.ics', 'c.vcf', '.', '..', '%2e', '%2E%2e', '%2f', '%2F', '%5c', '\\', '@', 'a@b', ':', '%40', 'ü', '%C3%BC', '%zz', '%00', '', ';x', '~', '%20'),
  fc.constantFrom('CATCHER', '@CATCHER', 'u:p@CATCHER'),
  fc.string({ maxLength: 4 }),
);
const prefix = fc.constantFrom('/', '/', '/', '//', '///', '/\\', '\\\\', 'http://', 'https://', 'HTTP://', '//u@', '', '*', '/alice/cal/', '/alice/book/');
const query = fc.constantFrom('', '', '?x=1', '?//CATCHER/', '?a=%2F', '#frag');
const target = fc.tuple(prefix, fc.array(segment, { maxLength: 5 }), fc.boolean(), query).map(([p, segs, slash, q]) => `${p}${segs.join('/')}${slash ? '/' : ''}${q}`);
const destination = fc.option(fc.oneof(target, target.map((t) => `https://localhost${t}`), target.map((t) => `http://CATCHER${t}`), target.map((t) => `https://localhost@CATCHER${t}`)), { nil: undefined });
const method = fc.constantFrom('GET', 'HEAD', 'PUT', 'DELETE', 'PROPFIND', 'REPORT', 'PROPPATCH', 'MKCOL', 'MKCALENDAR', 'MOVE', 'COPY', 'OPTIONS', 'POST');
const host = fc.constantFrom('localhost', 'CATCHER', 'evil.example', 'localhost@CATCHER', '', 'localhost:1');
const contentType = fc.option(fc.constantFrom('text/vcard', 'text/calendar', 'text/x-vcard', 'application/xml', 'text/vcard; charset=utf-8'), { nil: undefined });
const forwarded = fc.option(fc.constantFrom('X-Forwarded-Host: CATCHER', 'X-Forwarded-Proto: http', 'Forwarded: host=CATCHER', 'X-Forwarded-For: 127.0.0.1'), { nil: undefined });
const password = fc.constantFrom<'full' | 'caldav' | 'carddav' | 'garbage' | 'none'>('full', 'caldav', 'carddav', 'garbage', 'none');

const withCatcher = (text: string) => text.replaceAll('CATCHER', catcherHost());
/** Header values must be one line of visible characters, or the request is not sent at all. */
const headerSafe = (text: string) => !/[\r\n\u0000-\u001f\u007f-\uffff]/.test(text);
const inCollection = (path: string | null, name: string) => path !== null && new RegExp(`^/alice/${name}(/|$)`).test(path);
const destinationPath = (value: string | undefined) => (value === undefined ? null : value.startsWith(rig.upstreamOrigin) ? routingPath(value.slice(rig.upstreamOrigin.length)) : 'off-origin');

describe('the DAV front under generated targets and headers', () => {
  it('never leaves the configured origin and never crosses a single scope into the other kind', { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(method, target, destination, host, contentType, forwarded, password, async (m, t, d, h, type, fwd, pw) => {
        const rawTarget = withCatcher(t);
        if (!headerSafe(rawTarget) || /\s/.test(rawTarget)) return;
        const headers = [`Host: ${withCatcher(h)}`];
        if (pw === 'garbage') headers.push('Authorization: Basic Zm9vOmJhcg==');
        else if (pw !== 'none') headers.push(`Authorization: ${rig.auth[pw]}`);
        if (d !== undefined && headerSafe(withCatcher(d))) headers.push(`Destination: ${withCatcher(d)}`);
        if (type) headers.push(`Content-Type: ${type}`);
        if (fwd) headers.push(withCatcher(fwd));
        const from = rig.recorded.length;
        await rig.raw(`${m} ${rawTarget} HTTP/1.1\r\n${headers.join('\r\n')}`, '', 0);
        expect(rig.caught()).toBe(0);
        for (const seen of rig.recorded.slice(from)) {
          expect(seen.url.startsWith('/') && !seen.url.startsWith('//'), seen.url).toBe(true);
          expect(seen.host).toBe(rig.upstreamOrigin.slice('http://'.length));
          const dest = destinationPath(seen.destination);
          expect(dest, String(seen.destination)).not.toBe('off-origin');
          if (seen.probe) continue;
          const path = routingPath(seen.url.split('?')[0]!);
          if (pw === 'caldav') expect(inCollection(path, 'book') || inCollection(dest, 'book'), `${m} ${rawTarget} → ${seen.url}`).toBe(false);
          if (pw === 'carddav') expect(inCollection(path, 'cal') || inCollection(dest, 'cal'), `${m} ${rawTarget} → ${seen.url}`).toBe(false);
        }
      }),
      { numRuns: 120 },
    );
  });
});
