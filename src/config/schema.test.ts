/**
 * Config validation that does not need a file or a server. Pinned here:
 *  - `auth.trustedNetworks` is validated by the schema (every command, not only `serve`): each
 *    malformed entry is reported with its key path and the message the throttle used to give;
 *  - the connection caps are one fragment shared by imap, smtp and dav `limits`: the same keys,
 *    bounds and defaults in all three, and unknown keys beside them still rejected.
 */
import { describe, expect, it } from 'vitest';
import { isPosternError } from '../errors.js';
import { resolveConfig } from './load.js';
import { parseNetwork } from './networks.js';
import { configSchema } from './schema.js';

function configError(raw: unknown): string {
  try {
    resolveConfig(raw, '/etc/postern.yaml', {});
  } catch (err) {
    expect(isPosternError(err, 'CONFIG_INVALID')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('the config was accepted');
}

describe('auth.trustedNetworks', () => {
  it.each(['10.0.0.0/33', 'example.org', '10.0.0.0/8/1', '::1/129', '10.0.0.0/x', '', '10.0.0.0/', '300.1.1.1'])(
    'refuses %j with its path', (bad) => {
      expect(configError({ auth: { trustedNetworks: ['127.0.0.1', bad] } })).toBe(
        `/etc/postern.yaml is invalid:\n  auth.trustedNetworks.1: "${bad}" is not an IP address or CIDR (e.g. 192.0.2.0/24, 2001:db8::/32)`,
      );
    });

  it('reports every bad entry, each with its own index', () => {
    const message = configError({ auth: { trustedNetworks: ['nope', '10.0.0.0/8', 'fe80::/200'] } });
    expect(message).toMatch(/auth\.trustedNetworks\.0: "nope"/);
    expect(message).toMatch(/auth\.trustedNetworks\.2: "fe80::\/200"/);
    expect(message).not.toMatch(/trustedNetworks\.1/);
  });

  it('accepts CIDRs and single addresses of both families', () => {
    const entries = ['10.0.0.0/8', ' 192.0.2.1 ', '2001:db8::/32', '::1', '0.0.0.0/0', '::/0'];
    expect(resolveConfig({ auth: { trustedNetworks: entries } }, null, {}).auth.trustedNetworks).toEqual(entries);
    expect(parseNetwork(' 192.0.2.1 ')).toEqual({ address: '192.0.2.1', prefix: 32, family: 'ipv4' });
    expect(parseNetwork('2001:db8::/32')).toEqual({ address: '2001:db8::', prefix: 32, family: 'ipv6' });
    expect(parseNetwork('::1')).toEqual({ address: '::1', prefix: 128, family: 'ipv6' });
  });
});

describe('connection caps', () => {
  const upstream = { host: 'upstream.example.org', port: 993 };
  const sections = {
    imap: { upstream },
    smtp: { upstream },
    dav: { listener: { port: 8443 } },
  };

  it('default to 2000 in total and 200 per address for every protocol', () => {
    const config = resolveConfig(sections, null, {});
    for (const limits of [config.imap!.limits, config.smtp!.limits, config.dav!.limits]) {
      expect(limits).toMatchObject({ maxConnections: 2000, maxConnectionsPerAddress: 200 });
    }
  });

  it.each(['imap', 'smtp', 'dav'] as const)('%s.limits validates the caps and still rejects unknown keys', (protocol) => {
    const withLimits = (limits: Record<string, unknown>) => ({ [protocol]: { ...sections[protocol], limits } });
    expect(configError(withLimits({ maxConnections: 0 }))).toMatch(new RegExp(`${protocol}\\.limits\\.maxConnections: Too small`));
    expect(configError(withLimits({ maxConnectionsPerAddress: 1.5 }))).toMatch(new RegExp(`${protocol}\\.limits\\.maxConnectionsPerAddress: `));
    expect(configError(withLimits({ maxConnection: 10 }))).toMatch(new RegExp(`${protocol}\\.limits: Unrecognized key: "maxConnection"`));
    const config = resolveConfig(withLimits({ maxConnections: 7, maxConnectionsPerAddress: 3 }), null, {});
    expect(config[protocol]!.limits).toMatchObject({ maxConnections: 7, maxConnectionsPerAddress: 3 });
  });
});

describe('portal.publicUrl', () => {
  const parse = (publicUrl: string) => configSchema.safeParse({ portal: { listener: { port: 8444 }, publicUrl } });
  const message = (r: ReturnType<typeof parse>) => (r.success ? null : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));

  it('takes the root of an https origin, in its normal form', () => {
    const r = parse('https://Account.Example.org:8444');
    expect(r.success && r.data.portal?.publicUrl).toBe('https://account.example.org:8444/');
  });

  it('refuses http, a path, a query or a fragment, each with the reason', () => {
    expect(message(parse('http://account.example.org/'))).toMatch(/^portal\.publicUrl: must be an https:\/\/ address/);
    for (const u of ['https://example.org/account/', 'https://example.org/?a=1', 'https://example.org/#x']) {
      expect(message(parse(u))).toMatch(/^portal\.publicUrl: must be the root of its origin/);
    }
  });
});

describe('oauth2 providers', () => {
  const parse = (providers: Record<string, unknown>) => configSchema.safeParse({ oauth2: { providers } });
  const messages = (r: ReturnType<typeof parse>) => (r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));

  it('accepts the presets with a client id, and a generic provider with an issuer and scopes', () => {
    const r = parse({ ms: { preset: 'microsoft', clientId: 'x', tenant: 'contoso.onmicrosoft.com' }, g: { preset: 'google', clientId: 'y', clientSecret: 's' }, corp: { issuer: 'https://id.example.com', clientId: 'z', scopes: ['mail'] } });
    expect(messages(r)).toEqual([]);
    expect(r.success && r.data.oauth2?.refreshMarginMs).toBe(300_000);
  });

  it('refuses a generic provider without issuer or endpoints or scopes, a tenant outside microsoft, two secrets, unknown keys', () => {
    expect(messages(parse({ corp: { clientId: 'z' } }))).toEqual([
      'oauth2.providers.corp.issuer: preset generic needs issuer (discovery) or tokenEndpoint',
      'oauth2.providers.corp.scopes: preset generic needs scopes',
    ]);
    expect(messages(parse({ g: { preset: 'google', clientId: 'y', tenant: 'x' } }))).toEqual(['oauth2.providers.g.tenant: tenant is for preset microsoft only']);
    expect(messages(parse({ g: { preset: 'google', clientId: 'y', clientSecret: 'a', clientSecretFile: '/f' } }))).toEqual(['oauth2.providers.g.clientSecretFile: set clientSecret or clientSecretFile, not both']);
    expect(parse({ g: { preset: 'google', clientId: 'y', scope: 'x' } }).success).toBe(false);
    expect(parse({ 'Bad Name': { preset: 'google', clientId: 'y' } }).success).toBe(false);
  });
});
