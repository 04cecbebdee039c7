/**
 * Whether a path on a shared CalDAV+CardDAV root is (inside) a calendar or an address book, asked
 * of the upstream — for app passwords that have only one of the two DAV scopes, on every request
 * (scope-check.ts; what a request claims about itself never replaces this). Without it, a
 * contacts-only password could PROPFIND, REPORT or GET its way into calendar data on
 * Radicale-style servers.
 *
 * A path is held to the nearest calendar or address book among itself and its ancestors. RFC 4791
 * §4.2 and RFC 6352 §5.2 forbid collections inside them, which would make the path and its parent
 * enough, but servers do not all enforce it (Radicale reports a plain collection below an address
 * book, and 403 for paths below a calendar that cannot exist): the origin fuzz test found
 * `/alice/book/x/y` admitted with a calendar-only password when only the parent was asked. So the
 * walk goes up to the root. Depth-0 PROPFINDs of `resourcetype`, with the account's own upstream
 * credentials: none for what lies directly in a known calendar or address book, otherwise one per
 * level, at most MAX_PROBES; a path the walk cannot decide within that is 'undecidable', which no
 * single-scope password passes.
 *
 * Only definite answers are cached, and only for the upstream account that learnt them: a
 * calendar or an address book, for TTL_MS, keyed by origin, upstream user and path. What the
 * upstream shows depends on who asks (403/404 for someone else's collection; some servers map
 * paths per user), so one account's answer must never decide another's scope check. "other"
 * (a plain collection, a resource, 403 or 404) is never cached, as it is the answer that admits
 * either scope: a path that becomes a calendar is seen as one on the next request. Collection-
 * changing methods through postern drop the entries they touch, for every account. Probes that
 * fail are not cached and fail the request (502), never open it.
 */
import { PosternError } from '../errors.js';
import type { HttpUpstream } from '../upstream/http.js';
import { UpstreamRefusal } from '../upstream/refusal.js';
import { upstreamAuthorization, type DavCredential } from './headers.js';

export type CollectionKind = 'calendar' | 'addressbook' | 'other' | 'undecidable';

/** What one probe says: a kind, or that the account is shown nothing at the path (404, 403). */
type ProbeAnswer = 'calendar' | 'addressbook' | 'other' | 'unseen';

const TTL_MS = 60_000;
/** Probes one request may cost; a deeper path is not walked further (and is undecidable). */
const MAX_PROBES = 8;
const MAX_ENTRIES = 4096;
/** Probe answers relayed as the upstream's refusal (RFC 4918 §11: 423, 507; RFC 6585: 429; 503). */
const PROVIDER_REFUSALS = new Set([423, 429, 503, 507]);
const MAX_PROBE_BYTES = 256 * 1024;
const PROBE_BODY = '<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/></d:prop></d:propfind>';

interface Entry {
  origin: string;
  /** Without a trailing slash, so `/a/cal` and `/a/cal/` share an entry. */
  path: string;
  kind: DefiniteKind;
  at: number;
}

type DefiniteKind = 'calendar' | 'addressbook';

export class CollectionKinds {
  private readonly cache = new Map<string, Entry>();

