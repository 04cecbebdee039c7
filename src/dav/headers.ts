/**
 * Which headers cross the proxy, in each direction.
 *
 * Hop-by-hop headers (RFC 9110 §7.6.1: Connection and every header it names, Keep-Alive, TE,
 * Trailer, Transfer-Encoding, Upgrade, Proxy-*) describe one connection and are dropped both ways;
 * Node frames each side itself. Everything end-to-end passes unchanged (ETag, If-Match,
 * If-None-Match, Depth, Overwrite, Prefer, Brief, If, Lock-Token, Timeout…), except:
 * - the client's Authorization is replaced by the account's real upstream credentials, and Host
 *   by the upstream's;
 * - Forwarded / X-Forwarded-* / X-Real-IP from the client are dropped (a client must not choose
 *   what the upstream believes about it); postern sets X-Forwarded-Proto: https always, and
 *   X-Forwarded-For only toward an upstream marked `trusted` (as for IMAP, the client address
 *   is personal data a third-party provider does not need);
 * - Expect is answered by postern itself (after authentication, see handler.ts).
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { BearerCredential, PasswordCredential, UpstreamCredential } from '../auth/types.js';

/** What a DAV request can carry upstream: Basic (RFC 7617) or Bearer (RFC 6750). */
export type DavCredential = PasswordCredential | BearerCredential;

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings']);
const CLIENT_ONLY = new Set(['host', 'authorization', 'expect', 'forwarded', 'x-real-ip']);

/** Header names a Connection header declares hop-by-hop (RFC 9110 §7.6.1). */
function connectionNamed(headers: IncomingHttpHeaders): Set<string> {
  const value = headers.connection;
  const names = new Set<string>();
  for (const part of (Array.isArray(value) ? value.join(',') : value ?? '').split(',')) {
    const name = part.trim().toLowerCase();
    if (name) names.add(name);
  }
  return names;
}

function isHopByHop(name: string, named: Set<string>): boolean {
  return HOP_BY_HOP.has(name) || named.has(name) || name.startsWith('proxy-');
}

export interface ForwardFacts {
  credential: DavCredential;
  clientAddress: string;
  trusted: boolean;
  /** Set when the body was rewritten and buffered: its new length. */
  bodyLength?: number;
}

export function upstreamRequestHeaders(incoming: IncomingHttpHeaders, facts: ForwardFacts): OutgoingHttpHeaders {
  const named = connectionNamed(incoming);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || isHopByHop(name, named) || CLIENT_ONLY.has(name) || name.startsWith('x-forwarded-')) continue;
    out[name] = value;
  }
  if (facts.bodyLength !== undefined) out['content-length'] = String(facts.bodyLength);
  out.authorization = upstreamAuthorization(facts.credential);
  out['x-forwarded-proto'] = 'https';
  if (facts.trusted) out['x-forwarded-for'] = facts.clientAddress;
  return out;
}

export interface ResponseRewrite {
  /** Maps an absolute URL naming an upstream origin to the public one. */
  url(value: string): string;
  /** The body is being rewritten (and decoded): its length and encoding change. */
  bodyRewritten: boolean;
}

export function clientResponseHeaders(incoming: IncomingHttpHeaders, rewrite: ResponseRewrite): OutgoingHttpHeaders {
  const named = connectionNamed(incoming);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || isHopByHop(name, named)) continue;
    if (rewrite.bodyRewritten && (name === 'content-length' || name === 'content-encoding' || name === 'content-md5')) continue;
    out[name] = name === 'location' || name === 'content-location' ? rewrite.url(String(value)) : value;
  }
  // ETag passes as sent: only XML bodies are rewritten, and DAV clients take the ETags they
  // use for If-Match from the calendar/vCard resources (never rewritten) or from getetag props.
  return out;
}

/**
 * DAV's "can this credential be sent?": HTTP Basic (RFC 7617) carries a user and a password and
 * no authorization identity, so a master login (SASL PLAIN acting for the account) cannot be
 * expressed. Refused before anything goes upstream (src/auth/sign-in.ts `unsupported`). An OAuth2
 * access token goes as `Authorization: Bearer` (RFC 6750 §2.1; Google CalDAV/CardDAV).
 */
export function davSendable(credential: UpstreamCredential): credential is DavCredential {
  switch (credential.kind) {
    case 'password':
    case 'bearer':
      return true;
    case 'master':
      return false;
  }
}

/** The account's upstream login as an Authorization value (forwarded requests and probes). */
export function upstreamAuthorization(credential: DavCredential): string {
  switch (credential.kind) {
    case 'password':
      return `Basic ${Buffer.from(`${credential.username}:${credential.password}`, 'utf8').toString('base64')}`;
    case 'bearer':
      return `Bearer ${credential.token}`;
  }
}
