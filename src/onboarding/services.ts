/**
 * What postern publishes about itself to mail and calendar clients: which protocols it serves, on
 * which host and port, with which TLS mode. The one source for everything that tells a client
 * where to connect — Thunderbird autoconfig, Microsoft Autodiscover, the Apple profile, the DNS
 * records an admin publishes — so they can never disagree with each other or with the listeners.
 *
 * The host is `onboarding.host`, else the first of `hostnames`: the name in postern's certificate
 * that clients should use. Nothing here depends on an account: the same answer for every address.
 */
import type { ResolvedConfig } from '../config/load.js';
import type { BoundAddress } from '../net/service.js';

export type PublishedProtocol = 'imap' | 'pop3' | 'smtp' | 'caldav' | 'carddav';

export interface PublishedService {
  protocol: PublishedProtocol;
  host: string;
  port: number;
  /** `tls`: TLS from the first byte (RFC 8314, preferred); `starttls`: upgraded in the session. */
  security: 'tls' | 'starttls';
  /** DAV only: the URL clients start discovery from (RFC 6764 context path `/`). */
  url?: string;
}

type MailSection = ResolvedConfig['imap'] | ResolvedConfig['pop3'] | ResolvedConfig['smtp'];

/**
 * Every service, implicit TLS before STARTTLS for each protocol (RFC 8314 §3: prefer implicit TLS).
 * `bound`: the addresses the running listeners took (a configured port 0 is the kernel's pick).
 */
export function publishedServices(config: ResolvedConfig, bound: readonly BoundAddress[] = []): PublishedService[] {
  const host = publishedHost(config);
  const services: PublishedService[] = [];
  const portOf = (listener: string, configured: number) => bound.find((b) => b.name === listener)?.port ?? configured;
  const mail = (protocol: PublishedProtocol, section: MailSection) => {
    if (section?.implicitTls) services.push({ protocol, host, port: portOf(`${protocol}.implicitTls`, section.implicitTls.port), security: 'tls' });
    if (section?.starttls) services.push({ protocol, host, port: portOf(`${protocol}.starttls`, section.starttls.port), security: 'starttls' });
  };
  mail('imap', config.imap);
  mail('pop3', config.pop3);
  mail('smtp', config.smtp);
  const dav = davOrigin(config, host, portOf('dav', config.dav?.listener.port ?? 0));
  if (dav) {
    for (const protocol of ['caldav', 'carddav'] as const) {
      services.push({ protocol, host: dav.hostname, port: dav.port, security: 'tls', url: `${dav.origin}/` });
    }
  }
  return services;
}

/** The first service of a protocol (the preferred one), if postern serves it. */
export function preferred(services: readonly PublishedService[], protocol: PublishedProtocol): PublishedService | undefined {
  return services.find((s) => s.protocol === protocol);
}

export function publishedHost(config: ResolvedConfig): string {
  return config.onboarding?.host ?? config.hostnames[0] ?? 'localhost';
}

/** The mail domains autoconfig, Autodiscover and the DNS records are for (lower case). */
export function publishedDomains(config: ResolvedConfig): string[] {
  return (config.onboarding?.domains ?? []).map((d) => d.toLowerCase());
}

function davOrigin(config: ResolvedConfig, host: string, listenerPort: number): { origin: string; hostname: string; port: number } | null {
  if (!config.dav) return null;
  const url = new URL(config.dav.publicOrigin ?? `https://${host.includes(':') ? `[${host}]` : host}:${listenerPort}`);
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  return { origin: url.origin, hostname: url.hostname, port };
}
