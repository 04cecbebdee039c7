/**
 * Builds the OAuth2 parts from config: one client per configured provider and the token manager
 * the authentication service asks for access tokens. Nothing is contacted here (discovery runs at
 * first use). Also the entry point for whoever authorises an account (the CLI today, the account
 * page later): see ./authorize.ts.
 */
import type { ResolvedConfig } from '../config/load.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/index.js';
import { OAuth2Client } from './client.js';
import { resolveProvider } from './providers.js';
import { TokenManager } from './token-manager.js';

export { OAuth2Client } from './client.js';
export { TokenManager } from './token-manager.js';
export type { OAuth2Provider } from './providers.js';

/** Clients by provider name; empty without an `oauth2` section. */
export function oauth2Clients(config: ResolvedConfig): Map<string, OAuth2Client> {
  const clients = new Map<string, OAuth2Client>();
  if (!config.oauth2) return clients;
  for (const [name, settings] of Object.entries(config.oauth2.providers)) {
    clients.set(name, new OAuth2Client(resolveProvider(name, settings, { dav: config.dav !== undefined }), { timeoutMs: config.oauth2.requestTimeoutMs }));
  }
  return clients;
}

export function createTokenManager(config: ResolvedConfig, store: Store, writer: Store, log: Logger): TokenManager | null {
  if (!config.oauth2) return null;
  const clients = oauth2Clients(config);
  const oauthLog = log.child({ component: 'oauth2' });
  for (const client of clients.values()) {
    if (client.provider.allowInsecureHttp) {
      oauthLog.warn({ event: 'upstream.plaintext', protocol: 'oauth2', provider: client.provider.name }, `OAuth2 provider "${client.provider.name}" may be reached over plain http (allowInsecureHttp): tokens can be read on the wire; lab use only`);
    }
  }
  return new TokenManager({ store, writer, clients, refreshMarginMs: config.oauth2.refreshMarginMs, log: oauthLog });
}
