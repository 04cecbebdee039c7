/**
 * Where a user's apps connect, from the config: what is shown next to a new app-specific password
 * (`postern password new` and the account page's Generate), so that both say the same thing.
 */
import type { ResolvedConfig } from '../config/load.js';
import type { BoundAddress } from '../net/service.js';
import type { Protocol } from '../store/types.js';

export interface ServerHint { service: string; address: string }

/**
 * Where clients connect, from the config: what the user pastes next to the password. `bound`: the
 * addresses the running listeners took (a configured port 0 is the kernel's pick).
 */
export function servers(config: ResolvedConfig, scopes: readonly Protocol[], bound: readonly BoundAddress[] = []): ServerHint[] {
  const host = config.hostnames[0] ?? 'localhost';
  const hints: ServerHint[] = [];
  const portOf = (listener: string, configured: number) => bound.find((b) => b.name === listener)?.port ?? configured;
  const mail = (name: string, section: ResolvedConfig['imap'] | ResolvedConfig['pop3'] | ResolvedConfig['smtp']) => {
    if (section?.implicitTls) hints.push({ service: name, address: `${host}:${portOf(`${name.toLowerCase()}.implicitTls`, section.implicitTls.port)} (SSL/TLS)` });
    if (section?.starttls) hints.push({ service: name, address: `${host}:${portOf(`${name.toLowerCase()}.starttls`, section.starttls.port)} (STARTTLS)` });
  };
  if (scopes.includes('imap')) mail('IMAP', config.imap);
  if (scopes.includes('pop3')) mail('POP3', config.pop3);
  if (scopes.includes('smtp')) mail('SMTP', config.smtp);
  if (config.dav && (scopes.includes('caldav') || scopes.includes('carddav'))) {
    const origin = config.dav.publicOrigin ?? `https://${host}:${portOf('dav', config.dav.listener.port)}`;
    const names = scopes.filter((s) => s === 'caldav' || s === 'carddav').map((s) => (s === 'caldav' ? 'CalDAV' : 'CardDAV')).join('/');
    hints.push({ service: names, address: `${origin.replace(/\/$/, '')}/` });
  }
  return hints;
}

/** The account page's address: `portal.publicUrl`, else https://<first hostname>:<port>/; null without a page. */
export function portalUrl(config: ResolvedConfig): string | null {
  if (!config.portal?.enabled) return null;
  if (config.portal.publicUrl) return config.portal.publicUrl;
  const host = config.hostnames[0] ?? 'localhost';
  return `https://${host.includes(':') ? `[${host}]` : host}:${config.portal.listener.port}/`;
}
