/**
 * SASL messages for an OAuth2 access token, in one place so the IMAP and SMTP clients cannot drift:
 * OAUTHBEARER (RFC 7628, the standard) and XOAUTH2 (Google's and Microsoft's older mechanism,
 * which both still document). Which one is sent depends only on what the upstream advertises,
 * OAUTHBEARER first.
 *
 * On a refusal both mechanisms answer with a challenge carrying a JSON error (RFC 7628 §3.2.2)
 * and wait for the client to end the exchange: `ABORT_RESPONSE` is what the client sends then
 * (RFC 7628 §3.2.3: a single %x01, base64 "AQ=="; XOAUTH2 takes the same or an empty line, and
 * both Dovecot and Microsoft accept %x01), after which the server sends its final failure.
 */
import type { BearerCredential } from '../auth/types.js';

export type OAuthMechanism = 'OAUTHBEARER' | 'XOAUTH2';

/** Base64 of %x01: ends a failed exchange so the server sends its final failure. */
export const ABORT_RESPONSE = 'AQ==';

/** The first mechanism of ours that the upstream offers (upper-cased names), or null. */
export function pickOAuthMechanism(offered: readonly string[]): OAuthMechanism | null {
  if (offered.includes('OAUTHBEARER')) return 'OAUTHBEARER';
  if (offered.includes('XOAUTH2')) return 'XOAUTH2';
  return null;
}

/** The initial client response, base64. */
export function oauthInitialResponse(mechanism: OAuthMechanism, credential: BearerCredential): string {
  const message = mechanism === 'OAUTHBEARER'
    // RFC 7628 §3.1: gs2-header "n,a=<saslname>," then kvpairs separated by %x01, ending %x01%x01.
    ? `n,a=${saslName(credential.username)},\x01auth=Bearer ${credential.token}\x01\x01`
    : `user=${credential.username}\x01auth=Bearer ${credential.token}\x01\x01`;
  return Buffer.from(message, 'utf8').toString('base64');
}

/** RFC 5801 §4 saslname: `=` and `,` are escaped as =3D and =2C. */
function saslName(name: string): string {
  return name.replace(/=/g, '=3D').replace(/,/g, '=2C');
}
