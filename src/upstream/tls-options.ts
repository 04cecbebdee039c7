/**
 * TLS client options for connections to the real provider: certificate verified by default,
 * an optional extra CA file, TLS 1.2+. Shared by the IMAP, SMTP and HTTP upstream connectors.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { rootCertificates, type ConnectionOptions } from 'node:tls';
import { PosternError } from '../errors.js';

export interface UpstreamTlsSettings {
  host: string;
  caFile?: string | undefined;
  servername?: string | undefined;
  rejectUnauthorized: boolean;
}

export function upstreamTlsOptions(settings: UpstreamTlsSettings): ConnectionOptions {
  const options: ConnectionOptions = { minVersion: 'TLSv1.2', rejectUnauthorized: settings.rejectUnauthorized };
  const servername = settings.servername ?? settings.host;
  // SNI must not carry an IP address (RFC 6066 §3); verification still checks IP SANs.
  if (!isIP(servername)) options.servername = servername;
  if (settings.caFile) {
    try {
      // Node's `ca` replaces the public roots; the config promises an *extra* CA (a private CA
      // for one upstream must not break verification of publicly signed ones, e.g. DAV hosts).
      options.ca = [...rootCertificates, readFileSync(settings.caFile, 'utf8')];
    } catch (err) {
      throw new PosternError('CONFIG_INVALID', `cannot read upstream CA file ${settings.caFile}`, { cause: err });
    }
  }
  return options;
}
