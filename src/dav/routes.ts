/**
 * The one namespace clients see on postern's origin, which upstream a path goes to, and which
 * app-password scope it needs.
 *
 * Mounts (issue 11): real providers do not fit one origin. Fastmail serves `/dav/principals/…`,
 * `/dav/calendars/…` and `/dav/addressbooks/…` on both `caldav.` and `carddav.` hosts; iCloud hands
 * out a sibling host (`p42-caldav.icloud.com`) at discovery. So each upstream origin is a mount:
 * - with one configured origin (Radicale, Nextcloud `/remote.php/dav/`, SabreDAV), it is mounted at
 *   `/`: a path on postern is the same path upstream, as before;
 * - with two (Fastmail, iCloud), each is mounted at `/@<host[:port]>/` (`/@caldav.fastmail.com/dav/…`),
 *   as their paths collide;
 * - a sibling host an upstream names in an answer is mounted at `/@<host[:port]>/` once it matches
 *   that upstream's `follow` patterns (host-pattern.ts) and has the upstream's scheme; it serves
 *   the scopes of the upstream(s) that named it (`learn`). Only upstream answers teach mounts
 *   (forward.ts): nothing a client sends (a path, Destination, href or Host) can add one, so the
 *   real credentials only ever go to a configured origin or a host a configured upstream named
 *   and the admin allowed. At most MAX_LEARNED are kept; they live as long as the process.
 * An `@` first segment is reserved whenever mounts can be prefixed: an unknown one is a 404, never
 * passed to the root mount. Without a root mount, a path under exactly one configured base path
 * (`/dav/calendars/…` when the other upstream's is `/dav/addressbooks/`) still reaches it unprefixed,
 * so URLs clients learnt before mounts existed keep working.
 *
 * Scope within a mount (paths below are upstream paths, prefix removed):
 * - The longest configured base path of that origin that prefixes the path wins (`/dav/calendars/`
 *   → caldav). Outside every base, the path is the origin's: it admits the scopes of every upstream
 *   on it (one scope on Fastmail's `caldav.` host; both on a Radicale or Nextcloud root).
 * - When a place admits both scopes, scope-check.ts holds a password with only one of the two to
 *   the kind of collection the path is in, asked of the upstream (collection-kind.ts), for every
 *   method. What the request says of itself (`evidentScope`: MKCALENDAR, `text/calendar`, `.ics` →
 *   caldav; `text/vcard`, `.vcf` → carddav) is client-chosen, so it may only ADD a requirement,
 *   never stand in for the kind check (issue 9, item 2). Residual: such a password still sees the
 *   names of the other kind's collections in a Depth-1 listing of a shared home collection.
 * - `/.well-known/caldav` and `/.well-known/carddav` (RFC 6764 §5) go to their own upstream's
 *   well-known URL when its base path is `/` (its redirect is rewritten into the namespace);
 *   otherwise postern answers the redirect itself, to the mounted base path.
 */
import type { DavConfig } from '../config/schema.js';
import { PosternError } from '../errors.js';
import { parseHostPattern, type HostPattern } from './host-pattern.js';
import { routingPath } from './request-target.js';

export { routingPath };

export type DavScope = 'caldav' | 'carddav';

export interface UpstreamTarget {
  /** e.g. `http://127.0.0.1:5232` */
  origin: string;
  /** Always ends with `/`; an upstream path. */
  basePath: string;
  scopes: readonly DavScope[];
}

export interface Mount {
  /** `''` for the root mount, else `/@host[:port]` (lowercase). */
  prefix: string;
  origin: string;
  /** Scopes of the upstreams on this origin (or that named it). */
  scopes: DavScope[];
  /** Which sibling hosts answers from this mount may hand out. */
  follow: HostPattern[];
  learned: boolean;
}

interface Placed {
  mount: Mount;
  target: UpstreamTarget;
  scopes: readonly DavScope[];
  /** The upstream routing path (mount prefix removed). */
  path: string;
  /** Whether the first segment of the client's path is the mount prefix (dropped upstream). */
  prefixed: boolean;
}

export type Route =
  | ({ kind: 'proxy' } & Placed)
  /** Answer a well-known request with a redirect to `location` (a public path). */
  | ({ kind: 'redirect'; location: string } & Placed)
  | { kind: 'none' };

export interface RequestFacts {
  method: string;
  /** Public path without query, as `routingPath` canonicalised it. */
  path: string;
  contentType: string | undefined;
}

export interface UpstreamSpec {
  url: string;
  follow?: readonly string[] | undefined;
}

export type RoutesConfig = Partial<Pick<DavConfig, 'caldavUpstream' | 'carddavUpstream' | 'upstreamAliases'>> & { caldav?: UpstreamSpec | undefined; carddav?: UpstreamSpec | undefined };

/** Sibling hosts kept at most (each one an upstream agent); a lying upstream cannot grow this. */
export const MAX_LEARNED = 64;

