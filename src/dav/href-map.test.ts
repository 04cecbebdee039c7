/**
 * The namespace both ways. Pins: on two mounted origins (Fastmail) absolute and path-absolute
 * hrefs gain the mount of the upstream that answered, and requests lose it again; a sibling host
 * is mounted only when named by an upstream whose patterns allow it, never by what a client writes;
 * a host outside the patterns stays as written; the root mount (Radicale) is unchanged.
 */
import { describe, expect, it } from 'vitest';
import { toPublic, toUpstream } from './href-map.js';
import { bodyRewriter, rewriteUrl } from './origin-rewrite.js';
import { DavRoutes } from './routes.js';

const PUBLIC = 'https://postern.example';
const href = (value: string) => `<d:href>${value}</d:href>`;

describe('two mounted origins (Fastmail)', () => {
  const routes = DavRoutes.fromConfig({ caldav: { url: 'https://caldav.example/dav/calendars/' }, carddav: { url: 'https://carddav.example/dav/addressbooks/' } });
  const caldav = routes.mountOf('https://caldav.example')!;
  const carddav = routes.mountOf('https://carddav.example')!;

  it('puts the answering upstream\'s mount in front of its paths', () => {
    const out = bodyRewriter(toPublic(routes, caldav, PUBLIC));
    expect(out.text(href('/dav/principals/user/alice/'))).toBe(href('/@caldav.example/dav/principals/user/alice/'));
    expect(out.text(href('https://caldav.example:443/dav/calendars/user/alice/'))).toBe(href(`${PUBLIC}/@caldav.example/dav/calendars/user/alice/`));
    expect(out.text(href('https://carddav.example/dav/addressbooks/user/alice/'))).toBe(href(`${PUBLIC}/@carddav.example/dav/addressbooks/user/alice/`));
    expect(out.text(href('https://caldav.example'))).toBe(href(`${PUBLIC}/@caldav.example`));
    expect(out.text(href('relative/x.ics'))).toBe(href('relative/x.ics'));
    expect(out.text(href('//other.example/x'))).toBe(href('//other.example/x'));
    expect(out.text(href('mailto:alice@example.org'))).toBe(href('mailto:alice@example.org'));
    expect(rewriteUrl('/dav/calendars/user/alice/', toPublic(routes, carddav, PUBLIC))).toBe('/@carddav.example/dav/calendars/user/alice/');
    expect(rewriteUrl('https://carddav.example/dav/?x', toPublic(routes, carddav, PUBLIC))).toBe(`${PUBLIC}/@carddav.example/dav/?x`);
  });

  it('takes the mount off again in request bodies', () => {
    const out = bodyRewriter(toUpstream(routes, caldav, PUBLIC));
    expect(out.text(href('/@caldav.example/dav/calendars/user/alice/e.ics'))).toBe(href('/dav/calendars/user/alice/e.ics'));
    expect(out.text(href('/@caldav.example'))).toBe(href('/'));
    expect(out.text(href(`${PUBLIC}/@caldav.example/dav/x/`))).toBe(href('https://caldav.example/dav/x/'));
    expect(out.text(href('/@carddav.example/dav/x/'))).toBe(href('https://carddav.example/dav/x/'));
    expect(out.text(href('/dav/x/'))).toBe(href('/dav/x/'));
    expect(out.text(href('https://elsewhere.example/@caldav.example/x'))).toBe(href('https://elsewhere.example/@caldav.example/x'));
  });
});

describe('sibling hosts (iCloud)', () => {
  const config = { caldav: { url: 'https://caldav.icloud.example/', follow: ['*.icloud.example'] }, carddav: { url: 'https://contacts.icloud.example/', follow: ['*.icloud.example'] } };

  it('follows a host the upstream hands out, within the patterns', () => {
    const routes = DavRoutes.fromConfig(config);
    const caldav = routes.mountOf('https://caldav.icloud.example')!;
    const out = bodyRewriter(toPublic(routes, caldav, PUBLIC));
    expect(out.text(href('https://p42-caldav.icloud.example:443/123/principal/'))).toBe(href(`${PUBLIC}/@p42-caldav.icloud.example/123/principal/`));
    expect(routes.origins()).toContain('https://p42-caldav.icloud.example');
    // What the sibling answers with paths belongs to the sibling.
    const sibling = routes.mountOf('https://p42-caldav.icloud.example')!;
    expect(bodyRewriter(toPublic(routes, sibling, PUBLIC)).text(href('/123/calendars/'))).toBe(href('/@p42-caldav.icloud.example/123/calendars/'));
  });

  it('leaves a host outside the patterns as written, and mounts nothing', () => {
    const routes = DavRoutes.fromConfig(config);
    const out = bodyRewriter(toPublic(routes, routes.mountOf('https://caldav.icloud.example')!, PUBLIC));
    expect(out.text(href('https://p42-caldav.evil.example/123/'))).toBe(href('https://p42-caldav.evil.example/123/'));
    expect(routes.origins()).toHaveLength(2);
  });

  it('mounts nothing for a host a client names in a request body', () => {
    const routes = DavRoutes.fromConfig(config);
    const out = bodyRewriter(toUpstream(routes, routes.mountOf('https://caldav.icloud.example')!, PUBLIC));
    expect(out.text(href('https://p99-caldav.icloud.example/1/'))).toBe(href('https://p99-caldav.icloud.example/1/'));
    expect(out.text(href('/@p99-caldav.icloud.example/1/'))).toBe(href('/@p99-caldav.icloud.example/1/'));
    expect(out.text(href(`${PUBLIC}/@p99-caldav.icloud.example/1/`))).toBe(href(`${PUBLIC}/@p99-caldav.icloud.example/1/`));
    expect(routes.origins()).toHaveLength(2);
  });
});

describe('the root mount (Radicale)', () => {
  const routes = DavRoutes.fromConfig({ caldavUpstream: 'http://127.0.0.1:5232/', carddavUpstream: 'http://127.0.0.1:5232/' });
  const root = routes.root()!;

  it('changes origins only', () => {
    expect(bodyRewriter(toPublic(routes, root, PUBLIC)).text(href('/alice/cal/'))).toBe(href('/alice/cal/'));
    expect(bodyRewriter(toPublic(routes, root, PUBLIC)).text(href('http://127.0.0.1:5232/alice/'))).toBe(href(`${PUBLIC}/alice/`));
    expect(bodyRewriter(toUpstream(routes, root, PUBLIC)).text(href(`${PUBLIC}/alice/`))).toBe(href('http://127.0.0.1:5232/alice/'));
    expect(bodyRewriter(toUpstream(routes, root, PUBLIC)).text(href('/alice/'))).toBe(href('/alice/'));
  });
});
