/**
 * Origin rewriting. Pins: only `<href>` contents and leading origins of header URLs change; an
 * origin inside calendar data, a display name or a longer host name stays; the streaming form gives
 * exactly the whole-text result however the bytes are split (every split point, and random multi-
 * splits as a property), multi-byte UTF-8 included; the carried tail stays bounded.
 */
import { Readable } from 'node:stream';
import { text as streamText } from 'node:stream/consumers';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toPublic } from './href-map.js';
import { bodyRewriter, originSpellings, rewriteUrl } from './origin-rewrite.js';
import { DavRoutes } from './routes.js';

// One upstream origin (mounted at /) with an alias: absolute URLs on either become the public origin.
const routes = DavRoutes.fromConfig({ caldavUpstream: 'http://127.0.0.1:5232/', carddavUpstream: 'http://127.0.0.1:5232/', upstreamAliases: ['https://p07-caldav.icloud.com'] });
const table = toPublic(routes, routes.root()!, 'https://dav.example.org');

const multistatus = [
  '<?xml version="1.0" encoding="utf-8"?>',
  '<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">',
  '<d:response><d:href>http://127.0.0.1:5232/alice/work/</d:href>',
  '<d:propstat><d:prop><d:displayname>See http://127.0.0.1:5232/ für Details ✓</d:displayname>',
  '<c:calendar-home-set><href xmlns="DAV:">\n  https://p07-caldav.icloud.com:443/123/calendars/</href></c:calendar-home-set>',
  '<c:calendar-data>DESCRIPTION:&lt;href&gt;http://127.0.0.1:5232/x</c:calendar-data>',
  '</d:prop></d:propstat></d:response>',
  '<d:response><D:HREF>HTTP://127.0.0.1:5232/alice/a.ics</D:HREF><d:href>/alice/relative/</d:href>',
  '<d:href>http://127.0.0.1:52320/other-port/</d:href></d:response>',
  '</d:multistatus>',
].join('\n');

const expected = multistatus
  .replace('<d:href>http://127.0.0.1:5232/alice/work/', '<d:href>https://dav.example.org/alice/work/')
  .replace('\n  https://p07-caldav.icloud.com:443/123/', '\n  https://dav.example.org/123/')
  .replace('<D:HREF>HTTP://127.0.0.1:5232/alice/a.ics', '<D:HREF>https://dav.example.org/alice/a.ics');

async function viaStream(chunks: Buffer[]): Promise<string> {
  return streamText(Readable.from(chunks).pipe(bodyRewriter(table).stream()));
}

describe('bodyRewriter', () => {
  it('rewrites hrefs naming an upstream origin, and nothing else', () => {
    const out = bodyRewriter(table).text(Buffer.from(multistatus).toString('latin1'));
    expect(Buffer.from(out, 'latin1').toString('utf8')).toBe(expected);
  });

  it('gives the same result when the stream is split at any byte', async () => {
    const bytes = Buffer.from(multistatus, 'utf8');
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(await viaStream([bytes.subarray(0, cut), bytes.subarray(cut)])).toBe(expected);
    }
  });

  it('gives the same result for any split into many chunks (property)', async () => {
    const bytes = Buffer.from(multistatus, 'utf8');
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 40 }), async (cuts) => {
        const points = [0, ...cuts.sort((a, b) => a - b), bytes.length];
        const chunks = points.slice(1).map((end, i) => bytes.subarray(points[i], end));
        expect(await viaStream(chunks)).toBe(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('does not hold back more than a bounded tail of a long text without hrefs', async () => {
    const rewriter = bodyRewriter(table).stream();
    const seen: Buffer[] = [];
    rewriter.on('data', (c: Buffer) => seen.push(c));
    rewriter.write(Buffer.from(`<c:calendar-data>${'x'.repeat(100_000)}`));
    await new Promise((resolve) => setImmediate(resolve));
    expect(Buffer.concat(seen).length).toBeGreaterThan(100_000 - 2048);
    rewriter.end();
  });

  it('is the identity when no origin would change', () => {
    const same = DavRoutes.fromConfig({ caldavUpstream: 'https://a.example/' });
    expect(bodyRewriter(toPublic(same, same.root()!, 'https://a.example')).text('<href>https://a.example/x</href>')).toBe('<href>https://a.example/x</href>');
  });
});

describe('rewriteUrl', () => {
  it('replaces a leading upstream origin only', () => {
    expect(rewriteUrl('http://127.0.0.1:5232/alice/', table)).toBe('https://dav.example.org/alice/');
    expect(rewriteUrl('http://127.0.0.1:5232', table)).toBe('https://dav.example.org');
    expect(rewriteUrl('http://127.0.0.1:5232?x', table)).toBe('https://dav.example.org?x');
    expect(rewriteUrl('https://p07-caldav.icloud.com:443/1/', table)).toBe('https://dav.example.org/1/');
    expect(rewriteUrl('/alice/', table)).toBe('/alice/');
    expect(rewriteUrl('http://127.0.0.1:52320/alice/', table)).toBe('http://127.0.0.1:52320/alice/');
    expect(rewriteUrl('https://elsewhere.example/http://127.0.0.1:5232/', table)).toBe('https://elsewhere.example/http://127.0.0.1:5232/');
  });

  it('knows both spellings of a default port', () => {
    expect(originSpellings('https://h.example/')).toEqual(['https://h.example', 'https://h.example:443']);
    expect(originSpellings('http://h.example:8080/x')).toEqual(['http://h.example:8080']);
  });
});
