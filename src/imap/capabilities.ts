/**
 * The capabilities a client sees before login (RFC 9051 §6.1.1, and the greeting's CAPABILITY
 * code): the provider's own pre-login list, as the client would have seen it connecting there
 * directly, minus what postern answers itself before login — AUTH=, STARTTLS, LOGINDISABLED,
 * SASL-IR, COMPRESS (RFC 4978: postern's front end does not compress) — for which postern puts in
 * its own. Some clients decide from this list (IDLE, NAMESPACE, ENABLE…) for the whole session,
 * which after login is the provider's; so the list never has a capability the provider lacks.
 * Until the provider's list is known (imap/index.ts learns it from every upstream connection),
 * only postern's own few. After login the client gets the upstream's capabilities instead (in
 * the tagged OK of its LOGIN).
 */

export interface CapabilityContext {
  /** The connection is protected by TLS (implicit, or after STARTTLS). */
  secure: boolean;
  /** STARTTLS can still be used on this connection. */
  starttlsOffered: boolean;
}

/** What postern does itself before login, whatever the provider says about it. */
const HANDLED_BY_POSTERN = /^(AUTH=|STARTTLS$|LOGINDISABLED$|SASL-IR$|COMPRESS=)/i;

/** Before the provider's list is known: what postern's front end implements, nothing more. */
const FALLBACK = ['IMAP4rev1', 'LITERAL+', 'SASL-IR', 'ID'];

export function preAuthCapabilities(ctx: CapabilityContext, upstream: readonly string[] | null = null): string {
  const caps = upstream ? [...upstream.filter((c) => !HANDLED_BY_POSTERN.test(c)), 'SASL-IR'] : [...FALLBACK];
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
