/**
 * Path → upstream and scope. Pins: longest base path wins; a shared base (Radicale) admits either
 * scope whatever the request claims (scope-check.ts weighs the claim); well-known goes to its own upstream
 * (proxied at a `/` base, redirected to the base path otherwise); ambiguous or unsafe configs are
 * refused at start; dot segments and encoded slashes cannot smuggle a path under another scope.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DavRoutes, evidentScope, routingPath, type Route } from './routes.js';

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

describe('DavRoutes, different origins', () => {
  const routes = DavRoutes.fromConfig({ caldavUpstream: 'https://cal.example.org/caldav/', carddavUpstream: 'https://card.example.org/carddav/' });

  it('routes each base to its origin and refuses the rest', () => {
    expect(routes.route(facts('/caldav/x/'))).toMatchObject({ target: { origin: 'https://cal.example.org' }, scopes: ['caldav'] });
    expect(routes.route(facts('/carddav/x/'))).toMatchObject({ target: { origin: 'https://card.example.org' }, scopes: ['carddav'] });
    expect(routes.route(facts('/principals/'))).toEqual({ kind: 'none' });
  });

  it('has no carddav well-known when only caldav is configured', () => {
    const calOnly = DavRoutes.fromConfig({ caldavUpstream: 'https://cal.example.org/' });
    expect(calOnly.route(facts('/.well-known/carddav'))).toEqual({ kind: 'none' });
    expect(calOnly.route(facts('/anything/'))).toMatchObject({ scopes: ['caldav'] });
  });
});

describe('DavRoutes config errors', () => {
  it.each([
    [{}, /set caldavUpstream/],
    [{ caldavUpstream: 'https://a.example/', carddavUpstream: 'https://b.example/' }, /same path/],
    [{ caldavUpstream: 'ftp://a.example/' }, /http or https/],
    [{ caldavUpstream: 'https://u:p@a.example/' }, /credentials/],
    [{ caldavUpstream: 'https://a.example/?x=1' }, /query/],
    [{ caldavUpstream: 'https://a.example/a%2Fb/' }, /encoded slashes/],
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
