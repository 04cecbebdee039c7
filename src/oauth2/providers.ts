/**
 * Provider presets: what an admin would otherwise have to look up and get exactly right (endpoints,
 * scopes, the flow the provider allows for mail scopes, the parameters that make it hand out a
 * refresh token). Pure data and one resolve function; nothing here talks to the network.
 *
 * - Microsoft (Entra ID / Outlook.com): explicit v2.0 endpoints rather than discovery, because the
 *   `common`/`organizations` metadata names a templated issuer (`{tenantid}`) that no RFC 8414
 *   client may accept. Device flow (RFC 8628). `offline_access` is what yields a refresh token.
 * - Google: no device flow for mail scopes (Google's device flow allows a short list of scopes,
 *   https://mail.google.com/ is not on it), so code + PKCE; `access_type=offline` and
 *   `prompt=consent` make Google return a refresh token on every authorisation, not just the first.
 *   The CalDAV/CardDAV scopes are asked for only when DAV is configured.
 */
import type { OAuth2ProviderConfig } from '../config/schema.js';

export type OAuth2Flow = 'device' | 'pkce';

export interface OAuth2Provider {
  name: string;
  preset: OAuth2ProviderConfig['preset'];
  /** Discovered at first use (RFC 8414 / OpenID Connect Discovery) when set and no token endpoint is given. */
  issuer: string | null;
  authorizationEndpoint: string | null;
  tokenEndpoint: string | null;
  deviceAuthorizationEndpoint: string | null;
  clientId: string;
  clientSecret: string | null;
  scopes: string[];
  /** null: device when the server offers a device endpoint, else PKCE (decided after discovery). */
  flow: OAuth2Flow | null;
  /** Extra authorization-request parameters (Google's offline access). */
  authorizationParams: Record<string, string>;
  allowInsecureHttp: boolean;
}

export const MICROSOFT_SCOPES = ['https://outlook.office.com/IMAP.AccessAsUser.All', 'https://outlook.office.com/SMTP.Send', 'offline_access'] as const;
export const GOOGLE_MAIL_SCOPES = ['https://mail.google.com/'] as const;
export const GOOGLE_DAV_SCOPES = ['https://www.googleapis.com/auth/calendar', 'https://www.googleapis.com/auth/carddav'] as const;

export interface ResolveOptions {
  /** DAV is configured: Google's preset adds the CalDAV/CardDAV scopes. */
  dav: boolean;
}

export function resolveProvider(name: string, config: OAuth2ProviderConfig, options: ResolveOptions): OAuth2Provider {
  const common = {
    name, preset: config.preset, clientId: config.clientId, clientSecret: config.clientSecret ?? null,
    allowInsecureHttp: config.allowInsecureHttp,
  };
  switch (config.preset) {
    case 'microsoft': {
      const base = `https://login.microsoftonline.com/${config.tenant ?? 'organizations'}/oauth2/v2.0`;
      return {
        ...common, issuer: null,
        authorizationEndpoint: config.authorizationEndpoint ?? `${base}/authorize`,
        tokenEndpoint: config.tokenEndpoint ?? `${base}/token`,
        deviceAuthorizationEndpoint: config.deviceAuthorizationEndpoint ?? `${base}/devicecode`,
        scopes: config.scopes ?? [...MICROSOFT_SCOPES], flow: config.flow ?? 'device', authorizationParams: {},
      };
    }
    case 'google':
      return {
        ...common, issuer: null,
        authorizationEndpoint: config.authorizationEndpoint ?? 'https://accounts.google.com/o/oauth2/v2/auth',
        tokenEndpoint: config.tokenEndpoint ?? 'https://oauth2.googleapis.com/token',
        deviceAuthorizationEndpoint: null,
        scopes: config.scopes ?? [...GOOGLE_MAIL_SCOPES, ...(options.dav ? GOOGLE_DAV_SCOPES : [])],
        flow: 'pkce', authorizationParams: { access_type: 'offline', prompt: 'consent' },
      };
    case 'generic':
      return {
        ...common, issuer: config.issuer ?? null,
        authorizationEndpoint: config.authorizationEndpoint ?? null,
        tokenEndpoint: config.tokenEndpoint ?? null,
        deviceAuthorizationEndpoint: config.deviceAuthorizationEndpoint ?? null,
        scopes: config.scopes ?? [], flow: config.flow ?? null,
        // OpenID Connect Core §11: offline_access is granted only with prompt=consent.
        authorizationParams: config.scopes?.includes('offline_access') ? { prompt: 'consent' } : {},
      };
  }
}
