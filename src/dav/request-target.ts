/**
 * The request target (and Destination) as postern judges it and as the upstream receives it,
 * sans-I/O: a string in, one canonical path in two spellings out, or a refusal.
 *
 * Why: the upstream URL used to be `new URL(req.url, origin)`, and a URL parser reads
 * `//otherhost:port/alice/` (or `/\otherhost`, `///otherhost`, `http://otherhost/`) as another
 * authority, while routing saw the harmless `/alice/`: the account's real credentials went to
 * whoever the client named (issue 9, item 1). Now no URL parser ever sees a client's path:
 * - only origin-form (`/…`, RFC 9112 §3.2.1) of visible ASCII is accepted; a leading `//`,
 *   absolute-form, `*`, a backslash or fragment anywhere, raw non-ASCII or controls are refused;
 * - each segment is percent-decoded for routing and refused if it decodes to `.`/`..` or holds
 *   `/`, `\\` or NUL (path confusion: routed under one scope, served under another);
 * - empty segments are dropped, and what goes upstream is the client's own encoded segments of
 *   exactly that canonical path, so `path` (what routing and authorisation judged) and
 *   `upstreamPath` (what the configured origin receives) decode to the same thing byte for byte.
 * The upstream URL is then always the configured origin followed by `upstreamPath`
 * (src/upstream/http.ts refuses anything else).
 */

export interface CanonicalTarget {
  /** Percent-decoded, for routing and scope decisions; no query. */
  path: string;
  /** The same path in the client's percent-encoding, plus the query: what goes upstream. */
  upstreamPath: string;
}

export type TargetRefusal = 'not-origin-form' | 'bad-character' | 'bad-encoding' | 'dot-segment' | 'encoded-separator';

export type ParsedTarget = CanonicalTarget | { refused: TargetRefusal };

/** Visible ASCII without `\` (a separator to WHATWG URL parsers) and `#` (never sent in a target). */
const TARGET_CHARS = /^[\x21-\x22\x24-\x5b\x5d-\x7e]*$/;

export function parseRequestTarget(raw: string): ParsedTarget {
  if (!raw.startsWith('/') || raw.startsWith('//')) return { refused: 'not-origin-form' };
  if (!TARGET_CHARS.test(raw)) return { refused: 'bad-character' };
  const question = raw.indexOf('?');
  const rawPath = question < 0 ? raw : raw.slice(0, question);
  const query = question < 0 ? '' : raw.slice(question);
  const decoded: string[] = [];
  const encoded: string[] = [];
  for (const segment of rawPath.split('/')) {
    if (segment === '') continue;
    let plain: string;
    try {
      plain = decodeURIComponent(segment);
    } catch {
      return { refused: 'bad-encoding' };
    }
    if (plain === '.' || plain === '..') return { refused: 'dot-segment' };
    if (/[/\\\u0000]/.test(plain)) return { refused: 'encoded-separator' };
    decoded.push(plain);
    encoded.push(segment);
  }
  const trailing = decoded.length > 0 && rawPath.endsWith('/') ? '/' : '';
  return { path: `/${decoded.join('/')}${trailing}`, upstreamPath: `/${encoded.join('/')}${trailing}${query}` };
}

/**
 * The routing form of a path (no query), or null when it must be refused: see parseRequestTarget.
 * Also checks configured base paths.
 */
export function routingPath(raw: string): string | null {
  const parsed = parseRequestTarget(raw);
  return 'refused' in parsed || raw.includes('?') ? null : parsed.path;
}

export type ParsedDestination = (CanonicalTarget & { origin: string | null }) | 'bad' | 'elsewhere';

/** host[:port] of an absolute URI: a reg-name or bracketed IP literal, no userinfo, no escapes. */
const AUTHORITY = /^(?:[a-z0-9.-]{1,253}|\[[0-9a-f:.]{2,45}\])(?::\d{1,5})?$/i;

/**
 * A Destination header (RFC 4918 §10.3: an absolute URI or an absolute path). `origin` is the
 * normalised origin it names (null for a path); the caller decides whether that is this server
 * (else 502, RFC 4918 §9.9.4). Anything with userinfo (`https://postern@otherhost/`), a
 * backslash or an authority-form path is malformed (400), never "resolved".
 */
export function parseDestination(raw: string): ParsedDestination {
  if (raw.startsWith('/')) {
    const target = parseRequestTarget(raw);
    return 'refused' in target ? 'bad' : { ...target, origin: null };
  }
  if (!TARGET_CHARS.test(raw)) return 'bad';
  const absolute = /^([a-z][a-z0-9+.-]*):\/\/([^/?]*)(.*)$/i.exec(raw);
  if (!absolute) return 'bad';
  const [, scheme, authority, rest] = absolute as unknown as [string, string, string, string];
  if (!/^https?$/i.test(scheme)) return 'elsewhere';
  if (!AUTHORITY.test(authority)) return 'bad';
  let origin: string;
  try {
    origin = new URL(`${scheme.toLowerCase()}://${authority}`).origin;
  } catch {
    return 'bad';
  }
  const target = parseRequestTarget(rest === '' ? '/' : rest);
  return 'refused' in target ? 'bad' : { ...target, origin };
}

/** A target fit for a log line: at most 80 characters, controls and non-ASCII shown as `?`. */
export function safeTargetForLog(raw: string): string {
  const visible = raw.replace(/[^\x20-\x7e]/g, '?');
  return visible.length > 80 ? `${visible.slice(0, 77)}...` : visible;
}
