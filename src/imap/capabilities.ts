/**
 * Postern's own pre-authentication capabilities: exactly what this front end implements, never
 * more (a client that sees IDLE or COMPRESS before login would use them on postern). After login
 * the client gets the upstream's capabilities instead (in the tagged OK of its LOGIN).
 */

export interface CapabilityContext {
  /** The connection is protected by TLS (implicit, or after STARTTLS). */
  secure: boolean;
  /** STARTTLS can still be used on this connection. */
  starttlsOffered: boolean;
}

export function preAuthCapabilities(ctx: CapabilityContext): string {
  const caps = ['IMAP4rev1', 'LITERAL+', 'SASL-IR', 'ID'];
  if (ctx.starttlsOffered) caps.push('STARTTLS');
  // RFC 9051 §6.2.3 / RFC 8314: no passwords in clear, so no AUTH= either before TLS.
  if (ctx.secure) caps.push('AUTH=PLAIN', 'AUTH=LOGIN');
  else caps.push('LOGINDISABLED');
  return caps.join(' ');
}

/** Upstream post-login capabilities as sent to the client, with the SASL/STARTTLS leftovers that make no sense after login removed. */
export function postLoginCapabilities(upstream: readonly string[]): string {
  return upstream.filter((c) => !/^(AUTH=|STARTTLS$|LOGINDISABLED$|SASL-IR$)/i.test(c)).join(' ');
}
