/**
 * Apple configuration profiles (.mobileconfig, `application/x-apple-aspen-config`): one download
 * that sets up Mail (IMAP or POP3 plus SMTP) and, where the password's scopes allow, Calendar
 * (CalDAV) and Contacts (CardDAV) on iOS, iPadOS and macOS, with the new app-specific password
 * inside. The caller makes sure a profile exists only for the moments after the password was
 * generated (it contains the password in clear) and is downloaded once.
 *
 * Signed (CMS/PKCS#7 SignedData, RFC 5652, with the document inside) with postern's certificate
 * and chain, so a device shows it as verified when the certificate is publicly trusted. node-forge
 * signs with RSA keys only; with another key type the profile is returned unsigned and says so
 * (devices then show "Unverified", and it still installs).
 */
import { randomUUID } from 'node:crypto';
import forge from 'node-forge';
import { escapeXml } from './xml.js';
import type { PublishedService } from './services.js';

export const PROFILE_CONTENT_TYPE = 'application/x-apple-aspen-config';

export interface ProfileAccount {
  /** The user name the apps log in with (postern's login). */
  login: string;
  /** The address shown in Mail and used as the sender. */
  address: string;
  /** The app-specific password, in clear: only ever in this one response. */
  password: string;
  /** The password's label, e.g. "iPhone". */
  label: string;
  /** The password's scopes: which payloads to include. */
  scopes: readonly string[];
}

export interface ProfileOptions {
  displayName: string;
  /** Reverse-DNS prefix for the payload identifiers, e.g. `org.example.postern`. */
  identifier: string;
}

type Value = string | number | boolean | Value[] | { [key: string]: Value };

export function appleProfile(services: readonly PublishedService[], account: ProfileAccount, options: ProfileOptions): string {
  const pick = (protocol: string) => (account.scopes.includes(protocol) ? services.find((s) => s.protocol === protocol) : undefined);
  const payloads: Record<string, Value>[] = [];
  const incoming = pick('imap') ?? pick('pop3');
  const outgoing = pick('smtp');
  const base = (type: string, name: string) => ({
    PayloadType: type,
    PayloadVersion: 1,
    PayloadIdentifier: `${options.identifier}.${type.split('.').pop()}.${randomUUID()}`,
    PayloadUUID: randomUUID().toUpperCase(),
    PayloadDisplayName: name,
  });
  if (incoming || outgoing) {
    payloads.push({
      ...base('com.apple.mail.managed', `${options.displayName} mail`),
      EmailAccountDescription: `${options.displayName} (${account.label})`,
      EmailAccountName: account.address,
      EmailAddress: account.address,
      EmailAccountType: incoming?.protocol === 'pop3' ? 'EmailTypePOP' : 'EmailTypeIMAP',
      ...(incoming ? {
        IncomingMailServerHostName: incoming.host,
        IncomingMailServerPortNumber: incoming.port,
        IncomingMailServerUseSSL: true,
        IncomingMailServerAuthentication: 'EmailAuthPassword',
        IncomingMailServerUsername: account.login,
        IncomingPassword: account.password,
      } : {}),
      ...(outgoing ? {
        OutgoingMailServerHostName: outgoing.host,
        OutgoingMailServerPortNumber: outgoing.port,
        OutgoingMailServerUseSSL: true,
        OutgoingMailServerAuthentication: 'EmailAuthPassword',
        OutgoingMailServerUsername: account.login,
        OutgoingPassword: account.password,
      } : {}),
    });
  }
  const caldav = pick('caldav');
  if (caldav) {
    payloads.push({
      ...base('com.apple.caldav.account', `${options.displayName} calendars`),
      CalDAVAccountDescription: `${options.displayName} calendars (${account.label})`,
      CalDAVHostName: caldav.host,
      CalDAVPort: caldav.port,
      CalDAVUseSSL: true,
      CalDAVUsername: account.login,
      CalDAVPassword: account.password,
    });
  }
  const carddav = pick('carddav');
  if (carddav) {
    payloads.push({
      ...base('com.apple.carddav.account', `${options.displayName} contacts`),
      CardDAVAccountDescription: `${options.displayName} contacts (${account.label})`,
      CardDAVHostName: carddav.host,
      CardDAVPort: carddav.port,
      CardDAVUseSSL: true,
      CardDAVUsername: account.login,
      CardDAVPassword: account.password,
    });
  }
  const profile: Record<string, Value> = {
    PayloadContent: payloads,
    PayloadDisplayName: `${options.displayName}: ${account.label}`,
    PayloadDescription: `Sets up ${account.address} through postern with the app-specific password "${account.label}". Revoking that password signs these apps out.`,
    PayloadIdentifier: `${options.identifier}.profile.${randomUUID()}`,
    PayloadType: 'Configuration',
    PayloadUUID: randomUUID().toUpperCase(),
    PayloadVersion: 1,
    PayloadRemovalDisallowed: false,
  };
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    plistValue(profile, ''),
    '</plist>',
    '',
  ].join('\n');
}

function plistValue(value: Value, indent: string): string {
  if (typeof value === 'string') return `${indent}<string>${escapeXml(value)}</string>`;
  if (typeof value === 'number') return `${indent}<integer>${Math.trunc(value)}</integer>`;
  if (typeof value === 'boolean') return `${indent}<${value}/>`;
  const inner = `${indent}  `;
  if (Array.isArray(value)) return [`${indent}<array>`, ...value.map((v) => plistValue(v, inner)), `${indent}</array>`].join('\n');
  return [
    `${indent}<dict>`,
    ...Object.entries(value).flatMap(([key, v]) => [`${inner}<key>${escapeXml(key)}</key>`, plistValue(v, inner)]),
    `${indent}</dict>`,
  ].join('\n');
}

export type SignedProfile = { signed: true; body: Buffer } | { signed: false; body: Buffer; reason: string };

/**
 * The profile as a CMS SignedData (DER) carrying it, signed by `keyPem` for the first certificate
 * of `chainPem` (leaf first, as in postern's certificate file), every certificate of the chain
 * included so a device can build the path to its trusted root.
 */
export function signProfile(profile: string, chainPem: string, keyPem: string): SignedProfile {
  const certificates = (chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((pem) => forge.pki.certificateFromPem(pem));
  const leaf = certificates[0];
  if (!leaf) return { signed: false, body: Buffer.from(profile), reason: 'no certificate to sign with' };
  let key: forge.pki.rsa.PrivateKey;
  try {
    key = forge.pki.privateKeyFromPem(keyPem);
  } catch {
    return { signed: false, body: Buffer.from(profile), reason: 'the certificate key is not an RSA key (node-forge signs with RSA only)' };
  }
  const p7 = forge.pkcs7.createSignedData();
  p7.content = forge.util.createBuffer(profile, 'utf8');
  for (const certificate of certificates) p7.addCertificate(certificate);
  p7.addSigner({
    key,
    certificate: leaf,
    digestAlgorithm: forge.pki.oids.sha256!,
    authenticatedAttributes: [
      { type: forge.pki.oids.contentType!, value: forge.pki.oids.data! },
      { type: forge.pki.oids.messageDigest! },
      { type: forge.pki.oids.signingTime!, value: new Date() as unknown as string },
    ],
  });
  p7.sign();
  return { signed: true, body: Buffer.from(forge.asn1.toDer(p7.toAsn1()).getBytes(), 'binary') };
}
