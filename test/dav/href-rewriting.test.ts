/**
 * Origin rewriting through the DAV proxy, against a scripted upstream (test/dav/support/scripted-upstream.ts)
 * that names itself by its own origin and by an alias. Pins:
 *  - absolute hrefs in a multistatus naming the upstream or an alias come back with the origin the
 *    client used, also from a gzip-compressed body (sent decoded); text that merely looks like a URL stays;
 *  - Location and Content-Location are rewritten the same way, trailing slashes as the upstream has them;
 *  - the other way: public hrefs in a REPORT body go to the upstream origin with an exact Content-Length,
 *    and the Destination of MOVE/COPY is rewritten to the upstream; one on another server is refused (502)
 *    without reaching the upstream.
 */
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { REPLY_TEXT } from '../../src/dav/replies.js';
import { ALIAS, useScriptedUpstream } from './support/scripted-upstream.js';

const rig = useScriptedUpstream();

describe('origin rewriting', () => {
  const multistatus = (origin: string) =>
    `<?xml version="1.0"?><d:multistatus xmlns:d="DAV:"><d:response><d:href>${origin}/alice/work/</d:href>` +
    `<d:propstat><d:prop><d:displayname>${origin}/kept-as-text</d:displayname><d:owner><d:href>${ALIAS}/123/principal/</d:href></d:owner></d:prop>` +
    `<d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response></d:multistatus>`;

  it('rewrites hrefs of a gzip multistatus to the Host the client used, and sends it decoded', async () => {
    rig.handler = rig.recordAnd((_req, res) => {
      const body = gzipSync(multistatus(rig.upstreamOrigin));
      res.writeHead(207, { 'content-type': 'application/xml; charset=utf-8', 'content-encoding': 'gzip', 'content-length': String(body.length) });
      res.end(body);
    });
    const res = await rig.client.request({ method: 'PROPFIND', path: '/alice/', headers: { authorization: rig.auth, depth: '1', 'accept-encoding': 'gzip', host: 'dav.example.org:8443' } });
    expect(res.status).toBe(207);
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.text).toBe(
      multistatus(rig.upstreamOrigin)
        .replace(`<d:href>${rig.upstreamOrigin}/alice/work/`, '<d:href>https://dav.example.org:8443/alice/work/')
        .replace(`<d:href>${ALIAS}/123/`, '<d:href>https://dav.example.org:8443/123/'),
    );
  });

  it('rewrites Location and Content-Location, leaving trailing slashes as the upstream has them', async () => {
    rig.handler = rig.recordAnd((_req, res) => {
      res.writeHead(301, { location: `${rig.upstreamOrigin}/alice/moved`, 'content-location': `${rig.upstreamOrigin}/alice/x/`, 'content-length': '0' });
      res.end();
    });
    const res = await rig.client.request({ method: 'GET', path: '/alice/old', headers: { authorization: rig.auth } });
    expect(res.status).toBe(301);
    expect(res.headers.location).toBe(`${rig.publicOrigin()}/alice/moved`);
    expect(res.headers['content-location']).toBe(`${rig.publicOrigin()}/alice/x/`);
  });

  it('rewrites public hrefs in a REPORT body to the upstream origin, with an exact Content-Length', async () => {
    const body = `<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/></d:prop><d:href>${rig.publicOrigin()}/alice/work/a.ics</d:href><d:href>/alice/work/b.ics</d:href></c:calendar-multiget>`;
    const res = await rig.client.request({ method: 'REPORT', path: '/alice/work/', headers: { authorization: rig.auth, depth: '1', 'content-type': 'application/xml' }, body });
    expect(res.status).toBe(200);
    const forwarded = rig.seen[0]!;
    expect(forwarded.body.toString()).toBe(body.replace(rig.publicOrigin(), rig.upstreamOrigin));
    expect(forwarded.headers['content-length']).toBe(String(forwarded.body.length));
  });

  it('rewrites the Destination of MOVE and COPY to the upstream, and refuses one on another server', async () => {
    const move = await rig.client.request({ method: 'MOVE', path: '/alice/work/a.ics', headers: { authorization: rig.auth, destination: `${rig.publicOrigin()}/alice/home/a.ics`, overwrite: 'F' } });
    expect(move.status).toBe(200);
    expect(rig.seen[0]!.headers).toMatchObject({ destination: `${rig.upstreamOrigin}/alice/home/a.ics`, overwrite: 'F' });
    const copy = await rig.client.request({ method: 'COPY', path: '/alice/work/a.ics', headers: { authorization: rig.auth, destination: '/alice/home/b.ics' } });
    expect(copy.status).toBe(200);
    expect(rig.seen[1]!.headers.destination).toBe(`${rig.upstreamOrigin}/alice/home/b.ics`);
    const away = await rig.client.request({ method: 'MOVE', path: '/alice/work/a.ics', headers: { authorization: rig.auth, destination: 'https://elsewhere.example/alice/a.ics' } });
    expect(away.status).toBe(502);
    expect(away.text).toBe(`${REPLY_TEXT.destinationElsewhere}\n`);
    expect(rig.seen).toHaveLength(2);
  });
});
