/**
 * The POP3 proxy service: its listeners (implicit TLS and/or plaintext with STLS), the live
 * session registry, and the upstream login, wired from config. Sessions do the protocol.
 */
import type { Pop3Config } from '../config/schema.js';
import { mailUpstreamSecurity, warnIfInsecureUpstream } from '../net/insecure-upstream.js';
import { ConnectionLimiter } from '../net/connection-limiter.js';
import { TOO_BUSY_TEXT } from '../net/descriptors.js';
import { ConnectionRegistry } from '../net/connection-registry.js';
import { reloadableSecureContext } from '../net/listener.js';
import { startMailListeners } from '../net/mail-listeners.js';
import type { ProtocolDeps, ProtocolService } from '../net/service.js';
import { admitSessions } from '../net/session-admission.js';
import { loginPop3Upstream, preparePop3UpstreamTls } from '../upstream/pop3/client.js';
import { sessionLimits } from './limits.js';
import { reply } from './replies.js';
import { Pop3Session } from './session.js';

export async function startPop3(config: Pop3Config, deps: ProtocolDeps): Promise<ProtocolService> {
  preparePop3UpstreamTls(config.upstream);
  const limits = sessionLimits(config.limits);
  const registry = new ConnectionRegistry();
  const limiter = new ConnectionLimiter(config.limits);
  const starttlsContext = reloadableSecureContext(deps.tls);
  warnIfInsecureUpstream(deps.log, mailUpstreamSecurity('pop3', config.upstream));

  const accept = admitSessions({
    limiter, registry, log: deps.log,
    // A -ERR greeting refuses the connection (RFC 3206 [SYS/TEMP]: try again later).
    refuseLine: (why) => (why === 'descriptors' ? `-ERR [SYS/TEMP] ${TOO_BUSY_TEXT}` : reply.tooManyConnections()),
    open: (socket, secure, { clientAddress, log, onClosed }) => new Pop3Session(socket, clientAddress, secure, {
      auth: deps.auth,
      log,
      limits,
      loginUpstream: (credential) => loginPop3Upstream(config.upstream, credential),
      starttlsContext: secure ? null : () => starttlsContext.current(),
      onClosed,
    }),
  });

  return startMailListeners({
    prefix: 'pop3', implicitTls: config.implicitTls, starttls: config.starttls,
    tls: deps.tls, log: deps.log, registry, accept,
    dispose: () => starttlsContext.dispose(),
  });
}
