/**
 * Rewrites absolute URLs that name one origin into another: upstream → public in responses
 * (Location, Content-Location, `<href>` in multistatus bodies), public → upstream in requests
 * (Destination, `<href>` in REPORT/PROPFIND bodies). A table of many "from" origins to one "to"
 * origin, so sibling upstream hosts (iCloud's pNN-caldav) are one more entry (`upstreamAliases`).
 *
 * Bodies are rewritten as a stream, never buffered whole: only text of the form
 * `<prefix:href attrs>  ORIGIN` is touched (an origin inside calendar data or a display name is
 * data, not a reference, and stays as it is; sync-tokens are opaque URIs the client hands back
 * verbatim, so they must not change either). Such a match never spans a `<` after its start, so
 * each chunk is processed up to its last `<` and only the bounded tail from there is carried to
 * the next chunk. Bytes are handled as latin1 (one char per byte), so multi-byte UTF-8 split
 * across chunks passes through untouched; origins are ASCII.
 */
import { Transform } from 'node:stream';

export interface OriginTable {
  /** Origins to replace, e.g. `http://127.0.0.1:5232` (no trailing slash). */
  from: readonly string[];
  /** What they become, e.g. `https://dav.example.org`. */
  to: string;
}

const MAX_PREFIX = 64;
const MAX_ATTRS = 512;
const MAX_SPACE = 64;

/** Every spelling of an origin a server may emit: as given, and with an explicit default port. */
export function originSpellings(origin: string): string[] {
  const url = new URL(origin);
  const forms = [url.origin];
  if (url.port === '') forms.push(`${url.protocol}//${url.host}:${url.protocol === 'https:' ? 443 : 80}`);
  return forms;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function alternatives(table: OriginTable): string {
  const all = table.from.flatMap(originSpellings).filter((o) => o !== table.to);
  // Longest first, so `http://h:80` wins over `http://h` where both would match.
  return [...new Set(all)].sort((a, b) => b.length - a.length).map(escapeRegExp).join('|');
}

/** Replaces a leading origin of an absolute URL (header values). Other URLs are returned as-is. */
export function rewriteUrl(value: string, table: OriginTable): string {
  const alts = alternatives(table);
  if (!alts) return value;
  return value.replace(new RegExp(`^(?:${alts})(?=[/?#]|$)`, 'i'), table.to);
}

export interface BodyRewriter {
  /** Rewrites a complete text (latin1 string of the bytes). */
  text(body: string): string;
  /** A Transform doing the same over a byte stream. */
  stream(): Transform;
}

export function bodyRewriter(table: OriginTable): BodyRewriter {
  const alts = alternatives(table);
  if (!alts) return { text: (body) => body, stream: () => passThrough() };
  const pattern = new RegExp(
    `(<(?:[A-Za-z_][\\w.-]{0,${MAX_PREFIX}}:)?href(?:\\s[^<>]{0,${MAX_ATTRS}})?>\\s{0,${MAX_SPACE}})(?:${alts})(?=[/?#<\\s])`,
    'gi',
  );
  const maxMatch = 1 + MAX_PREFIX + 2 + 'href'.length + 1 + MAX_ATTRS + 1 + MAX_SPACE + Math.max(...table.from.flatMap(originSpellings).map((o) => o.length)) + 1;
  const text = (body: string) => body.replace(pattern, (_all, head: string) => head + table.to);
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

function passThrough(): Transform {
  return new Transform({ transform: (chunk: Buffer, _encoding, done) => done(null, chunk) });
}
