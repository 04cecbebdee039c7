/**
 * The SASL messages that carry an OAuth2 token upstream: RFC 7628's OAUTHBEARER layout (gs2 header
 * with an escaped authorization identity, %x01-separated pairs, %x01%x01 at the end), XOAUTH2's,
 * and the choice between them (OAUTHBEARER first, whatever the order advertised).
 */
import { describe, expect, it } from 'vitest';
import { ABORT_RESPONSE, oauthInitialResponse, pickOAuthMechanism } from './sasl-oauth.js';

const credential = { kind: 'bearer' as const, username: 'alice@example.com', token: 'tok.en-1', expiresAt: null };
const decode = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');

describe('OAuth2 SASL messages', () => {
  it('OAUTHBEARER: gs2 header with authzid, auth pair, double %x01 (RFC 7628 §3.1)', () => {
    expect(decode(oauthInitialResponse('OAUTHBEARER', credential))).toBe('n,a=alice@example.com,\x01auth=Bearer tok.en-1\x01\x01');
  });

  it('OAUTHBEARER escapes = and , in the authorization identity (RFC 5801 saslname)', () => {
    expect(decode(oauthInitialResponse('OAUTHBEARER', { ...credential, username: 'a=b,c' }))).toMatch(/^n,a=a=3Db=2Cc,\x01/);
  });

  it('XOAUTH2: user and auth pairs', () => {
    expect(decode(oauthInitialResponse('XOAUTH2', credential))).toBe('user=alice@example.com\x01auth=Bearer tok.en-1\x01\x01');
  });

  it('prefers OAUTHBEARER, falls back to XOAUTH2, else none', () => {
    expect(pickOAuthMechanism(['PLAIN', 'XOAUTH2', 'OAUTHBEARER'])).toBe('OAUTHBEARER');
    expect(pickOAuthMechanism(['PLAIN', 'XOAUTH2'])).toBe('XOAUTH2');
    expect(pickOAuthMechanism(['PLAIN', 'LOGIN'])).toBeNull();
  });

  it('ends a failed exchange with a single %x01', () => {
    expect(decode(ABORT_RESPONSE)).toBe('\x01');
  });
});
