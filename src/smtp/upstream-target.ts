/** Turns the `smtp.upstream` config section into connection settings for the upstream client. */
import type { MailUpstreamConfig } from '../config/schema.js';
import { upstreamTlsOptions } from '../upstream/tls-options.js';
import type { SmtpUpstreamTarget } from '../upstream/smtp/connection.js';

/** `serverName`: postern's configured name (hostnames[0]); the machine's own hostname is never sent. */
export function smtpUpstreamTarget(upstream: MailUpstreamConfig, serverName: string): SmtpUpstreamTarget {
  return {
    host: upstream.host,
    port: upstream.port,
    security: upstream.security,
    tls: upstreamTlsOptions(upstream),
    connectTimeoutMs: upstream.connectTimeoutMs,
    greetingTimeoutMs: upstream.greetingTimeoutMs,
    clientName: ehloName(serverName),
    trusted: upstream.trusted,
  };
}

/** EHLO wants a domain or address literal (RFC 5321 §4.1.1.1); a bare host name is what most MTAs send. */
function ehloName(name: string): string {
  return /^[A-Za-z0-9.-]+$/.test(name) ? name : 'postern.invalid';
}
