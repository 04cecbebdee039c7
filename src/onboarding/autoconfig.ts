/**
 * Thunderbird's autoconfig document (config-v1.1.xml, the "clientConfig" format also read by K-9 /
 * Thunderbird for Android, Evolution and KMail) describing postern's servers for one mail domain.
 * Served at `https://autoconfig.<domain>/mail/config-v1.1.xml` and
 * `/.well-known/autoconfig/mail/config-v1.1.xml`. It never carries a password, and it is the same
 * for every address of the domain: the user name is Thunderbird's own placeholder
 * (%EMAILADDRESS% or %EMAILLOCALPART%), filled in by the client, so the answer tells nothing about
 * which mailboxes exist.
 */
import { escapeXml } from './xml.js';
import type { PublishedService } from './services.js';

export interface AutoconfigOptions {
  domain: string;
  displayName: string;
  username: 'address' | 'localpart';
}

export function autoconfigXml(services: readonly PublishedService[], options: AutoconfigOptions): string {
  const user = options.username === 'address' ? '%EMAILADDRESS%' : '%EMAILLOCALPART%';
  const server = (tag: 'incomingServer' | 'outgoingServer', s: PublishedService) => [
    `    <${tag} type="${s.protocol}">`,
    `      <hostname>${escapeXml(s.host)}</hostname>`,
    `      <port>${s.port}</port>`,
    `      <socketType>${s.security === 'tls' ? 'SSL' : 'STARTTLS'}</socketType>`,
    // "password-cleartext" is Thunderbird's name for PLAIN/LOGIN: over TLS only, as postern allows.
    '      <authentication>password-cleartext</authentication>',
    `      <username>${user}</username>`,
    `    </${tag}>`,
  ];
  const incoming = services.filter((s) => s.protocol === 'imap' || s.protocol === 'pop3');
  const outgoing = services.filter((s) => s.protocol === 'smtp');
  const dav = services.filter((s) => s.protocol === 'caldav' || s.protocol === 'carddav');
  const domain = escapeXml(options.domain);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<clientConfig version="1.1">',
    `  <emailProvider id="${domain}">`,
    `    <domain>${domain}</domain>`,
    `    <displayName>${escapeXml(options.displayName)}</displayName>`,
    `    <displayShortName>${escapeXml(options.displayName)}</displayShortName>`,
    ...incoming.flatMap((s) => server('incomingServer', s)),
    ...outgoing.flatMap((s) => server('outgoingServer', s)),
    '  </emailProvider>',
    // Thunderbird 102+ reads these to offer the calendars and address books with the mail account.
    ...dav.flatMap((s) => [
      `  <${s.protocol === 'caldav' ? 'calDAV' : 'cardDAV'}>`,
      `    <username>${user}</username>`,
      `    <serverURL>${escapeXml(s.url!)}</serverURL>`,
      `  </${s.protocol === 'caldav' ? 'calDAV' : 'cardDAV'}>`,
    ]),
    '</clientConfig>',
    '',
  ].join('\n');
}
