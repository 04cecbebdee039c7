/**
 * The upstream MAIL FROM and RCPT TO commands for a client's: the address, plus the parameters of
 * the extensions postern offers, passed on when the upstream announced the extension — SIZE
 * (RFC 1870), BODY (8BITMIME, RFC 6152; BINARYMIME, RFC 3030), SMTPUTF8 (RFC 6531), and DSN's RET, ENVID, NOTIFY, ORCPT
 * (RFC 3461). A message that needs an extension the upstream lacks is refused here rather than
 * silently downgraded, and a parameter postern does not understand is refused with RFC 5321
 * §4.1.1.11's 555 rather than dropped (a client that asked for delivery notifications must not
 * believe it will get them).
 *
 * smtp-server has already checked the values it knows (RET, NOTIFY, ORCPT syntax when DSN is
 * offered) and decoded xtext (RFC 3461 §4), refusing control characters; ENVID and ORCPT are
 * encoded again for the upstream.
 */
import type { SMTPServerAddress } from 'smtp-server';
import type { SmtpUpstream } from '../upstream/smtp/connection.js';
import { parameterInvalid, parameterNotRecognised, parameterUnsupported } from './replies.js';

type Args = Record<string, string | true | undefined>;
type Upstream = Pick<SmtpUpstream, 'supports'>;

export function mailFromCommand(address: SMTPServerAddress, upstream: Upstream): string {
  const args = (address.args || {}) as Args;
  const params: string[] = [];
  for (const [key, value] of Object.entries(args)) {
    const param = mailParam(key, value, upstream);
    if (param) params.push(param);
  }
  return [`MAIL FROM:<${address.address}>`, ...params].join(' ');
}

export function rcptToCommand(address: SMTPServerAddress, upstream: Upstream): string {
  const args = (address.args || {}) as Args;
  const params: string[] = [];
  for (const [key, value] of Object.entries(args)) {
    if (!upstream.supports('DSN') || typeof value !== 'string') throw parameterNotRecognised('RCPT TO', key);
    if (key === 'NOTIFY') params.push(`NOTIFY=${value.toUpperCase()}`);
    else if (key === 'ORCPT') params.push(`ORCPT=${orcpt(value)}`);
    else throw parameterNotRecognised('RCPT TO', key);
  }
  return [`RCPT TO:<${address.address}>`, ...params].join(' ');
}

/** The parameter as sent upstream, null when it is understood but not passed on. */
function mailParam(key: string, value: string | true | undefined, upstream: Upstream): string | null {
  switch (key) {
    case 'SIZE':
      // Postern enforces its own SIZE; an upstream without the extension is not told.
      return typeof value === 'string' && upstream.supports('SIZE') ? `SIZE=${value}` : null;
    case 'BODY': {
      const body = typeof value === 'string' ? value.toUpperCase() : '';
      if (body === 'BINARYMIME') {
        // RFC 3030 §3: only with BDAT, which postern relays as BDAT.
        if (upstream.supports('BINARYMIME') && upstream.supports('CHUNKING')) return 'BODY=BINARYMIME';
        throw parameterUnsupported('BODY=BINARYMIME');
      }
      if (upstream.supports('8BITMIME')) return `BODY=${body}`;
      if (body === '8BITMIME') throw parameterUnsupported('BODY=8BITMIME');
      return null;
    }
    case 'SMTPUTF8':
      if (!upstream.supports('SMTPUTF8')) throw parameterUnsupported('SMTPUTF8');
      return 'SMTPUTF8';
    // RFC 4954 §5: the identity the client claims for the message. Postern's upstream login
    // already names the account; a claim from the client is not passed on.
    case 'AUTH':
      return null;
    case 'RET':
      if (!upstream.supports('DSN') || typeof value !== 'string') break;
      return `RET=${value.toUpperCase()}`;
    case 'ENVID':
      if (!upstream.supports('DSN') || typeof value !== 'string') break;
      return `ENVID=${xtext(value)}`;
  }
  throw parameterNotRecognised('MAIL FROM', key);
}

/** `addr-type ";" xtext` (RFC 3461 §4.2); only the address part is xtext. */
function orcpt(value: string): string {
  const semicolon = value.indexOf(';');
  if (semicolon <= 0) throw parameterInvalid('ORCPT');
  return `${value.slice(0, semicolon)};${xtext(value.slice(semicolon + 1))}`;
}

/** RFC 3461 §4: `!`..`~` except `+` and `=` as they are, every other octet as `+HH`. */
export function xtext(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    out += byte >= 0x21 && byte <= 0x7e && byte !== 0x2b && byte !== 0x3d ? String.fromCharCode(byte) : `+${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
