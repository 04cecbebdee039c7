/**
 * TLS client options for connections to the real provider: certificate verified by default,
 * an optional extra CA file, TLS 1.2+. Shared by the IMAP, SMTP and HTTP upstream connectors.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { createSecureContext, rootCertificates, type ConnectionOptions, type SecureContext } from 'node:tls';
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
  if (settings.caFile) options.secureContext = contextWithExtraCa(settings.caFile);
  return options;
}

/**
 * A secure context trusting the public roots plus one CA file, built once per file: Node's `ca`
 * option alone would replace the roots (a private CA for one upstream must not break publicly
 * signed ones), and building a context from ~150 root certificates costs tens of milliseconds —
 * per connection, were it left to tls.connect. A changed CA file therefore needs a restart.
 */
const extraCaContexts = new Map<string, SecureContext>();

function contextWithExtraCa(caFile: string): SecureContext {
  let context = extraCaContexts.get(caFile);
  if (!context) {
    context = createSecureContext({ minVersion: 'TLSv1.2', ca: extraCaBundle(caFile) });
    extraCaContexts.set(caFile, context);
  }
  return context;
}

/** The CA certificates trusted for an upstream with `caFile`: the public roots and the file. */
export function extraCaBundle(caFile: string): string[] {
  try {
    return [...rootCertificates, readFileSync(caFile, 'utf8')];
  } catch (err) {
    throw new PosternError('CONFIG_INVALID', `cannot read upstream CA file ${caFile}`, { cause: err });
  }
}
