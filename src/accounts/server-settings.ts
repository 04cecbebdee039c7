/**
 * Where a user's apps connect, from the config: what is shown next to a new app-specific password
 * (`postern password new` and the account page's Generate), so that both say the same thing.
 */
import type { ResolvedConfig } from '../config/load.js';
import type { BoundAddress } from '../net/service.js';
import type { Protocol } from '../store/types.js';
import { publishedServices } from '../onboarding/services.js';

export interface ServerHint { service: string; address: string }

/**
 * Where clients connect, from the config: what the user pastes next to the password. `bound`: the
 * addresses the running listeners took (a configured port 0 is the kernel's pick). The same list
 * autoconfig, Autodiscover, the Apple profile and the DNS records describe (src/onboarding/).
 */
export function servers(config: ResolvedConfig, scopes: readonly Protocol[], bound: readonly BoundAddress[] = []): ServerHint[] {
  const published = publishedServices(config, bound);
  const hints: ServerHint[] = [];
  for (const [protocol, name] of [['imap', 'IMAP'], ['pop3', 'POP3'], ['smtp', 'SMTP']] as const) {
    if (!scopes.includes(protocol)) continue;
    for (const s of published.filter((p) => p.protocol === protocol)) {
      hints.push({ service: name, address: `${s.host}:${s.port} (${s.security === 'tls' ? 'SSL/TLS' : 'STARTTLS'})` });
    }
  }
  const dav = published.find((s) => s.protocol === 'caldav');
  if (dav && (scopes.includes('caldav') || scopes.includes('carddav'))) {
    const names = scopes.filter((s) => s === 'caldav' || s === 'carddav').map((s) => (s === 'caldav' ? 'CalDAV' : 'CardDAV')).join('/');
    hints.push({ service: names, address: dav.url! });
  }
  return hints;
}

/**
 * The account page's address: `portal.publicUrl`, else https://<first hostname>:<port>/; null
 * without a page. `boundPort` is the port the listener got (configured 0: the system chose one).
 * Always from the config, never from a request's Host header, which is the client's to forge.
 */
export function portalUrl(config: ResolvedConfig, boundPort?: number): string | null {
  if (!config.portal?.enabled) return null;
  if (config.portal.publicUrl) return config.portal.publicUrl;
  const host = config.hostnames[0] ?? 'localhost';
  return `https://${host.includes(':') ? `[${host}]` : host}:${boundPort ?? config.portal.listener.port}/`;
}
