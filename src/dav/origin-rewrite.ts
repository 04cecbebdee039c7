/**
 * Rewrites the head of URLs between the upstream's namespace and postern's: upstream → public in
 * responses (Location, Content-Location, `<href>` in multistatus bodies), public → upstream in
 * requests (`<href>` in REPORT/PROPFIND bodies). The head of a URL is its origin, if absolute,
 * and its first path segment when that names a mount (`/@host`, routes.ts); what it becomes is
 * decided by a HeadMap (href-map.ts), so this module is only the mechanics. Path-absolute hrefs
 * (`/dav/calendars/…`) are heads too: a mounted upstream's paths gain its prefix.
 *
 * Bodies are rewritten as a stream, never buffered whole: only text of the form
 * `<prefix:href attrs>  HEAD` is touched (an origin inside calendar data or a display name is
 * data, not a reference, and stays as it is; sync-tokens are opaque URIs the client hands back
 * verbatim, so they must not change either). Such a match never spans a `<` after its start, so
 * each chunk is processed up to its last `<` and only the bounded tail from there is carried to
 * the next chunk; a match that reaches the end of the processed part is therefore followed by `<`.
 * Bytes are handled as latin1 (one char per byte), so multi-byte UTF-8 split across chunks passes
 * through untouched; origins are ASCII.
 */
import { Transform } from 'node:stream';

/** The head of one URL as written: its origin (absolute URLs) and a first segment `/@…`. */
export interface UrlHead {
  /** e.g. `HTTP://127.0.0.1:5232`, as written; undefined for a path. */
  origin: string | undefined;
  /** e.g. `/@caldav.example`, as written; undefined when the first segment does not start with `@`. */
  mount: string | undefined;
  /** Nothing but a path follows (`/…`, not `//…`, not relative). */
  pathAbsolute: boolean;
  /** The head is all there is (nothing or only a query follows): a mount needs its `/` added. */
  bare: boolean;
}

/** What the written head (origin + mount segment) becomes; null leaves the URL as it is. */
export type HeadMap = (head: UrlHead) => string | null;

const MAX_PREFIX = 64;
const MAX_ATTRS = 512;
const MAX_SPACE = 64;
const MAX_AUTHORITY = 300;

const ORIGIN = `https?:\\/\\/[A-Za-z0-9.\\-:\\[\\]]{1,${MAX_AUTHORITY}}`;
const MOUNT = `\\/@[^\\s/?#<>"']{1,${MAX_AUTHORITY}}`;
const HEAD_OF_URL = new RegExp(`^(${ORIGIN}(?=[/?#]|$))?(${MOUNT}(?=[/?#]|$))?`, 'i');

/** Every spelling of an origin a server may emit: as given, and with an explicit default port. */
export function originSpellings(origin: string): string[] {
  const url = new URL(origin);
  const forms = [url.origin];
  if (url.port === '') forms.push(`${url.protocol}//${url.host}:${url.protocol === 'https:' ? 443 : 80}`);
  return forms;
}

/** The normalised origin of a written one (`HTTPS://H:443` → `https://h`), or null. */
export function normalOrigin(written: string): string | null {
  try {
    const url = new URL(written);
    return url.origin === 'null' ? null : url.origin;
  } catch {
    return null;
  }
}

function headOf(origin: string | undefined, mount: string | undefined, after: string): UrlHead {
  const pathAbsolute = origin === undefined && (mount !== undefined || (after.startsWith('/') && !after.startsWith('//')));
  return { origin, mount, pathAbsolute, bare: after === '' || after.startsWith('?') || after.startsWith('#') || after.startsWith('<') };
}

function apply(map: HeadMap, written: string, origin: string | undefined, mount: string | undefined, after: string): string {
  if (origin === undefined && mount === undefined && !(after.startsWith('/') && !after.startsWith('//'))) return written;
  const head = headOf(origin, mount, after);
  const replaced = map(head);
  if (replaced === null) return written;
  // `/@host` alone is the mount's root: it must still read as a path.
  return mount !== undefined && head.bare && !replaced.endsWith('/') ? `${replaced}/` : replaced;
}

/** Rewrites the head of a header URL (absolute or path-absolute); relative ones are returned as-is. */
export function rewriteUrl(value: string, map: HeadMap): string {
  const match = HEAD_OF_URL.exec(value)!;
  const [written, origin, mount] = match as unknown as [string, string | undefined, string | undefined];
  const after = value.slice(written.length);
  return apply(map, written, origin, mount, after) + after;
}

export interface BodyRewriter {
  /** Rewrites a complete text (latin1 string of the bytes). */
  text(body: string): string;
  /** A Transform doing the same over a byte stream. */
  stream(): Transform;
}

export function bodyRewriter(map: HeadMap): BodyRewriter {
  const pattern = new RegExp(
    `(<(?:[A-Za-z_][\\w.-]{0,${MAX_PREFIX}}:)?href(?:\\s[^<>]{0,${MAX_ATTRS}})?>\\s{0,${MAX_SPACE}})(${ORIGIN}(?=[/?#<\\s]|$))?(${MOUNT}(?=[/?#<\\s]|$))?`,
    'gi',
  );
  const maxMatch = 1 + MAX_PREFIX + 2 + 'href'.length + 1 + MAX_ATTRS + 1 + MAX_SPACE + 2 * (MAX_AUTHORITY + 10) + 2;
  const text = (body: string) =>
    body.replace(pattern, (all: string, open: string, origin: string | undefined, mount: string | undefined, offset: number) => {
      const end = offset + all.length;
      return open + apply(map, all.slice(open.length), origin, mount, body.slice(end, end + 2) || '<');
    });
  return {
    text,
    stream: () => {
      let carry = '';
      return new Transform({
        transform(chunk: Buffer, _encoding, done) {
          const pending = carry + chunk.toString('latin1');
          const cut = safeCut(pending, maxMatch);
          carry = pending.slice(cut);
          const out = pending.slice(0, cut);
          done(null, out ? Buffer.from(text(out), 'latin1') : undefined);
        },
        flush(done) {
          done(null, carry ? Buffer.from(text(carry), 'latin1') : undefined);
        },
      });
    },
  };
}

/**
 * Where the processed part of `pending` may end: before its last `<`, unless that `<` is so far
 * back that any match starting there is already complete (including its one-character lookahead).
 */
function safeCut(pending: string, maxMatch: number): number {
  const lastLt = pending.lastIndexOf('<');
  if (lastLt < 0 || pending.length - lastLt > maxMatch) return pending.length;
  return lastLt;
}
