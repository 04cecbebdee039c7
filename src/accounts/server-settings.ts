/**
 * Where a user's apps connect, from the config: what is shown next to a new app-specific password
 * (`postern password new` and the account page's Generate), so that both say the same thing.
 */
import type { ResolvedConfig } from '../config/load.js';
import type { Protocol } from '../store/types.js';

export interface ServerHint { service: string; address: string }

/** Where clients connect, from the config: what the user pastes next to the password. */
export function servers(config: ResolvedConfig, scopes: readonly Protocol[]): ServerHint[] {
  const host = config.hostnames[0] ?? 'localhost';
  const hints: ServerHint[] = [];
  const mail = (name: string, section: ResolvedConfig['imap'] | ResolvedConfig['pop3'] | ResolvedConfig['smtp']) => {
    if (section?.implicitTls) hints.push({ service: name, address: `${host}:${section.implicitTls.port} (SSL/TLS)` });
    if (section?.starttls) hints.push({ service: name, address: `${host}:${section.starttls.port} (STARTTLS)` });
  };
  if (scopes.includes('imap')) mail('IMAP', config.imap);
  if (scopes.includes('pop3')) mail('POP3', config.pop3);
  if (scopes.includes('smtp')) mail('SMTP', config.smtp);
  if (config.dav && (scopes.includes('caldav') || scopes.includes('carddav'))) {
    const origin = config.dav.publicOrigin ?? `https://${host}:${config.dav.listener.port}`;
    const names = scopes.filter((s) => s === 'caldav' || s === 'carddav').map((s) => (s === 'caldav' ? 'CalDAV' : 'CardDAV')).join('/');
    hints.push({ service: names, address: `${origin.replace(/\/$/, '')}/` });
  }
  return hints;
}
