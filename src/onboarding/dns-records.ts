/**
 * The DNS records an admin publishes so that clients find postern from the mail domain alone:
 * RFC 6186 SRV for submission, IMAP and POP3 (implicit TLS preferred, RFC 8314 §5.1), RFC 6764
 * SRV + TXT for CalDAV and CardDAV, and the names Thunderbird autoconfig and Autodiscover fetch.
 * A service postern does not offer is published as "not available" (target ".", RFC 2782 / RFC
 * 6186 §3.4), so clients do not try a plaintext fallback elsewhere.
 */
import type { PublishedProtocol, PublishedService } from './services.js';

const TTL = 3600;

/** RFC 6186 / RFC 6764 service labels: [implicit TLS, STARTTLS or plain]. */
const LABELS: Record<PublishedProtocol, { tls: string; starttls: string }> = {
  smtp: { tls: '_submissions', starttls: '_submission' },
  imap: { tls: '_imaps', starttls: '_imap' },
  pop3: { tls: '_pop3s', starttls: '_pop3' },
  caldav: { tls: '_caldavs', starttls: '_caldav' },
  carddav: { tls: '_carddavs', starttls: '_carddav' },
};

export interface DnsRecordOptions {
  domain: string;
  /** The host the autoconfig/autodiscover names point at (postern's account page). */
  webHost: string;
  /** Where HTTPS reaches postern's account page, if it is served (autoconfig, Autodiscover). */
  webPort?: number;
}

export function dnsRecords(services: readonly PublishedService[], options: DnsRecordOptions): string {
  const domain = `${options.domain.replace(/\.$/, '')}.`;
  const fqdn = (host: string) => (host.endsWith('.') ? host : `${host}.`);
  const lines: string[] = [`; postern: records for ${domain}`];
  const srv = (label: string, priority: number, port: number, target: string) => `${label}._tcp.${domain} ${TTL} IN SRV ${priority} 1 ${port} ${target}`;
  const unavailable = (label: string) => `${label}._tcp.${domain} ${TTL} IN SRV 0 0 0 .`;
  const section = (title: string, protocols: PublishedProtocol[]) => {
    lines.push('', `; ${title}`);
    for (const protocol of protocols) {
      for (const mode of ['tls', 'starttls'] as const) {
        const label = LABELS[protocol][mode];
        const service = services.find((s) => s.protocol === protocol && s.security === mode);
        lines.push(service ? srv(label, mode === 'tls' ? 0 : 10, service.port, fqdn(service.host)) : unavailable(label));
        if (service?.url) lines.push(`${label}._tcp.${domain} ${TTL} IN TXT "path=/.well-known/${protocol}"`);
      }
    }
  };
  section('mail (RFC 6186; implicit TLS preferred, RFC 8314)', ['smtp', 'imap', 'pop3']);
  section('calendars and contacts (RFC 6764)', ['caldav', 'carddav']);
  lines.push('', '; automatic set-up: Thunderbird fetches https://autoconfig.<domain>/mail/config-v1.1.xml, Outlook');
  lines.push('; POSTs to https://autodiscover.<domain>/autodiscover/autodiscover.xml, both on port 443; the');
  lines.push('; certificate must name both hosts.');
  if (options.webPort === undefined) lines.push('; (the account page is not configured: these names have nothing to answer them yet)');
  else if (options.webPort !== 443) lines.push(`; the account page listens on ${options.webPort}: forward 443 to it on these names.`);
  lines.push(`autoconfig.${domain} ${TTL} IN CNAME ${fqdn(options.webHost)}`);
  lines.push(`autodiscover.${domain} ${TTL} IN CNAME ${fqdn(options.webHost)}`);
  lines.push(srv('_autodiscover', 0, 443, fqdn(options.webHost)));
  return `${lines.join('\n')}\n`;
}