  constructor(
    private readonly upstream: HttpUpstream,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * The kind of collection `path` (a routing path) is or lies in, as `credential` sees it. The walk
   * stops at `root`, the configured base path the route is under: above it is not the provider's
   * DAV tree (Nextcloud's `/remote.php/` is no DAV resource, and answers no 207).
   */
  async kindAt(origin: string, path: string, credential: DavCredential, root = '/'): Promise<CollectionKind> {
    // A known calendar or address book decides for itself and for whatever lies directly in it.
    const parentOfPath = parentOf(path);
    const known = this.cached(origin, credential.username, path) ?? (parentOfPath === null ? undefined : this.cached(origin, credential.username, parentOfPath));
    if (known) return known;
    for (let at: string | null = path, probes = 0; at !== null; at = parentOf(at)) {
      const cached = this.cached(origin, credential.username, at);
      if (cached) return cached;
      if (++probes > MAX_PROBES) return 'undecidable';
      const answer = await this.learn(origin, at, credential);
      if (answer === 'calendar' || answer === 'addressbook') return answer;
      if (trimSlash(at) === trimSlash(root)) break;
    }
    return 'other';
  }

  /** MKCOL, MKCALENDAR, PROPPATCH, DELETE, MOVE and COPY change what is where: forget `path` and below. */
  forget(origin: string, path: string): void {
    const base = trimSlash(path);
    for (const [key, entry] of this.cache) {
      if (entry.origin === origin && (entry.path === base || entry.path.startsWith(`${base}/`))) this.cache.delete(key);
    }
  }

  private cached(origin: string, user: string, path: string): DefiniteKind | undefined {
    const entry = this.cache.get(keyOf(origin, user, path));
    return entry && this.clock() - entry.at < TTL_MS ? entry.kind : undefined;
  }

  /** Probes `path` and keeps a definite answer for the account that asked. */
  private async learn(origin: string, path: string, credential: DavCredential): Promise<ProbeAnswer> {
    const at = this.clock();
    const kind = await this.probe(origin, path, credential);
    if (kind === 'other' || kind === 'unseen') return kind;
    const key = keyOf(origin, credential.username, path);
    this.cache.delete(key);
    this.cache.set(key, { origin, path: trimSlash(path), kind, at });
    if (this.cache.size > MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
    return kind;
  }

  private async probe(origin: string, path: string, credential: DavCredential): Promise<ProbeAnswer> {
    const body = Buffer.from(PROBE_BODY);
    const response = await this.upstream.send({
      origin, path: encodePath(path), method: 'PROPFIND', body,
      headers: {
        authorization: upstreamAuthorization(credential),
        depth: '0', 'content-type': 'application/xml; charset=utf-8', 'content-length': String(body.length),
      },
    });
    const text = await readText(response);
    // Missing, or not shown to this account (Radicale answers 403 below a calendar for a path that
    // cannot exist): either way, what contains it decides.
    if (response.statusCode === 404 || response.statusCode === 403) return 'unseen';
    if (response.statusCode === 401) throw new PosternError('UPSTREAM_AUTH_REJECTED');
    // The upstream turned the probe down for a reason of its own (a lock, a rate limit, its own
    // outage, a full quota): the client hears that status, never "rejected credentials".
    if (PROVIDER_REFUSALS.has(response.statusCode ?? 0)) {
      throw new UpstreamRefusal({ code: String(response.statusCode), text: null, temporary: response.statusCode !== 507 });
    }
    if (response.statusCode !== 207) throw new PosternError('UPSTREAM_PROTOCOL', `collection probe answered ${response.statusCode}`);
    return kindFromMultistatus(text);
  }
}

/** Reads `<resourcetype>` of a Depth-0 multistatus; element names, any namespace prefix. */
export function kindFromMultistatus(xml: string): 'calendar' | 'addressbook' | 'other' {
  const resourcetype = /<(?:[\w.-]+:)?resourcetype(?:\s[^>]*)?>([\s\S]*?)<\/(?:[\w.-]+:)?resourcetype\s*>/i.exec(xml)?.[1] ?? '';
  if (/<(?:[\w.-]+:)?calendar[\s/>]/i.test(resourcetype)) return 'calendar';
  if (/<(?:[\w.-]+:)?addressbook[\s/>]/i.test(resourcetype)) return 'addressbook';
  return 'other';
}

/** `/a/b/c` and `/a/b/c/` → `/a/b/`; the root has no parent. */
export function parentOf(path: string): string | null {
  const trimmed = path.replace(/\/+$/, '');
  if (trimmed === '') return null;
  return trimmed.slice(0, trimmed.lastIndexOf('/') + 1);
}

function trimSlash(path: string): string {
  return path.replace(/\/?$/, '');
}

/** The upstream user is part of the key: the answer is what that account was shown. */
function keyOf(origin: string, user: string, path: string): string {
  return JSON.stringify([origin, user, trimSlash(path)]);
}

function encodePath(path: string): string {
  return path.split('/').map((segment) => encodeURIComponent(segment)).join('/');
}

async function readText(response: import('node:http').IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of response as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_PROBE_BYTES) {
      response.destroy();
      throw new PosternError('UPSTREAM_PROTOCOL', 'collection probe answer too large');
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
