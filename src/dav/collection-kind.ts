/**
 * Whether a path on a shared CalDAV+CardDAV root is (inside) a calendar or an address book, asked
 * of the upstream — for app passwords that have only one of the two DAV scopes, on every request
 * (scope-check.ts; what a request claims about itself never replaces this). Without it, a
 * contacts-only password could PROPFIND, REPORT or GET its way into calendar data on
 * Radicale-style servers.
 *
 * Calendar and address-book collections cannot contain collections (RFC 4791 §4.2, RFC 6352 §5.2),
 * so a resource is inside one exactly when the path itself or its parent is one: at most two
 * Depth-0 PROPFINDs of `resourcetype`, with the account's own upstream credentials.
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
import type { PasswordCredential } from '../auth/types.js';
import { PosternError } from '../errors.js';
import type { HttpUpstream } from '../upstream/http.js';
import { basicAuthorization } from './headers.js';

export type CollectionKind = 'calendar' | 'addressbook' | 'other';

const TTL_MS = 60_000;
const MAX_ENTRIES = 4096;
const MAX_PROBE_BYTES = 256 * 1024;
const PROBE_BODY = '<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/></d:prop></d:propfind>';

interface Entry {
  origin: string;
  /** Without a trailing slash, so `/a/cal` and `/a/cal/` share an entry. */
  path: string;
  kind: DefiniteKind;
  at: number;
}

type DefiniteKind = Exclude<CollectionKind, 'other'>;

export class CollectionKinds {
  private readonly cache = new Map<string, Entry>();

  constructor(
    private readonly upstream: HttpUpstream,
    private readonly clock: () => number = Date.now,
  ) {}

  /** The kind of collection `path` (a routing path) is or lies directly in, as `credential` sees it. */
  async kindAt(origin: string, path: string, credential: PasswordCredential): Promise<CollectionKind> {
    const user = credential.username;
    const parent = parentOf(path);
    // A known calendar or address book decides for itself and for whatever lies directly in it.
    const known = this.cached(origin, user, path) ?? (parent === null ? undefined : this.cached(origin, user, parent));
    if (known) return known;
    const own = await this.learn(origin, path, credential);
    if (own !== 'other') return own;
    return parent === null ? 'other' : this.learn(origin, parent, credential);
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
  private async learn(origin: string, path: string, credential: PasswordCredential): Promise<CollectionKind> {
    const at = this.clock();
    const kind = await this.probe(origin, path, credential);
    if (kind === 'other') return kind;
    const key = keyOf(origin, credential.username, path);
    this.cache.delete(key);
    this.cache.set(key, { origin, path: trimSlash(path), kind, at });
    if (this.cache.size > MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
    return kind;
  }

  private async probe(origin: string, path: string, credential: PasswordCredential): Promise<CollectionKind> {
    const body = Buffer.from(PROBE_BODY);
    const response = await this.upstream.send({
      origin, path: encodePath(path), method: 'PROPFIND', body,
      headers: {
        authorization: basicAuthorization(credential),
        depth: '0', 'content-type': 'application/xml; charset=utf-8', 'content-length': String(body.length),
      },
    });
    const text = await readText(response);
    // Missing, or not this account's: the request itself will get the upstream's own answer.
    if (response.statusCode === 404 || response.statusCode === 403) return 'other';
    if (response.statusCode === 401) throw new PosternError('UPSTREAM_AUTH_REJECTED');
    if (response.statusCode !== 207) throw new PosternError('UPSTREAM_PROTOCOL', `collection probe answered ${response.statusCode}`);
    return kindFromMultistatus(text);
  }
}

/** Reads `<resourcetype>` of a Depth-0 multistatus; element names, any namespace prefix. */
export function kindFromMultistatus(xml: string): CollectionKind {
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
