/**
 * `--check`: before saving credentials, log in to the configured IMAP upstream with them (an
 * imapflow login, then LOGOUT), so a typo is caught at the admin's desk rather than by a user's
 * mail client. Reports a verdict, never the secret; imapflow's own logging is off so no protocol
 * trace (which would contain the AUTHENTICATE line) is produced at all.
 */
import { ImapFlow } from 'imapflow';
import type { MailUpstreamConfig } from '../config/schema.js';
import { upstreamTlsOptions } from '../upstream/tls-options.js';

export interface CheckCredential {
  username: string;
  password: string;
  /** Master-user login acting for this user (SASL PLAIN authorization identity, RFC 4616). */
  authzid?: string;
}

export type CheckResult =
  | { ok: true }
  | { ok: false; reason: 'rejected' | 'unreachable' | 'tls' | 'timeout' | 'protocol'; detail: string };

export async function checkImapLogin(upstream: MailUpstreamConfig, credential: CheckCredential): Promise<CheckResult> {
  const client = new ImapFlow({
    host: upstream.host,
    port: upstream.port,
    secure: upstream.security === 'tls',
    doSTARTTLS: upstream.security === 'starttls' ? true : upstream.security === 'plain' ? false : undefined,
    tls: upstreamTlsOptions(upstream),
    auth: {
      user: credential.username,
      pass: credential.password,
      ...(credential.authzid ? { authzid: credential.authzid, loginMethod: 'AUTH=PLAIN' } : {}),
    },
    logger: false,
    connectionTimeout: upstream.connectTimeoutMs,
    greetingTimeout: upstream.greetingTimeoutMs,
    disableAutoIdle: true,
    verifyOnly: true,
  });
  client.on('error', () => {}); // failures surface through connect(); a late socket error must not crash the CLI
  try {
    await client.connect();
    return { ok: true };
  } catch (err) {
    return classify(err);
  } finally {
    client.close();
  }
}

function classify(err: unknown): CheckResult {
  const e = err as { authenticationFailed?: boolean; code?: string; message?: string };
  if (e.authenticationFailed) return { ok: false, reason: 'rejected', detail: 'the upstream refused the login' };
  const code = e.code ?? '';
  if (/TIMEOUT/i.test(code)) return { ok: false, reason: 'timeout', detail: 'the upstream did not answer in time' };
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/i.test(code) || /certificate|TLS|SSL/i.test(e.message ?? '')) {
    return { ok: false, reason: 'tls', detail: `TLS with the upstream failed (${code || 'handshake'})` };
  }
  if (/ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ECONNRESET|EAI_AGAIN|ENETUNREACH/.test(code)) {
    return { ok: false, reason: 'unreachable', detail: `the upstream is unreachable (${code})` };
  }
  return { ok: false, reason: 'protocol', detail: `the upstream login did not complete (${code || 'no code'})` };
}
