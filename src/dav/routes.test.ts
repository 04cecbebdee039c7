/**
 * Path → upstream and scope. Pins: longest base path wins; a shared base (Radicale) admits either
 * scope whatever the request claims (scope-check.ts weighs the claim); well-known goes to its own upstream
 * (proxied at a `/` base, redirected to the base path otherwise); ambiguous or unsafe configs are
 * refused at start; dot segments and encoded slashes cannot smuggle a path under another scope.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DavRoutes, evidentScope, MAX_LEARNED, routingPath, upstreamPathOf, type Route } from './routes.js';

const facts = (path: string, method = 'PROPFIND', contentType?: string) => ({ method, path, contentType });
const scopesOf = (route: Route) => (route.kind === 'none' ? null : route.scopes);

describe('DavRoutes, one server for both (Radicale)', () => {
  const routes = DavRoutes.fromConfig({ caldavUpstream: 'http://127.0.0.1:5232/', carddavUpstream: 'http://127.0.0.1:5232/' });

  it('has one target serving both scopes', () => {
    expect(routes.targets).toEqual([{ origin: 'http://127.0.0.1:5232', basePath: '/', scopes: ['caldav', 'carddav'] }]);
  });

  it('admits either scope for principal and collection requests', () => {
    expect(scopesOf(routes.route(facts('/alice/')))).toEqual(['caldav', 'carddav']);
    expect(scopesOf(routes.route(facts('/alice/work/', 'REPORT', 'application/xml')))).toEqual(['caldav', 'carddav']);
  });

  it('does not narrow the route by what the request claims; the claim is read separately', () => {
    const claims: Array<[string, string, string | undefined, string]> = [
      ['/alice/work/', 'MKCALENDAR', undefined, 'caldav'],
      ['/alice/work/e1', 'PUT', 'text/calendar; charset=utf-8', 'caldav'],
      ['/alice/book/c1', 'PUT', 'text/vcard', 'carddav'],
      ['/alice/work/e1.ICS', 'DELETE', undefined, 'caldav'],
      ['/alice/book/c1.vcf', 'GET', undefined, 'carddav'],
    ];
    for (const [path, method, type, claimed] of claims) {
      expect(scopesOf(routes.route(facts(path, method, type))), path).toEqual(['caldav', 'carddav']);
      expect(evidentScope(facts(path, method, type)), path).toBe(claimed);
    }
  });

  it('proxies the well-known URLs to the upstream (base path /)', () => {
    expect(routes.route(facts('/.well-known/caldav'))).toMatchObject({ kind: 'proxy', scopes: ['caldav'] });
    expect(routes.route(facts('/.well-known/carddav/'))).toMatchObject({ kind: 'proxy', scopes: ['carddav'] });
  });
});

describe('DavRoutes, distinct base paths', () => {
  const routes = DavRoutes.fromConfig({ caldavUpstream: 'https://dav.example.org/dav/calendars', carddavUpstream: 'https://dav.example.org/dav/addressbooks/' });

  it('routes by the longest base path', () => {
    expect(routes.route(facts('/dav/calendars/alice/work/'))).toMatchObject({ kind: 'proxy', scopes: ['caldav'] });
    expect(routes.route(facts('/dav/calendars'))).toMatchObject({ kind: 'proxy', scopes: ['caldav'] });
    expect(routes.route(facts('/dav/addressbooks/alice/x.ics', 'GET'))).toMatchObject({ kind: 'proxy', scopes: ['carddav'] });
  });

  it('sends paths outside both bases to the shared origin with either scope', () => {
    expect(routes.route(facts('/dav/principals/alice/'))).toMatchObject({ kind: 'proxy', target: { origin: 'https://dav.example.org' }, scopes: ['caldav', 'carddav'] });
  });

  it('answers well-known with a redirect to the base path', () => {
    expect(routes.route(facts('/.well-known/caldav'))).toMatchObject({ kind: 'redirect', location: '/dav/calendars/' });
    expect(routes.route(facts('/.well-known/carddav'))).toMatchObject({ kind: 'redirect', location: '/dav/addressbooks/' });
  });
});

describe('DavRoutes, two origins with one layout (Fastmail)', () => {
  const routes = DavRoutes.fromConfig({ caldav: { url: 'https://caldav.example/dav/calendars/' }, carddav: { url: 'https://carddav.example/dav/addressbooks/' } });

  it('mounts each origin under /@host, serving the whole origin under its one scope', () => {
    expect(routes.route(facts('/@caldav.example/dav/principals/user/alice/'))).toMatchObject({ kind: 'proxy', mount: { origin: 'https://caldav.example' }, path: '/dav/principals/user/alice/', prefixed: true, scopes: ['caldav'] });
    expect(routes.route(facts('/@carddav.example/dav/principals/user/alice/'))).toMatchObject({ mount: { origin: 'https://carddav.example' }, scopes: ['carddav'] });
    expect(routes.route(facts('/@CardDAV.example'))).toMatchObject({ path: '/', scopes: ['carddav'] });
  });

  it('refuses paths under no mount, and @-segments naming no mount', () => {
    expect(routes.route(facts('/dav/principals/user/alice/'))).toEqual({ kind: 'none' });
    expect(routes.route(facts('/@evil.example/dav/'))).toEqual({ kind: 'none' });
    expect(routes.route(facts('/@caldav.example.evil/dav/'))).toEqual({ kind: 'none' });
  });

  it('still routes a path under exactly one base path written without its mount (URLs learnt before mounts)', () => {
    expect(routes.route(facts('/dav/calendars/user/alice/'))).toMatchObject({ mount: { origin: 'https://caldav.example' }, path: '/dav/calendars/user/alice/', prefixed: false, scopes: ['caldav'] });
    const sameBase = DavRoutes.fromConfig({ caldav: { url: 'https://caldav.example/dav/' }, carddav: { url: 'https://carddav.example/dav/' } });
    expect(sameBase.route(facts('/dav/calendars/user/alice/'))).toEqual({ kind: 'none' });
    expect(sameBase.route(facts('/@carddav.example/dav/calendars/user/alice/'))).toMatchObject({ scopes: ['carddav'] });
  });

  it('leads a PROPFIND of the bare origin on as well-known caldav does (no root mount)', () => {
    expect(routes.route(facts('/'))).toMatchObject({ kind: 'redirect', location: '/@caldav.example/dav/calendars/', scopes: ['caldav'] });
    const cardOnly = DavRoutes.fromConfig({ carddav: { url: 'https://carddav.example/' }, caldav: { url: 'https://caldav.example/' } });
    expect(cardOnly.route(facts('/'))).toMatchObject({ kind: 'proxy', path: '/.well-known/caldav', mount: { origin: 'https://caldav.example' } });
  });

  it('redirects well-known to the mounted base path', () => {
    expect(routes.route(facts('/.well-known/caldav'))).toMatchObject({ kind: 'redirect', location: '/@caldav.example/dav/calendars/' });
    expect(routes.route(facts('/.well-known/carddav'))).toMatchObject({ kind: 'redirect', location: '/@carddav.example/dav/addressbooks/' });
  });

  it('drops the mount segment, in the client\'s own encoding, from what goes upstream', () => {
    expect(upstreamPathOf('/%40caldav.example/dav/a%20b/?x=1', true)).toBe('/dav/a%20b/?x=1');
    expect(upstreamPathOf('/@caldav.example', true)).toBe('/');
    expect(upstreamPathOf('/@caldav.example?x', true)).toBe('/?x');
    expect(upstreamPathOf('/alice/', false)).toBe('/alice/');
  });

  it('has no carddav well-known when only caldav is configured', () => {
    const calOnly = DavRoutes.fromConfig({ caldavUpstream: 'https://cal.example.org/' });
    expect(calOnly.route(facts('/.well-known/carddav'))).toEqual({ kind: 'none' });
    expect(calOnly.route(facts('/anything/'))).toMatchObject({ scopes: ['caldav'] });
  });
});

describe('DavRoutes, sibling hosts (iCloud)', () => {
  const config = { caldav: { url: 'https://caldav.icloud.example/', follow: ['*.icloud.example'] }, carddav: { url: 'https://contacts.icloud.example/', follow: ['*.icloud.example'] } };

  it('mounts a host only when an upstream whose patterns allow it names it, with that upstream\'s scope', () => {
    const routes = DavRoutes.fromConfig(config);
    const learnt: string[] = [];
    routes.onLearn = (mount) => learnt.push(mount.prefix);
    expect(routes.route(facts('/@p42-caldav.icloud.example/123/'))).toEqual({ kind: 'none' });
    const caldav = routes.mountOf('https://caldav.icloud.example')!;
    expect(routes.learn('https://p42-caldav.icloud.example', caldav)).toMatchObject({ prefix: '/@p42-caldav.icloud.example', scopes: ['caldav'], learned: true });
    expect(routes.route(facts('/@p42-caldav.icloud.example/123/'))).toMatchObject({ mount: { origin: 'https://p42-caldav.icloud.example' }, path: '/123/', scopes: ['caldav'] });
    expect(learnt).toEqual(['/@p42-caldav.icloud.example']);
  });

  it('never follows a host outside the patterns, a deeper label, another port or a downgrade', () => {
    const routes = DavRoutes.fromConfig(config);
    const caldav = routes.mountOf('https://caldav.icloud.example')!;
    for (const origin of ['https://icloud.example.evil', 'https://a.b.icloud.example', 'https://p1.icloud.example:8443', 'http://p1.icloud.example', 'https://icloud.example']) {
      expect(routes.learn(origin, caldav), origin).toBeNull();
    }
    expect(routes.origins()).toEqual(['https://caldav.icloud.example', 'https://contacts.icloud.example']);
  });

  it('follows nothing for an upstream without patterns', () => {
    const routes = DavRoutes.fromConfig({ caldav: { url: 'https://caldav.icloud.example/' }, carddav: { url: 'https://contacts.icloud.example/', follow: ['*.icloud.example'] } });
    expect(routes.learn('https://p42-caldav.icloud.example', routes.mountOf('https://caldav.icloud.example')!)).toBeNull();
  });

  it('keeps at most MAX_LEARNED sibling hosts', () => {
    const routes = DavRoutes.fromConfig(config);
    const caldav = routes.mountOf('https://caldav.icloud.example')!;
    for (let i = 0; i < MAX_LEARNED; i++) expect(routes.learn(`https://p${i}.icloud.example`, caldav)).not.toBeNull();
    expect(routes.learn('https://one-more.icloud.example', caldav)).toBeNull();
  });

  it('reserves @-segments on a single origin that may follow hosts', () => {
    const routes = DavRoutes.fromConfig({ caldav: { url: 'https://dav.example/', follow: ['*.dav.example'] } });
    expect(routes.route(facts('/@x.dav.example/'))).toEqual({ kind: 'none' });
    expect(routes.route(facts('/alice/'))).toMatchObject({ mount: { prefix: '' }, path: '/alice/' });
  });
});

describe('DavRoutes config errors', () => {
  it.each([
    [{}, /set dav.caldav.url/],
    [{ caldavUpstream: 'ftp://a.example/' }, /http or https/],
    [{ caldavUpstream: 'https://u:p@a.example/' }, /credentials/],
    [{ caldavUpstream: 'https://a.example/?x=1' }, /query/],
    [{ caldavUpstream: 'https://a.example/a%2Fb/' }, /encoded slashes/],
    [{ caldavUpstream: 'https://a.example/', caldav: { url: 'https://a.example/' } }, /not both/],
    [{ caldav: { url: 'https://a.example/', follow: ['*'] } }, /any host/],
    [{ caldav: { url: 'https://a.example/', follow: ['*.*'] } }, /any host/],
    [{ caldav: { url: 'https://a.example/', follow: ['https://*.a.example'] } }, /not a host pattern/],
    [{ caldavUpstream: 'https://a.example/', carddavUpstream: 'https://b.example/', upstreamAliases: ['https://c.example'] }, /single upstream origin/],
  ])('refuses %j', (config, message) => {
    expect(() => DavRoutes.fromConfig(config)).toThrow(message);
  });
});

describe('routingPath', () => {
  it('canonicalises for routing', () => {
    expect(routingPath('/')).toBe('/');
    expect(routingPath('/alice/work/')).toBe('/alice/work/');
    expect(routingPath('/alice///work')).toBe('/alice/work');
    expect(routingPath('/%61lice/')).toBe('/alice/');
  });

  it('refuses what could route under one scope and be served under another', () => {
    for (const bad of ['/dav/calendars/../addressbooks/', '/dav/./x', '/dav/%2e%2e/x', '/dav%2Faddressbooks/', '/a%5Cb', '/bad%zz', 'relative', '*', '/a%00b', '//host/a', '/a\\b', 'http://host/a']) {
      expect(routingPath(bad), bad).toBeNull();
    }
  });
});

describe('routingPath (property)', () => {
  const segment = fc.oneof(fc.constantFrom('.', '..', '%2e', '%2E%2e', '%2F', '%5c', '', 'a', 'caldav', '%zz', '%00'), fc.string({ maxLength: 6 }));
  const pathLike = fc.array(segment, { maxLength: 8 }).map((parts) => `/${parts.join('/')}`);

  it('never throws, and what it accepts has no dot segment, empty segment or smuggled separator', () => {
    fc.assert(
      fc.property(fc.oneof(pathLike, fc.string()), (raw) => {
        const path = routingPath(raw);
        if (path === null) return;
        expect(path.startsWith('/')).toBe(true);
        const segments = path.split('/').slice(1, path.endsWith('/') ? -1 : undefined);
        for (const s of segments) {
          expect(s === '' || s === '.' || s === '..', JSON.stringify(raw)).toBe(false);
          expect(/[\\\u0000]/.test(s)).toBe(false);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('routes no accepted path under a base it is not really under', () => {
    const routes = DavRoutes.fromConfig({ caldavUpstream: 'https://d.example/dav/cal/', carddavUpstream: 'https://d.example/dav/card/' });
    fc.assert(
      fc.property(pathLike.map((p) => `/dav/cal${p}`), (raw) => {
        const path = routingPath(raw);
        if (path === null) return;
        const route = routes.route(facts(path));
        // Whatever the upstream's own normalisation, a path accepted under /dav/cal/ is caldav only.
        if (path.startsWith('/dav/cal/')) expect(scopesOf(route)).toEqual(['caldav']);
        expect(new URL(raw, 'https://d.example').pathname.startsWith('/dav/card')).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('evidentScope', () => {
  it('is null when nothing in the request says', () => {
    expect(evidentScope(facts('/alice/x', 'PUT', 'application/octet-stream'))).toBeNull();
    expect(evidentScope(facts('/alice/', 'PROPFIND', 'text/xml'))).toBeNull();
  });
});
