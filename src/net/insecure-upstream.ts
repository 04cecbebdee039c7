/**
 * The start-up warnings for an upstream that real credentials reach insecurely: one function, so
 * that every protocol says it with the same events (`upstream.plaintext`, `upstream.unverified`)
 * and fields, and an alert written for one protocol fires for all of them.
 */
import type { MailUpstreamConfig } from '../config/schema.js';
import type { Logger } from '../log.js';

export interface UpstreamSecurity {
  protocol: string;
  /** host:port or origin, whatever names the upstream in config. */
  upstream: string;
  /** No TLS at all: the account's real password crosses the network in clear. */
  plaintext: boolean;
  /** TLS without certificate verification: anyone on the path can read it (MITM). */
  unverified: boolean;
}

export function warnIfInsecureUpstream(log: Logger, upstream: UpstreamSecurity): void {
  const { protocol, plaintext, unverified } = upstream;
  const fields = { protocol, upstream: upstream.upstream };
  if (plaintext) log.warn({ event: 'upstream.plaintext', ...fields }, `${protocol} upstream ${upstream.upstream} is plaintext: real credentials cross the network unencrypted unless it is local`);
  // Verification is moot without TLS: one warning says it all.
  else if (unverified) log.warn({ event: 'upstream.unverified', ...fields }, `${protocol} upstream ${upstream.upstream} certificate is NOT verified (rejectUnauthorized: false)`);
}

/** The mail upstreams' config (IMAP, SMTP, and any later mail protocol) as an UpstreamSecurity. */
export function mailUpstreamSecurity(protocol: string, config: MailUpstreamConfig): UpstreamSecurity {
  return { protocol, upstream: `${config.host}:${config.port}`, plaintext: config.security === 'plain', unverified: !config.rejectUnauthorized };
}
