/**
 * Which upstream a request path goes to, and which app-password scope it needs.
 *
 * Postern does not re-mount paths: a path on postern is the same path upstream, so only origins
 * ever need rewriting (see origin-rewrite.ts). The configured upstream base URLs decide:
 *
 * - The longest base path that prefixes the request path wins (`/dav/calendars/` → caldav,
 *   `/dav/addressbooks/` → carddav). Its scope is the one the password needs.
 * - When both upstreams are the same origin *and* base path (Radicale serves calendars and address
 *   books side by side under `/user/`), the path cannot tell them apart: the route admits either
 *   scope, and scope-check.ts holds a password with only one of the two to the kind of collection
 *   the path is in, asked of the upstream (collection-kind.ts), for every method. What the request
 *   says of itself (`evidentScope`: MKCALENDAR, `text/calendar`, `.ics` → caldav; `text/vcard`,
 *   `.vcf` → carddav) is client-chosen, so it may only ADD a requirement, never stand in for the
 *   kind check (issue 9, item 2: a contacts-only password read calendars by claiming text/vcard).
 *   Residual: such a password still sees the names of the other kind's collections in a Depth-1
 *   listing of the home collection.
 * - A path under neither base, when both upstreams share an origin (e.g. `/principals/…`), goes to
 *   that origin and is admitted with either configured scope. With distinct origins it is a 404.
 * - `/.well-known/caldav` and `/.well-known/carddav` (RFC 6764 §5) go to their own upstream's
 *   well-known URL when its base path is `/`; otherwise postern answers the redirect itself,
 *   to the configured base path (the "context path" of RFC 6764 §5).
 *
 * Two upstreams on different origins with the same base path cannot be told apart: a config error.
 */
import type { DavConfig } from '../config/schema.js';
import { PosternError } from '../errors.js';
import { routingPath } from './request-target.js';

export { routingPath };

export type DavScope = 'caldav' | 'carddav';

export interface UpstreamTarget {
  /** e.g. `http://127.0.0.1:5232` */
  origin: string;
  /** Always ends with `/`. */
  basePath: string;
  scopes: readonly DavScope[];
}

export type Route =
  | { kind: 'proxy'; target: UpstreamTarget; scopes: readonly DavScope[] }
  /** Answer a well-known request with a redirect to the target's base path. */
  | { kind: 'redirect'; target: UpstreamTarget; scopes: readonly DavScope[]; location: string }
  | { kind: 'none' };

export interface RequestFacts {
  method: string;
  /** Path without query, as `routingPath` canonicalised it. */
  path: string;
  contentType: string | undefined;
}

export class DavRoutes {
  private constructor(
    readonly targets: readonly UpstreamTarget[],
    private readonly byScope: ReadonlyMap<DavScope, UpstreamTarget>,
  ) {}

  static fromConfig(config: Pick<DavConfig, 'caldavUpstream' | 'carddavUpstream'>): DavRoutes {
    const entries: Array<[DavScope, string]> = [];
    if (config.caldavUpstream) entries.push(['caldav', config.caldavUpstream]);
    if (config.carddavUpstream) entries.push(['carddav', config.carddavUpstream]);
    if (entries.length === 0) throw new PosternError('CONFIG_INVALID', 'dav: set caldavUpstream and/or carddavUpstream');
    const targets: UpstreamTarget[] = [];
    const byScope = new Map<DavScope, UpstreamTarget>();
    for (const [scope, raw] of entries) {
      const { origin, basePath } = parseBase(scope, raw);
      const same = targets.find((t) => t.origin === origin && t.basePath === basePath);
      if (same) {
        (same.scopes as DavScope[]).push(scope);
        byScope.set(scope, same);
        continue;
      }
      if (targets.some((t) => t.basePath === basePath)) {
        throw new PosternError('CONFIG_INVALID', `dav: caldavUpstream and carddavUpstream are on different origins with the same path ${basePath}; requests could not be told apart (give them distinct paths)`);
      }
      const target: UpstreamTarget = { origin, basePath, scopes: [scope] };
      targets.push(target);
      byScope.set(scope, target);
    }
    return new DavRoutes(targets, byScope);
  }

  /** Every upstream origin (for the rewrite table). */
  origins(): string[] {
    return [...new Set(this.targets.map((t) => t.origin))];
  }

  route(facts: RequestFacts): Route {
    const wellKnown = /^\/\.well-known\/(caldav|carddav)\/?$/i.exec(facts.path);
    if (wellKnown) {
      const scope = wellKnown[1]!.toLowerCase() as DavScope;
      const target = this.byScope.get(scope);
      if (!target) return { kind: 'none' };
      if (target.basePath === '/') return { kind: 'proxy', target, scopes: [scope] };
      return { kind: 'redirect', target, scopes: [scope], location: target.basePath };
    }
    const target = this.targetFor(facts.path);
    if (!target) return { kind: 'none' };
    return { kind: 'proxy', target, scopes: target.scopes };
  }

  /** The target a path belongs to (also used for the Destination of MOVE/COPY). */
  targetFor(path: string): UpstreamTarget | null {
    let best: UpstreamTarget | null = null;
    for (const t of this.targets) {
      const under = path.startsWith(t.basePath) || path === t.basePath.slice(0, -1);
      if (under && (!best || t.basePath.length > best.basePath.length)) best = t;
    }
    if (best) return best;
    const origins = this.origins();
    if (origins.length !== 1) return null;
    // Outside every base but on the one shared origin: a target serving every configured scope.
    return { origin: origins[0]!, basePath: '/', scopes: [...this.byScope.keys()] };
  }
}

/**
 * What a request says it is, on a path shared by calendars and address books; null if it does not
 * say. A claim, not a fact: scope-check.ts adds it to what the path itself requires.
 */
export function evidentScope(facts: RequestFacts): DavScope | null {
  const type = (facts.contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (facts.method === 'MKCALENDAR' || type === 'text/calendar') return 'caldav';
  if (type === 'text/vcard' || type === 'text/x-vcard') return 'carddav';
  const name = facts.path.slice(facts.path.lastIndexOf('/') + 1).toLowerCase();
  if (name.endsWith('.ics')) return 'caldav';
  if (name.endsWith('.vcf')) return 'carddav';
  return null;
}

function parseBase(scope: DavScope, raw: string): { origin: string; basePath: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch (err) {
    throw new PosternError('CONFIG_INVALID', `dav.${scope}Upstream: not a URL`, { cause: err });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new PosternError('CONFIG_INVALID', `dav.${scope}Upstream: must be http or https`);
  if (url.username || url.password) throw new PosternError('CONFIG_INVALID', `dav.${scope}Upstream: must not carry credentials (accounts have their own)`);
  if (url.search || url.hash) throw new PosternError('CONFIG_INVALID', `dav.${scope}Upstream: must not have a query or fragment`);
  const canonical = routingPath(url.pathname);
  if (canonical === null) throw new PosternError('CONFIG_INVALID', `dav.${scope}Upstream: path has encoded slashes or dot segments`);
  const basePath = canonical.endsWith('/') ? canonical : `${canonical}/`;
  return { origin: url.origin, basePath };
}
