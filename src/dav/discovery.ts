/**
 * The discovery walk a DAV client makes on a new account, made by postern itself against the
 * upstream with the account's real credentials, so an admin sees a set-up work (or where it breaks)
 * before any client does (`postern dav check`, src/cli/commands/dav.ts):
 * RFC 6764 well-known (or the configured base path) → RFC 5397 current-user-principal →
 * RFC 4791 §6.2.1 calendar-home-set / RFC 6352 §7.1.1 addressbook-home-set → Depth-1 listing.
 *
 * It goes only where the proxy would: the upstream origins of routes.ts, and a sibling host only
 * when the configured upstream names it and its follow patterns allow it (the same `learn`). URLs
 * are reported as the upstream wrote them (upstream-side), never postern's mounted form. The XML
 * is read with the same tolerant, element-name-only matching as collection-kind.ts; nothing here
 * logs, and no secret is part of any result or error.
 */
import type { IncomingMessage } from 'node:http';
import type { PasswordCredential } from '../auth/types.js';
import { PosternError } from '../errors.js';
import type { HttpUpstream } from '../upstream/http.js';
import { upstreamAuthorization } from './headers.js';
import { normalOrigin } from './origin-rewrite.js';
import type { DavRoutes, DavScope, Mount } from './routes.js';

export interface Collection {
  url: string;
  name: string | null;
}

export interface Discovered {
  kind: DavScope;
  /** Where the walk started (the configured URL or its well-known). */
  start: string;
  principal: string;
  home: string;
  collections: Collection[];
}

const MAX_REDIRECTS = 5;
const MAX_BYTES = 1024 * 1024;
const HOME = { caldav: 'calendar-home-set', carddav: 'addressbook-home-set' } as const;
const COLLECTION = { caldav: 'calendar', carddav: 'addressbook' } as const;

const PROPFIND = (props: string) => `<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:a="urn:ietf:params:xml:ns:carddav"><d:prop>${props}</d:prop></d:propfind>`;

export interface DiscoveryDeps {
  routes: DavRoutes;
  upstream: HttpUpstream;
  credential: PasswordCredential;
}

/** Throws a PosternError (UPSTREAM_*, DAV_DISCOVERY_FAILED) saying which step failed. */
export async function discover(deps: DiscoveryDeps, kind: DavScope, start: string): Promise<Discovered> {
  const first = await propfind(deps, start, '0', PROPFIND('<d:current-user-principal/><d:resourcetype/>'));
  const principalHref = hrefIn(first.body, 'current-user-principal');
  if (!principalHref) throw failed(`${first.url} names no current-user-principal (RFC 5397)`);
  const principal = new URL(principalHref, first.url).href;
  const ofPrincipal = await propfind(deps, principal, '0', PROPFIND(kind === 'caldav' ? '<c:calendar-home-set/>' : '<a:addressbook-home-set/>'));
  const homeHref = hrefIn(ofPrincipal.body, HOME[kind]);
  if (!homeHref) throw failed(`the principal ${ofPrincipal.url} names no ${HOME[kind]}`);
  const home = new URL(homeHref, ofPrincipal.url).href;
  const listing = await propfind(deps, home, '1', PROPFIND('<d:resourcetype/><d:displayname/>'));
  const collections = responsesOf(listing.body)
    .filter((r) => new RegExp(`<(?:[\\w.-]+:)?${COLLECTION[kind]}[\\s/>]`, 'i').test(r.resourcetype))
    .map((r) => ({ url: new URL(r.href, listing.url).href, name: r.displayname }));
  return { kind, start: first.url, principal, home, collections };
}

