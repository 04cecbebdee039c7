/**
 * The SMTP submission proxy (RFC 6409): clients authenticate with an app-specific password, postern
 * logs in to the real submission server with the account's credentials and relays each transaction
 * in step. Starts the configured listeners (implicit TLS and/or STARTTLS); see listener.ts and
 * session.ts. Importing this module has no side effects.
 */
import type { SmtpConfig } from '../config/schema.js';
import type { ProtocolDeps, ProtocolService } from '../net/service.js';
import { startListener, type SmtpListener } from './listener.js';
import { smtpUpstreamTarget } from './upstream-target.js';

export async function startSmtp(config: SmtpConfig, deps: ProtocolDeps): Promise<ProtocolService> {
  const target = smtpUpstreamTarget(config.upstream);
  if (!config.upstream.rejectUnauthorized) {
    deps.log.warn({ event: 'config.insecure_upstream', protocol: 'smtp' }, 'smtp.upstream.rejectUnauthorized is off: the upstream certificate is NOT verified');
  }
  if (config.upstream.security === 'plain') {
    deps.log.warn({ event: 'config.insecure_upstream', protocol: 'smtp' }, 'smtp.upstream.security is plain: real credentials travel unencrypted');
  }
  const specs = [
    config.implicitTls && { name: 'smtp.implicitTls', implicitTls: true, ...config.implicitTls },
    config.starttls && { name: 'smtp.starttls', implicitTls: false, ...config.starttls },
  ].filter((s): s is { name: string; implicitTls: boolean; host: string; port: number } => Boolean(s));
  const listeners: SmtpListener[] = [];
  try {
    for (const spec of specs) listeners.push(await startListener(spec, config, target, deps));
  } catch (err) {
    await Promise.allSettled(listeners.map((l) => l.close()));
    throw err;
  }
  let closing: Promise<void> | null = null;
  return {
    addresses: listeners.map((l, i) => ({ name: specs[i]!.name, host: l.host, port: l.port })),
    close: () => (closing ??= Promise.allSettled(listeners.map((l) => l.close())).then(() => undefined)),
  };
}
