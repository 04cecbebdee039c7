// The wire mapping: every refusal that must not leak a reason reads exactly alike; the primary
// password sentence appears only with the hint; faults say UNAVAILABLE and never internal text.
import { describe, expect, it } from 'vitest';
import { PRIMARY_PASSWORD_REFUSED_TEXT } from '../auth/types.js';
import { PosternError } from '../errors.js';
import { postLoginCapabilities, preAuthCapabilities } from './capabilities.js';
import { refusalReply, revokedBye, signInFailureReply, upstreamFaultReply } from './replies.js';

describe('replies', () => {
  it('answers failed, throttled and hint-less primary refusals identically', () => {
    const expected = 'a NO [AUTHENTICATIONFAILED] Authentication failed.';
    expect(refusalReply('a', { kind: 'failed' })).toBe(expected);
    expect(refusalReply('a', { kind: 'throttled' })).toBe(expected);
    expect(refusalReply('a', { kind: 'primary-refused', hint: false })).toBe(expected);
    expect(refusalReply('a', { kind: 'primary-refused', hint: true })).toBe(`a NO [AUTHENTICATIONFAILED] ${PRIMARY_PASSWORD_REFUSED_TEXT}`);
    expect(refusalReply('a', { kind: 'credential-unusable' })).toMatch(/^a NO \[UNAVAILABLE\] /);
    expect(refusalReply('a', { kind: 'store-unavailable' })).toMatch(/^a NO \[UNAVAILABLE\] /);
  });

  it('maps upstream faults to UNAVAILABLE without internal detail', () => {
    const internal = new PosternError('UPSTREAM_TIMEOUT', 'upstream 10.0.0.7:993 did not answer within 10000 ms');
    const line = upstreamFaultReply('t', internal);
    expect(line).toMatch(/^t NO \[UNAVAILABLE\] /);
    expect(line).not.toContain('10.0.0.7');
    expect(upstreamFaultReply('t', new PosternError('UPSTREAM_AUTH_REJECTED'))).toMatch(/^t NO \[UNAVAILABLE\] The mail server refused the credentials/);
  });

  it('names each revocation reason in the BYE', () => {
    const reasons = ['admin', 'revoke-all', 'primary-password-change', 'upstream-mode-change', 'expiry', 'account-removed'] as const;
    for (const reason of reasons) expect(revokedBye(reason)).toMatch(/^\* BYE .+signing out\.$/);
    expect(new Set(reasons.map((r) => revokedBye(r))).size).toBe(reasons.length);
  });
});

describe('capabilities', () => {
  it('offers passwords only over TLS, and STARTTLS only in clear', () => {
    expect(preAuthCapabilities({ secure: false, starttlsOffered: true })).toBe('IMAP4rev1 LITERAL+ SASL-IR ID STARTTLS LOGINDISABLED');
    expect(preAuthCapabilities({ secure: true, starttlsOffered: false })).toBe('IMAP4rev1 LITERAL+ SASL-IR ID AUTH=PLAIN AUTH=LOGIN');
  });

  it('mirrors the provider\'s pre-login list, with postern\'s own AUTH=, STARTTLS, LOGINDISABLED, SASL-IR and no COMPRESS', () => {
    const dovecot = ['IMAP4rev1', 'SASL-IR', 'LOGIN-REFERRALS', 'ID', 'ENABLE', 'IDLE', 'LITERAL+', 'STARTTLS', 'AUTH=PLAIN', 'AUTH=XOAUTH2', 'COMPRESS=DEFLATE'];
    expect(preAuthCapabilities({ secure: true, starttlsOffered: false }, dovecot)).toBe('IMAP4rev1 LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ SASL-IR AUTH=PLAIN AUTH=LOGIN');
    expect(preAuthCapabilities({ secure: false, starttlsOffered: true }, ['IMAP4rev1', 'LOGINDISABLED', 'IDLE'])).toBe('IMAP4rev1 IDLE SASL-IR STARTTLS LOGINDISABLED');
    // A provider without LITERAL+ or ID: postern does not offer them either.
    expect(preAuthCapabilities({ secure: true, starttlsOffered: false }, ['IMAP4rev1'])).toBe('IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=LOGIN');
  });

  it('drops pre-login leftovers from the upstream post-login list', () => {
    expect(postLoginCapabilities(['IMAP4rev1', 'AUTH=PLAIN', 'STARTTLS', 'IDLE', 'SASL-IR', 'COMPRESS=DEFLATE'])).toBe('IMAP4rev1 IDLE COMPRESS=DEFLATE');
  });

  it('passes the provider\'s refusal on with its code, a fixed sentence when its text was unsafe, UNAVAILABLE for PRIVACYREQUIRED', () => {
    const accepted = {} as never;
    const refused = (code: string, text: string | null) => signInFailureReply('r', { kind: 'upstream-refused', accepted, refusal: { code, text, temporary: false } });
    expect(refused('LIMIT', 'Maximum number of connections from user+IP exceeded')).toBe('r NO [LIMIT] Maximum number of connections from user+IP exceeded');
    expect(refused('EXPIRED', null)).toBe('r NO [EXPIRED] The mail server says the account\'s password has expired; the administrator must renew it.');
    // The client's own connection is encrypted: it is postern's leg to the provider that lacks TLS.
    expect(refused('PRIVACYREQUIRED', 'Plaintext authentication disallowed')).toBe('r NO [UNAVAILABLE] The mail server cannot be reached right now; please try again later.');
  });
});
