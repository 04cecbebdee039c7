/**
 * Parses an `Authorization: Basic …` header (RFC 7617), sans-I/O: a string in, a typed result out.
 *
 * Never throws. Anything that is not well-formed Basic credentials is `malformed` (answered with
 * the same 401 challenge as no credentials, without asking the authentication service: there is
 * no login to throttle and nothing to verify). The decoded password is only ever handed to the
 * authenticator; it must not be logged or echoed.
 */

export type BasicCredentials =
  | { kind: 'none' }
  | { kind: 'other-scheme' }
  | { kind: 'malformed'; reason: MalformedReason }
  | { kind: 'basic'; login: string; password: string };

export type MalformedReason = 'too-long' | 'bad-base64' | 'bad-utf8' | 'no-colon' | 'control-char' | 'empty-login';

/**
 * App passwords are 19 characters and logins at most a few hundred; 1 KiB of header leaves room
 * for any real login while bounding the work per request. Node itself refuses header blocks over
 * 16 KiB with 431 before we see them.
 */
export const MAX_AUTHORIZATION_LENGTH = 1024;

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
// RFC 7617 §2: user-id and password must not contain control characters (CTL, RFC 5234).
 
const CONTROL = /[\u0000-\u001f\u007f]/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function parseBasicAuthorization(header: string | undefined): BasicCredentials {
  if (header === undefined || header.trim() === '') return { kind: 'none' };
  if (header.length > MAX_AUTHORIZATION_LENGTH) return { kind: 'malformed', reason: 'too-long' };
  // RFC 9110 §11.1: the scheme is case-insensitive; token68 follows after one or more spaces.
  const match = /^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)(?:[ \t]+(.*))?$/s.exec(header);
  if (!match) return { kind: 'malformed', reason: 'bad-base64' };
  if (match[1]!.toLowerCase() !== 'basic') return { kind: 'other-scheme' };
  const token = (match[2] ?? '').trim();
  if (token.length % 4 !== 0 || !BASE64.test(token)) return { kind: 'malformed', reason: 'bad-base64' };
  let decoded: string;
  try {
    decoded = utf8.decode(Buffer.from(token, 'base64'));
  } catch {
    return { kind: 'malformed', reason: 'bad-utf8' };
  }
  const colon = decoded.indexOf(':');
  if (colon < 0) return { kind: 'malformed', reason: 'no-colon' };
  if (CONTROL.test(decoded)) return { kind: 'malformed', reason: 'control-char' };
  const login = decoded.slice(0, colon);
  if (login === '') return { kind: 'malformed', reason: 'empty-login' };
  return { kind: 'basic', login, password: decoded.slice(colon + 1) };
}

/** The challenge of RFC 7617 §2.1, with the realm as a quoted-string (RFC 9110 §5.6.4). */
export function basicChallenge(realm: string): string {
  // Header values must be visible ASCII; a configured realm outside it is shown as '?'.
  const safe = realm.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, '\\$&');
  return `Basic realm="${safe}", charset="UTF-8"`;
}
