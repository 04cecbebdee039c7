// MAIL FROM and RCPT TO parameters passed upstream. Invariants pinned here:
// - SIZE, BODY and SMTPUTF8 are passed only when the upstream announced the extension;
// - a message needing 8BITMIME or SMTPUTF8 the upstream lacks is refused, not silently downgraded;
// - DSN's RET, ENVID (MAIL) and NOTIFY, ORCPT (RCPT) are passed to an upstream with DSN, ENVID and
//   ORCPT's address xtext-encoded again (smtp-server decodes them); without DSN upstream they are
//   refused like any parameter postern does not understand: 555 5.5.4, never dropped;
// - AUTH= (RFC 4954 §5) is understood and not passed on.
import { describe, expect, it } from 'vitest';
import type { SMTPServerAddress } from 'smtp-server';
import { mailFromCommand, rcptToCommand, xtext } from './mail-params.js';
import { SmtpReplyError } from './replies.js';

const upstream = (...extensions: string[]) => ({ supports: (k: string) => extensions.includes(k) });
const address = (args: Record<string, string | true>): SMTPServerAddress => ({ address: 'a@example.org', args });

function refusal(work: () => unknown): string {
  try {
    work();
  } catch (err) {
    if (err instanceof SmtpReplyError) return `${err.responseCode} ${err.message}`;
    throw err;
  }
  throw new Error('not refused');
}

describe('mailFromCommand', () => {
  it('passes SIZE, BODY and SMTPUTF8 to an upstream that has them', () => {
    expect(mailFromCommand(address({ SIZE: '1234', BODY: '8bitmime', SMTPUTF8: true }), upstream('SIZE', '8BITMIME', 'SMTPUTF8')))
      .toBe('MAIL FROM:<a@example.org> SIZE=1234 BODY=8BITMIME SMTPUTF8');
  });

  it('drops SIZE and BODY=7BIT for an upstream without them, and AUTH= always', () => {
    expect(mailFromCommand(address({ SIZE: '1234', BODY: '7BIT', AUTH: '<>' }), upstream())).toBe('MAIL FROM:<a@example.org>');
  });

  it('refuses 8BITMIME and SMTPUTF8 the upstream lacks', () => {
    expect(() => mailFromCommand(address({ BODY: '8BITMIME' }), upstream('SIZE'))).toThrow(SmtpReplyError);
    expect(() => mailFromCommand(address({ SMTPUTF8: true }), upstream('8BITMIME'))).toThrow(/555 5\.5\.4|SMTPUTF8 is not supported/);
  });

  it('passes RET and ENVID (as xtext) to an upstream with DSN', () => {
    expect(mailFromCommand(address({ RET: 'hdrs', ENVID: 'id+1=2 é' }), upstream('DSN'))).toBe('MAIL FROM:<a@example.org> RET=HDRS ENVID=id+2B1+3D2+20+C3+A9');
  });

  it('refuses unknown parameters, and DSN ones without DSN upstream, with 555 5.5.4', () => {
    expect(refusal(() => mailFromCommand(address({ XFOO: true }), upstream('DSN')))).toBe('555 5.5.4 MAIL FROM parameter XFOO not recognised');
    expect(refusal(() => mailFromCommand(address({ RET: 'FULL' }), upstream()))).toBe('555 5.5.4 MAIL FROM parameter RET not recognised');
    expect(refusal(() => mailFromCommand(address({ REQUIRETLS: true }), upstream('DSN')))).toMatch(/^555 5\.5\.4 /);
    expect(refusal(() => mailFromCommand(address({ 'x<y>\u00e9': '1' }), upstream()))).toBe('555 5.5.4 MAIL FROM parameter not recognised');
  });

  it('keeps the null sender', () => {
    expect(mailFromCommand({ address: '', args: {} }, upstream())).toBe('MAIL FROM:<>');
    expect(mailFromCommand({ address: '', args: false } as unknown as SMTPServerAddress, upstream())).toBe('MAIL FROM:<>');
  });
});

describe('rcptToCommand', () => {
  it('passes NOTIFY and ORCPT (address part as xtext) to an upstream with DSN', () => {
    expect(rcptToCommand(address({ NOTIFY: 'success,failure', ORCPT: 'rfc822;b+x@example.org' }), upstream('DSN')))
      .toBe('RCPT TO:<a@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@example.org');
  });

  it('refuses unknown parameters, DSN ones without DSN upstream, and an ORCPT without a type', () => {
    expect(refusal(() => rcptToCommand(address({ XFOO: 'bar' }), upstream('DSN')))).toBe('555 5.5.4 RCPT TO parameter XFOO not recognised');
    expect(refusal(() => rcptToCommand(address({ NOTIFY: 'NEVER' }), upstream()))).toBe('555 5.5.4 RCPT TO parameter NOTIFY not recognised');
    expect(refusal(() => rcptToCommand(address({ ORCPT: 'b@example.org' }), upstream('DSN')))).toMatch(/^501 5\.5\.4 /);
  });

  it('sends a bare RCPT TO when there are no parameters', () => {
    expect(rcptToCommand(address({}), upstream())).toBe('RCPT TO:<a@example.org>');
  });
});

describe('xtext', () => {
  it('encodes +, =, controls, space and non-ASCII octets, nothing else', () => {
    expect(xtext('!~azAZ09')).toBe('!~azAZ09');
    expect(xtext('+= \u0001')).toBe('+2B+3D+20+01');
  });
});
