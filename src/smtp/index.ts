/**
 * The SMTP submission proxy (RFC 6409): clients authenticate with an app-specific password, postern
 * logs in to the real submission server with the account's credentials and relays each transaction
 * in step. Starts the configured listeners (implicit TLS and/or STARTTLS); see listener.ts and
 * session.ts. Importing this module has no side effects.
 *
 * The extensions a client is offered mirror the upstream's where it matters (8BITMIME, SMTPUTF8):
 * learnt from an EHLO probe at start (in the background: a provider that is down must not stop
 * postern starting) and refreshed by every upstream login.
 */
import type { ProxyProtocolConfig, SmtpConfig } from '../config/schema.js';
import { isPosternError } from '../errors.js';
import { mailUpstreamSecurity, warnIfInsecureUpstream } from '../net/insecure-upstream.js';
import { ConnectionLimiter } from '../net/connection-limiter.js';
import type { ProtocolDeps, ProtocolService } from '../net/service.js';
import { probeUpstreamSmtp, type SmtpUpstream, type SmtpUpstreamTarget } from '../upstream/smtp/connection.js';
import { startListener, type SmtpListener } from './listener.js';
import { smtpUpstreamTarget } from './upstream-target.js';

interface ListenerSpec {
  name: string;
  implicitTls: boolean;
  host: string;
  port: number;
  proxyProtocol?: ProxyProtocolConfig | undefined;
}

export async function startSmtp(config: SmtpConfig, deps: ProtocolDeps): Promise<ProtocolService> {
  const target = smtpUpstreamTarget(config.upstream, deps.serverName);
  warnIfInsecureUpstream(deps.log, mailUpstreamSecurity('smtp', config.upstream));
  const specs: ListenerSpec[] = [];
  if (config.implicitTls) specs.push({ name: 'smtp.implicitTls', implicitTls: true, ...config.implicitTls });
  if (config.starttls) specs.push({ name: 'smtp.starttls', implicitTls: false, ...config.starttls });
  const listeners: SmtpListener[] = [];
  const limiter = new ConnectionLimiter(config.limits); // shared: the caps hold across both listeners
  const mirror = (upstream: Pick<SmtpUpstream, 'supports'>) => listeners.forEach((l) => l.mirror(upstream));
  try {
    for (const spec of specs) listeners.push(await startListener(spec, config, target, deps, { limiter, onUpstream: mirror }));
  } catch (err) {
    await Promise.allSettled(listeners.map((l) => l.close()));
    throw err;
  }
  void probeInBackground(target, deps, mirror);
  let closing: Promise<void> | null = null;
  return {
    addresses: listeners.map((l, i) => ({ name: specs[i]!.name, host: l.host, port: l.port })),
    stopAccepting: () => listeners.forEach((l) => l.stopAccepting()),
    connections: () => listeners.reduce((n, l) => n + l.server.connections.size, 0),
    close: () => (closing ??= Promise.allSettled(listeners.map((l) => l.close())).then(() => undefined)),
  };
}

async function probeInBackground(target: SmtpUpstreamTarget, deps: ProtocolDeps, mirror: (u: SmtpUpstream) => void): Promise<void> {
  try {
    const upstream = await probeUpstreamSmtp(target);
    mirror(upstream);
    await upstream.quit();
  } catch (err) {
    deps.log.warn({ event: 'upstream.fault', stage: 'probe', code: isPosternError(err) ? err.code : undefined, err }, 'SMTP upstream not reachable at start-up');
  }
}
