// MAIL FROM parameters passed upstream. Invariants pinned here:
// - SIZE, BODY and SMTPUTF8 are passed only when the upstream announced the extension;
// - a message needing 8BITMIME or SMTPUTF8 the upstream lacks is refused, not silently downgraded;
// - nothing else the client sent is forwarded.
import { describe, expect, it } from 'vitest';
import type { SMTPServerAddress } from 'smtp-server';
import { mailFromCommand } from './mail-params.js';
import { SmtpReplyError } from './replies.js';

const upstream = (...extensions: string[]) => ({ supports: (k: string) => extensions.includes(k) });
const address = (args: Record<string, string | true>): SMTPServerAddress => ({ address: 'a@example.org', args });

describe('mailFromCommand', () => {
  it('passes SIZE, BODY and SMTPUTF8 to an upstream that has them', () => {
    expect(mailFromCommand(address({ SIZE: '1234', BODY: '8bitmime', SMTPUTF8: true }), upstream('SIZE', '8BITMIME', 'SMTPUTF8')))
      .toBe('MAIL FROM:<a@example.org> SIZE=1234 BODY=8BITMIME SMTPUTF8');
  });

  it('drops SIZE and BODY=7BIT for an upstream without them, and anything unknown', () => {
    expect(mailFromCommand(address({ SIZE: '1234', BODY: '7BIT', RET: 'FULL', XFOO: true }), upstream())).toBe('MAIL FROM:<a@example.org>');
  });

  it('refuses 8BITMIME and SMTPUTF8 the upstream lacks', () => {
    expect(() => mailFromCommand(address({ BODY: '8BITMIME' }), upstream('SIZE'))).toThrow(SmtpReplyError);
    expect(() => mailFromCommand(address({ SMTPUTF8: true }), upstream('8BITMIME'))).toThrow(/555 5\.5\.4|SMTPUTF8 is not supported/);
  });

  it('keeps the null sender', () => {
    expect(mailFromCommand({ address: '', args: {} }, upstream())).toBe('MAIL FROM:<>');
  });
});
