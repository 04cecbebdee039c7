/**
 * The IMAP proxy service: its listeners (implicit TLS and/or plaintext with STARTTLS), the live
 * session registry, and the upstream connector, wired from config. Sessions do the protocol.
 *
 * The provider's pre-login capabilities (what capabilities.ts mirrors to clients before login)
 * are learnt from every upstream connection, early or at login, the latest kept: a provider that
 * changes its list is followed from its next connection on. Not every client has an early
 * connection (the pre-connect budget), so one connection at start-up learns the list before the
 * first client comes; if the provider is down then, clients get postern's own list until the
 * first connection that works.
 */
import type { ImapConfig } from '../config/schema.js';
import { mailUpstreamSecurity, warnIfInsecureUpstream } from '../net/insecure-upstream.js';
import { ConnectionLimiter } from '../net/connection-limiter.js';
import { TOO_BUSY_TEXT } from '../net/descriptors.js';
import { ConnectionRegistry } from '../net/connection-registry.js';
import { reloadableSecureContext } from '../net/listener.js';
import { startMailListeners } from '../net/mail-listeners.js';
import type { ProtocolDeps, ProtocolService } from '../net/service.js';
import { admitSessions } from '../net/session-admission.js';
import { isPosternError } from '../errors.js';
import { connectImapUpstream, prepareUpstreamTls, type PreAuthUpstream } from '../upstream/imap/client.js';
import { sessionLimits } from './limits.js';
import { ImapSession } from './session.js';

export async function startImap(config: ImapConfig, deps: ProtocolDeps): Promise<ProtocolService> {
  prepareUpstreamTls(config.upstream);
  const limits = sessionLimits(config.limits);
  const registry = new ConnectionRegistry();
  const limiter = new ConnectionLimiter(config.limits);
  // Its upstream sockets are the ones each session's two descriptors already count.
  const preConnect = new ConnectionLimiter({ maxConnections: config.limits.preConnectTotal, maxConnectionsPerAddress: config.limits.preConnectPerAddress }, 0);
  const starttlsContext = reloadableSecureContext(deps.tls);
  warnIfInsecureUpstream(deps.log, mailUpstreamSecurity('imap', config.upstream));

  let upstreamCapabilities: readonly string[] | null = null;
  const connectUpstream = async (): Promise<PreAuthUpstream> => {
    const upstream = await connectImapUpstream(config.upstream);
    upstreamCapabilities = upstream.preLoginCapabilities;
    return upstream;
  };
  // One closure for every session, not one each.
  const latestUpstreamCapabilities = () => upstreamCapabilities;
  void connectUpstream().then(
    (upstream) => upstream.close(),
    (err: unknown) => deps.log.warn({ event: 'upstream.fault', stage: 'probe', code: isPosternError(err) ? err.code : undefined }, 'IMAP upstream not reachable at start-up; pre-login capabilities learnt later'),
  );

  const accept = admitSessions({
    limiter, registry, log: deps.log,
    // RFC 9051 §7.1.5: a server may greet with BYE when it will not serve the connection.
    // Out of descriptors is the server's own trouble (RFC 5530 UNAVAILABLE), not the client's count.
    refuseLine: (why) => (why === 'descriptors' ? `* BYE [UNAVAILABLE] ${TOO_BUSY_TEXT}` : '* BYE Too many connections; please try again later.'),
    open: (socket, secure, { clientAddress, log, onClosed }) => new ImapSession(socket, clientAddress, secure, {
      auth: deps.auth,
      log,
      limits,
      connectUpstream,
      upstreamCapabilities: latestUpstreamCapabilities,
      reserveEarlyUpstream: () => {
        const place = preConnect.acquire(clientAddress);
        return 'release' in place ? place.release : null;
      },
      starttlsContext: secure ? null : starttlsContext.current,
      onClosed,
    }),
  });

  return startMailListeners({
    prefix: 'imap', implicitTls: config.implicitTls, starttls: config.starttls,
    tls: deps.tls, log: deps.log, registry, accept,
    dispose: () => starttlsContext.dispose(),
  });
}