export class DavRoutes {
  private readonly byPrefix = new Map<string, Mount>();
  private readonly byOrigin = new Map<string, Mount>();
  private learnedCount = 0;
  /** Called once per newly followed sibling host (index.ts allows it upstream and logs it). */
  onLearn: (mount: Mount, via: Mount) => void = () => undefined;

  private constructor(
    readonly targets: readonly UpstreamTarget[],
    private readonly byScope: ReadonlyMap<DavScope, UpstreamTarget>,
    mounts: Mount[],
    /** Origins whose URLs are other names of the root mount (`upstreamAliases`), rewrite only. */
    private readonly aliases: readonly string[],
  ) {
    for (const mount of mounts) this.add(mount);
  }

  static fromConfig(config: RoutesConfig): DavRoutes {
    const specs = upstreamSpecs(config);
    const targets: UpstreamTarget[] = [];
    const byScope = new Map<DavScope, UpstreamTarget>();
    const follows = new Map<string, HostPattern[]>();
    for (const [scope, spec] of specs) {
      const { origin, basePath } = parseBase(scope, spec.url);
      const patterns = (spec.follow ?? []).map((text) => parseHostPattern(text, `dav.${scope}.follow`));
      follows.set(origin, [...(follows.get(origin) ?? []), ...patterns]);
      const same = targets.find((t) => t.origin === origin && t.basePath === basePath);
      const target = same ?? { origin, basePath, scopes: [] };
      (target.scopes as DavScope[]).push(scope);
      if (!same) targets.push(target);
      byScope.set(scope, target);
    }
    const origins = [...new Set(targets.map((t) => t.origin))];
    const mounts = origins.map((origin): Mount => ({
      prefix: origins.length === 1 ? '' : mountPrefix(origin),
      origin,
      scopes: [...new Set(targets.filter((t) => t.origin === origin).flatMap((t) => t.scopes))],
      follow: follows.get(origin) ?? [],
      learned: false,
    }));
    const aliases = (config.upstreamAliases ?? []).map((alias) => new URL(alias).origin);
    if (aliases.length > 0 && origins.length !== 1) throw new PosternError('CONFIG_INVALID', 'dav.upstreamAliases: only with a single upstream origin; for sibling hosts handed out at discovery, use dav.caldav.follow / dav.carddav.follow');
    return new DavRoutes(targets, byScope, mounts, aliases);
  }

  /** Every upstream origin requests may go to now (configured and followed). */
  origins(): string[] {
    return [...this.byOrigin.keys()];
  }

  mounts(): Mount[] {
    return [...this.byOrigin.values()];
  }

  /** The mount an upstream origin is served under (aliases: the root mount). */
  mountOf(origin: string): Mount | undefined {
    return this.byOrigin.get(origin) ?? (this.aliases.includes(origin) ? this.byPrefix.get('') : undefined);
  }

  /** The mount a first path segment (`@host`) names, if any. */
  mountNamed(segment: string): Mount | undefined {
    return segment.startsWith('@') ? this.byPrefix.get(`/${segment.toLowerCase()}`) : undefined;
  }

  root(): Mount | undefined {
    return this.byPrefix.get('');
  }

  route(facts: RequestFacts): Route {
    const wellKnown = /^\/\.well-known\/(caldav|carddav)\/?$/i.exec(facts.path);
    // Without a root mount, `/` is nobody's: clients that PROPFIND the bare origin instead of the
    // well-known URL (python-caldav 0.11) are led on as by `/.well-known/caldav` (carddav if alone).
    const bare = facts.path === '/' && !this.byPrefix.has('') ? (this.byScope.has('caldav') ? 'caldav' : 'carddav') : null;
    if (wellKnown || bare) {
      const scope = bare ?? (wellKnown![1]!.toLowerCase() as DavScope);
      const target = this.byScope.get(scope);
      if (!target) return { kind: 'none' };
      const mount = this.byOrigin.get(target.origin)!;
      const placed = { mount, target, scopes: [scope], path: `/.well-known/${scope}`, prefixed: false };
      if (target.basePath === '/') return { kind: 'proxy', ...placed };
      return { kind: 'redirect', ...placed, location: mount.prefix + target.basePath };
    }
    const placed = this.resolve(facts.path);
    return placed ? { kind: 'proxy', ...placed } : { kind: 'none' };
  }

  /** Where a public path lands (also the Destination of MOVE/COPY); null when nowhere. */
  resolve(path: string): Placed | null {
    const first = /^\/([^/]*)/.exec(path)?.[1] ?? '';
    const named = this.mountNamed(first);
    if (!named && first.startsWith('@') && this.prefixesPossible()) return null;
    const mount = named ?? this.byPrefix.get('');
    if (!mount) return this.unmountedBase(path);
    const upstreamPath = named ? path.slice(1 + first.length) || '/' : path;
    const target = this.targetWithin(mount, upstreamPath);
    return { mount, target, scopes: target.scopes, path: upstreamPath, prefixed: named !== undefined };
  }

