/**
 * Whether a path on a shared CalDAV+CardDAV root is (inside) a calendar or an address book, asked
 * of the upstream — for app passwords that have only one of the two DAV scopes, where the request
 * itself does not say (routes.ts `evidentScope`). Without this, a contacts-only password could
 * PROPFIND or REPORT its way into calendar data on Radicale-style servers.
 *
 * Calendar and address-book collections cannot contain collections (RFC 4791 §4.2, RFC 6352 §5.2),
 * so a resource is inside one exactly when the path itself or its parent is one: at most two
 * Depth-0 PROPFINDs of `resourcetype`, with the account's own upstream credentials.
 *
 * Answers are cached briefly per upstream origin and path (a calendar stays a calendar; the kind
 * is not a secret of the account); collection-changing methods through postern drop the entries
 * they touch. Probes that fail are not cached and fail the request (502), never open it.
 */
import type { UpstreamCredential } from '../auth/types.js';
import { PosternError } from '../errors.js';
import type { HttpUpstream } from '../upstream/http.js';

export type CollectionKind = 'calendar' | 'addressbook' | 'other';

const TTL_MS = 60_000;
const MAX_ENTRIES = 4096;
const MAX_PROBE_BYTES = 256 * 1024;
const PROBE_BODY = '<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/></d:prop></d:propfind>';

export class CollectionKinds {
  private readonly cache = new Map<string, { kind: CollectionKind; at: number }>();

  constructor(
    private readonly upstream: HttpUpstream,
    private readonly clock: () => number = Date.now,
  ) {}

  /** The kind of collection `path` (a routing path) is or lies directly in. */
  async kindAt(origin: string, path: string, credential: UpstreamCredential): Promise<CollectionKind> {
    const own = await this.kindOf(origin, path, credential);
    if (own !== 'other') return own;
    const parent = parentOf(path);
    return parent === null ? 'other' : this.kindOf(origin, parent, credential);
  }

  /** MKCOL, MKCALENDAR, DELETE, MOVE and COPY change what is where: forget `path` and below. */
  forget(origin: string, path: string): void {
    const prefix = `${origin} ${path.replace(/\/?$/, '')}`;
    for (const key of this.cache.keys()) if (key === prefix || key.startsWith(`${prefix}/`)) this.cache.delete(key);
  }

  private async kindOf(origin: string, path: string, credential: UpstreamCredential): Promise<CollectionKind> {
    const key = `${origin} ${path.replace(/\/?$/, '')}`;
    const hit = this.cache.get(key);
    const now = this.clock();
    if (hit && now - hit.at < TTL_MS) return hit.kind;
    const kind = await this.probe(origin, path, credential);
    this.cache.delete(key);
    this.cache.set(key, { kind, at: now });
    if (this.cache.size > MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
    return kind;
  }

  private async probe(origin: string, path: string, credential: UpstreamCredential): Promise<CollectionKind> {
    const body = Buffer.from(PROBE_BODY);
    const response = await this.upstream.send({
      origin, path: encodePath(path), method: 'PROPFIND', body,
      headers: {
        authorization: `Basic ${Buffer.from(`${credential.username}:${credential.password}`, 'utf8').toString('base64')}`,
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
