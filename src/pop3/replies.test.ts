// The one mapping from sign-in outcomes to POP3's wire: refusals all read alike ([AUTH] plus one
// sentence; the primary password gets IMAP's sentence only with the hint), faults say SYS/TEMP or
// SYS/PERM (RFC 3206) and never carry internal text; CAPA never lists USER or SASL in clear.
import { describe, expect, it } from 'vitest';
import type { AcceptedAuth } from '../auth/types.js';
import { PRIMARY_PASSWORD_REFUSED_TEXT } from '../auth/types.js';
import { PosternError } from '../errors.js';
import { capabilities, signInFailureReply } from './replies.js';

const accepted = { kind: 'accepted' } as AcceptedAuth;

describe('sign-in failures on the wire', () => {
  it('refusals are indistinguishable; the primary-password sentence only with the hint', () => {
    const failed = signInFailureReply({ kind: 'refused', outcome: { kind: 'failed' } });
    expect(failed).toBe('-ERR [AUTH] Authentication failed.');
    expect(signInFailureReply({ kind: 'refused', outcome: { kind: 'throttled' } })).toBe(failed);
    expect(signInFailureReply({ kind: 'refused', outcome: { kind: 'primary-refused', hint: false } })).toBe(failed);
    expect(signInFailureReply({ kind: 'refused', outcome: { kind: 'primary-refused', hint: true } })).toBe(`-ERR [AUTH] ${PRIMARY_PASSWORD_REFUSED_TEXT}`);
  });

  it('faults are SYS/TEMP or SYS/PERM and never carry the error text', () => {
    const fault = signInFailureReply({ kind: 'upstream-fault', accepted, code: 'UPSTREAM_TLS_FAILED', error: new PosternError('UPSTREAM_TLS_FAILED', 'internal detail 10.0.0.1') });
    expect(fault).toMatch(/^-ERR \[SYS\/TEMP\] /);
    expect(fault).not.toContain('internal detail');
    expect(signInFailureReply({ kind: 'cancelled', accepted })).toBe(fault);
    expect(signInFailureReply({ kind: 'refused', outcome: { kind: 'credential-unusable' } })).toMatch(/^-ERR \[SYS\/TEMP\] /);
    expect(signInFailureReply({ kind: 'refused', outcome: { kind: 'store-unavailable' } })).toMatch(/^-ERR \[SYS\/TEMP\] /);
    expect(signInFailureReply({ kind: 'unsupported', accepted })).toMatch(/^-ERR \[SYS\/TEMP\] /);
    expect(signInFailureReply({ kind: 'upstream-rejected', accepted })).toMatch(/^-ERR \[SYS\/PERM\] /);
  });
});

describe('CAPA', () => {
  it('in clear: STLS, never USER or SASL (RFC 2595 §4); under TLS: USER and SASL, no STLS', () => {
    expect(capabilities({ secure: false, starttlsOffered: true })).toEqual(['TOP', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE', 'STLS']);
    expect(capabilities({ secure: true, starttlsOffered: false })).toEqual(['TOP', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE', 'USER', 'SASL PLAIN LOGIN']);
  });
});
