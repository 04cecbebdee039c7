/** The presets carry the scopes and endpoints the issue names (Microsoft, Google with and without DAV). */
import { expect, it } from 'vitest';
import { resolveProvider } from './providers.js';

const base = { clientId: 'id', allowInsecureHttp: false };

it('microsoft: v2.0 endpoints of the tenant, device flow, IMAP + SMTP + offline_access', () => {
  const p = resolveProvider('ms', { ...base, preset: 'microsoft', tenant: 'contoso.onmicrosoft.com' }, { dav: true });
  expect(p).toMatchObject({
    tokenEndpoint: 'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token',
    deviceAuthorizationEndpoint: 'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode',
    flow: 'device',
    scopes: ['https://outlook.office.com/IMAP.AccessAsUser.All', 'https://outlook.office.com/SMTP.Send', 'offline_access'],
  });
});

it('google: PKCE with offline access; CalDAV/CardDAV scopes only when DAV is configured', () => {
  const mail = resolveProvider('g', { ...base, preset: 'google' }, { dav: false });
  expect(mail).toMatchObject({ flow: 'pkce', scopes: ['https://mail.google.com/'], authorizationParams: { access_type: 'offline', prompt: 'consent' } });
  expect(resolveProvider('g', { ...base, preset: 'google' }, { dav: true }).scopes)
    .toEqual(['https://mail.google.com/', 'https://www.googleapis.com/auth/calendar', 'https://www.googleapis.com/auth/carddav']);
});