/** PROPFIND `url`, following redirects (well-known, RFC 6764 §5) within the allowed origins. */
async function propfind(deps: DiscoveryDeps, url: string, depth: '0' | '1', body: string): Promise<{ url: string; body: string }> {
  let at = new URL(url);
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const mount = allowedMount(deps.routes, at.origin, null);
    if (!mount) throw failed(`${at.origin} is not a configured upstream nor a host its follow patterns allow`);
    const payload = Buffer.from(body);
    const response = await deps.upstream.send({
      origin: mount.origin, path: at.pathname + at.search, method: 'PROPFIND', body: payload,
      headers: { authorization: upstreamAuthorization(deps.credential), depth, 'content-type': 'application/xml; charset=utf-8', 'content-length': String(payload.length) },
    });
    const text = await readText(response);
    const status = response.statusCode ?? 0;
    if (status === 401) throw new PosternError('UPSTREAM_AUTH_REJECTED', `the upstream refused the account's credentials at ${at.href}`);
    if (status >= 300 && status < 400 && response.headers.location) {
      const next = new URL(response.headers.location, at);
      if (!allowedMount(deps.routes, next.origin, mount)) throw failed(`${at.href} redirects to ${next.origin}, which is not allowed`);
      at = next;
      continue;
    }
    if (status !== 207) throw failed(`PROPFIND ${at.href} answered ${status}`);
    // Hrefs on sibling hosts the patterns allow become reachable, as through the proxy.
    for (const [, href] of text.matchAll(/<(?:[\w.-]+:)?href(?:\s[^>]*)?>\s*(https?:\/\/[A-Za-z0-9.\-:[\]]+)/gi)) {
      const origin = normalOrigin(href!);
      if (origin) allowedMount(deps.routes, origin, mount);
    }
    return { url: at.href, body: text };
  }
  throw failed(`more than ${MAX_REDIRECTS} redirects from ${url}`);
}

function allowedMount(routes: DavRoutes, origin: string, via: Mount | null): Mount | null {
  return routes.mountOf(origin) ?? (via ? routes.learn(origin, via) : null);
}

function failed(detail: string): PosternError {
  return new PosternError('DAV_DISCOVERY_FAILED', detail);
}

function hrefIn(xml: string, element: string): string | null {
  const inner = new RegExp(`<(?:[\\w.-]+:)?${element}(?:\\s[^>]*)?>([\\s\\S]*?)</(?:[\\w.-]+:)?${element}\\s*>`, 'i').exec(xml)?.[1];
  const href = inner && /<(?:[\w.-]+:)?href(?:\s[^>]*)?>\s*([^<\s]+)\s*</i.exec(inner)?.[1];
  return href ? decodeXml(href) : null;
}

interface ResponseEntry {
  href: string;
  resourcetype: string;
  displayname: string | null;
}

function responsesOf(xml: string): ResponseEntry[] {
  const entries: ResponseEntry[] = [];
  for (const match of xml.matchAll(/<(?:[\w.-]+:)?response(?:\s[^>]*)?>([\s\S]*?)<\/(?:[\w.-]+:)?response\s*>/gi)) {
    const inner = match[1]!;
    const href = /<(?:[\w.-]+:)?href(?:\s[^>]*)?>\s*([^<\s]+)\s*</i.exec(inner)?.[1];
    if (!href) continue;
    const resourcetype = /<(?:[\w.-]+:)?resourcetype(?:\s[^>]*)?>([\s\S]*?)<\/(?:[\w.-]+:)?resourcetype\s*>/i.exec(inner)?.[1] ?? '';
    const name = /<(?:[\w.-]+:)?displayname(?:\s[^>]*)?>([\s\S]*?)<\/(?:[\w.-]+:)?displayname\s*>/i.exec(inner)?.[1];
    entries.push({ href: decodeXml(href), resourcetype, displayname: name ? decodeXml(name.trim()) : null });
  }
  return entries;
}

function decodeXml(text: string): string {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
}

async function readText(response: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of response as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_BYTES) {
      response.destroy();
      throw failed('an answer was larger than 1 MiB');
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Where the walk for `kind` starts: the configured URL, or its well-known when that is the root. */
export function startUrl(url: string, kind: DavScope): string {
  const parsed = new URL(url);
  return parsed.pathname === '/' ? `${parsed.origin}/.well-known/${kind}` : parsed.href;
}