  /**
   * Mounts `origin`, named in an answer from `via`, if `via`'s follow patterns allow it; the mount
   * it already has otherwise (gaining `via`'s scopes). Null: not to be followed.
   */
  learn(origin: string, via: Mount): Mount | null {
    const known = this.byOrigin.get(origin);
    if (known) {
      if (known.learned) for (const scope of via.scopes) if (!known.scopes.includes(scope)) known.scopes.push(scope);
      return known;
    }
    if (!via.follow.some((pattern) => pattern.matches(origin))) return null;
    // No downgrade: a sibling of an https upstream is https.
    if (new URL(origin).protocol !== new URL(via.origin).protocol) return null;
    if (this.learnedCount >= MAX_LEARNED) return null;
    const mount: Mount = { prefix: mountPrefix(origin), origin, scopes: [...via.scopes], follow: via.follow, learned: true };
    if (this.byPrefix.has(mount.prefix)) return null;
    this.learnedCount++;
    this.add(mount);
    this.onLearn(mount, via);
    return mount;
  }

  private add(mount: Mount): void {
    this.byPrefix.set(mount.prefix, mount);
    this.byOrigin.set(mount.origin, mount);
  }

  private prefixesPossible(): boolean {
    return this.byOrigin.size > 1 || [...this.byOrigin.values()].some((m) => m.follow.length > 0);
  }

  /**
   * A path under a configured base path of a mounted origin, written without the mount (the URLs
   * clients learnt before mounts existed, e.g. `/cal/…` for `https://cal.example/cal/`): still that
   * target's, when no other origin has the same base. Answers then teach the mounted form.
   */
  private unmountedBase(path: string): Placed | null {
    const under = this.targets.filter((t) => t.basePath !== '/' && (path.startsWith(t.basePath) || path === t.basePath.slice(0, -1)));
    const best = under.sort((a, b) => b.basePath.length - a.basePath.length)[0];
    if (!best || this.targets.some((t) => t !== best && t.basePath === best.basePath)) return null;
    return { mount: this.byOrigin.get(best.origin)!, target: best, scopes: best.scopes, path, prefixed: false };
  }

  private targetWithin(mount: Mount, path: string): UpstreamTarget {
    let best: UpstreamTarget | null = null;
    for (const t of this.targets) {
      if (t.origin !== mount.origin) continue;
      const under = path.startsWith(t.basePath) || path === t.basePath.slice(0, -1);
      if (under && (!best || t.basePath.length > best.basePath.length)) best = t;
    }
    // Outside every base: the origin's, with every scope served on it.
    return best ?? { origin: mount.origin, basePath: '/', scopes: mount.scopes };
  }
}

/** `https://Caldav.Example:8443` → `/@caldav.example:8443` (WHATWG host: lowercase, no default port). */
export function mountPrefix(origin: string): string {
  return `/@${new URL(origin).host}`;
}

/** The client's encoded path (and query) as it goes upstream: the mount segment dropped. */
export function upstreamPathOf(encoded: string, prefixed: boolean): string {
  if (!prefixed) return encoded;
  const rest = encoded.replace(/^\/[^/?]*/, '');
  return rest.startsWith('/') ? rest : `/${rest}`;
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

/** `dav.caldav` / `dav.carddav` (url + follow), or the older `caldavUpstream` / `carddavUpstream`. */
function upstreamSpecs(config: RoutesConfig): Array<[DavScope, UpstreamSpec]> {
  const specs: Array<[DavScope, UpstreamSpec]> = [];
  for (const scope of ['caldav', 'carddav'] as const) {
    const spec = config[scope];
    const legacy = config[`${scope}Upstream`];
    if (spec && legacy) throw new PosternError('CONFIG_INVALID', `dav: set dav.${scope}.url or dav.${scope}Upstream, not both (${scope}Upstream: X is short for ${scope}: { url: X })`);
    if (spec) specs.push([scope, spec]);
    else if (legacy) specs.push([scope, { url: legacy }]);
  }
  if (specs.length === 0) throw new PosternError('CONFIG_INVALID', 'dav: set dav.caldav.url and/or dav.carddav.url (or caldavUpstream / carddavUpstream)');
  return specs;
}

function parseBase(scope: DavScope, raw: string): { origin: string; basePath: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch (err) {
    throw new PosternError('CONFIG_INVALID', `dav.${scope}: url is not a URL`, { cause: err });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new PosternError('CONFIG_INVALID', `dav.${scope}: url must be http or https`);
  if (url.username || url.password) throw new PosternError('CONFIG_INVALID', `dav.${scope}: url must not carry credentials (accounts have their own)`);
  if (url.search || url.hash) throw new PosternError('CONFIG_INVALID', `dav.${scope}: url must not have a query or fragment`);
  const canonical = routingPath(url.pathname);
  if (canonical === null) throw new PosternError('CONFIG_INVALID', `dav.${scope}: url path has encoded slashes or dot segments`);
  const basePath = canonical.endsWith('/') ? canonical : `${canonical}/`;
  return { origin: url.origin, basePath };
}
