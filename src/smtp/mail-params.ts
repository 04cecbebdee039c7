/**
 * The upstream MAIL FROM command for a client's MAIL FROM: the address, plus the parameters postern
 * passes on when the upstream announced the extension — SIZE (RFC 1870), BODY (8BITMIME, RFC 6152),
 * SMTPUTF8 (RFC 6531). Anything else the client sent is not forwarded. A message that needs an
 * extension the upstream lacks is refused here rather than silently downgraded.
 */
import type { SMTPServerAddress } from 'smtp-server';
import type { SmtpUpstream } from '../upstream/smtp/connection.js';
import { parameterUnsupported } from './replies.js';

type Args = Record<string, string | true | undefined>;

export function mailFromCommand(address: SMTPServerAddress, upstream: Pick<SmtpUpstream, 'supports'>): string {
  const args = (address.args ?? {}) as Args;
  const params: string[] = [];
  if (typeof args.SIZE === 'string' && upstream.supports('SIZE')) params.push(`SIZE=${args.SIZE}`);
  if (typeof args.BODY === 'string') {
    const body = args.BODY.toUpperCase();
    if (upstream.supports('8BITMIME')) params.push(`BODY=${body}`);
    else if (body === '8BITMIME') throw parameterUnsupported('BODY=8BITMIME');
  }
  if (args.SMTPUTF8 === true) {
    if (!upstream.supports('SMTPUTF8')) throw parameterUnsupported('SMTPUTF8');
    params.push('SMTPUTF8');
  }
  return [`MAIL FROM:<${address.address}>`, ...params].join(' ');
}
