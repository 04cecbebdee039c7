/**
 * One SMTP submission listener (implicit TLS, or plaintext with STARTTLS) on smtp-server, wired to
 * SubmissionSession. smtp-server owns the client-side protocol: parsing, STARTTLS, SASL exchanges,
 * SIZE, recipient limit, idle timeout, early talkers, HTTP lines sent to a mail port (server.ts
 * makes it greet at once, keeping the early-talker check).
 *
 * What postern adds before authentication (RFC 6409 §4, RFC 3207 §4, RFC 4954 §4): AUTH is neither
 * advertised nor accepted before TLS, so a client set up without TLS never sends its password in
 * clear; commands outside RFC 6409's pre-auth set (VRFY and sendmail's jokes, XCLIENT/XFORWARD) are
 * disabled. The server must never fall back to smtp-server's bundled certificate: the TLS material
 * is always passed in, and reloads (SIGHUP) rebuild the server's contexts. The greeting and EHLO
 * name the configured host (`hostnames[0]`), never the machine's own hostname.
 */
import type { SMTPServer, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import { clientAddressOf } from '../auth/client-address.js';
import type { ProxyProtocolConfig, SmtpConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { ConnectionLimiter } from '../net/connection-limiter.js';
import { bind } from '../net/listener.js';
import { resetConnection } from '../net/reset.js';
import type { ProtocolDeps } from '../net/service.js';
import type { SmtpUpstream, SmtpUpstreamTarget } from '../upstream/smtp/connection.js';
import { settle } from './adapt.js';
import * as replies from './replies.js';
import { SubmissionServer } from './server.js';
import { SubmissionSession } from './session.js';

const DISABLED_ALWAYS = ['VRFY', 'EXPN', 'WIZ', 'SHELL', 'KILL', 'XCLIENT', 'XFORWARD'];
const DISABLED_BEFORE_TLS = [...DISABLED_ALWAYS, 'AUTH'];

export interface SmtpListener {
  server: SMTPServer;
  /** Advertise 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, DSN, CHUNKING, BINARYMIME to clients only as far as the upstream supports them. */
  mirror(upstream: Pick<SmtpUpstream, 'supports'>): void;
  port: number;
  host: string;
  /** Stops accepting connections; live sessions go on (drain). */
  stopAccepting(): void;
  /** Ends every live session with 421 and stops listening. */
  close(): Promise<void>;
}

interface ListenerSpec {
  name: string;
  implicitTls: boolean;
  host: string;
  port: number;
  proxyProtocol?: ProxyProtocolConfig | undefined;
}

export interface ListenerShared {
  limiter: ConnectionLimiter;
  /** Told about every fresh upstream connection. */
  onUpstream: (upstream: SmtpUpstream) => void;
}

export async function startListener(spec: ListenerSpec, config: SmtpConfig, target: SmtpUpstreamTarget, deps: ProtocolDeps, shared: ListenerShared): Promise<SmtpListener> {
  const log = deps.log.child({ listener: spec.name });
  const sessions = new Map<string, SubmissionSession>();
  const server: SubmissionServer = new SubmissionServer(serverOptions(spec, config, deps, log, sessions, { target, ...shared }, () => server));
  // smtp-server reads these options at every EHLO, so changing them takes effect for the next client.
  const mirror = (upstream: Pick<SmtpUpstream, 'supports'>) => {
    server.options.hide8BITMIME = !upstream.supports('8BITMIME');
    server.options.hideSMTPUTF8 = !upstream.supports('SMTPUTF8');
    // With the extension offered, smtp-server adds enhanced codes to its own replies; postern's
    // and the upstream's carry theirs already (server.ts sends those as they are).
    server.options.hideENHANCEDSTATUSCODES = !upstream.supports('ENHANCEDSTATUSCODES');
    // RFC 3461: smtp-server checks RET/ENVID/NOTIFY/ORCPT, mail-params.ts passes them on.
    server.options.hideDSN = !upstream.supports('DSN');
    // RFC 3030: chunks are relayed as BDAT, so only an upstream with CHUNKING gets them; a binary
    // message has no other way upstream than BDAT.
    server.extensions.chunking = upstream.supports('CHUNKING');
    server.extensions.binaryMime = upstream.supports('CHUNKING') && upstream.supports('BINARYMIME');
  };
  server.on('error', (err) => log.debug({ event: 'client.socket_error', err }, 'client connection error'));
  const stopReload = deps.tls.onReload((options) => server.updateSecureContext(options));
  let port: number;
  try {
    ({ port } = await bind(server.server, { key: spec.name, host: spec.host, port: spec.port, proxyProtocol: spec.proxyProtocol, log }));
  } catch (err) {
    stopReload();
    throw err;
  }
  // The net.Server under smtp-server, closed directly: smtp-server's own close() would send its
  // 421 after its closeTimeout, not when postern's drain decides.
  let listening: Promise<void> | null = null;
  const stopAccepting = () => (listening ??= new Promise<void>((resolve) => server.server.close(() => resolve())));
  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      stopReload();
      const stopped = stopAccepting();
      // Sockets still in the TLS handshake have no session to end and would hold the server open.
      (server as unknown as { _pendingSockets?: Set<{ destroy(): void }> })._pendingSockets?.forEach((s) => s.destroy());
      for (const session of sessions.values()) session.end();
      const bye = replies.shuttingDown();
      for (const connection of server.connections) connection.send(bye.responseCode, bye.message); // 421 closes
      await stopped;
    })());
  return { server, mirror, port, host: spec.host, stopAccepting: () => void stopAccepting(), close };
}

function serverOptions(
  spec: ListenerSpec, config: SmtpConfig, deps: ProtocolDeps, log: Logger,
  sessions: Map<string, SubmissionSession>, upstream: ListenerShared & { target: SmtpUpstreamTarget }, server: () => SMTPServer,
): SMTPServerOptions {
  const { limits } = config;
  const slots = new Map<string, () => void>();
  const sessionOf = (session: SMTPServerSession): SubmissionSession => {
    const found = sessions.get(session.id);
    if (!found) throw new replies.SmtpReplyError(421, '4.3.0 Session state lost; closing connection.');
    return found;
  };
  return {
    ...deps.tls.secureContextOptions(),
    secure: spec.implicitTls,
    // The 220 greeting and the EHLO reply name the server; smtp-server's default, os.hostname(),
    // would tell every client (pre-auth, pre-TLS) the machine's internal name.
    name: deps.serverName,
    banner: 'postern submission',
    size: limits.maxMessageBytes,
    rejectOversized: true,
    maxRecipients: limits.maxRecipients,
    socketTimeout: limits.idleTimeoutMs,
    closeTimeout: 1_000,
    authMethods: ['PLAIN', 'LOGIN'],
    allowInsecureAuth: false,
    authRequiredMessage: replies.authRequired().message,
    disabledCommands: DISABLED_ALWAYS,
    disableReverseLookup: true,
    // Until the upstream is known (mirror()): the texts carry their own codes (see replies.ts).
    hideENHANCEDSTATUSCODES: true,
    hideDSN: true,
    hideREQUIRETLS: true,
    logger: false,
    onConnect(session, callback) {
      const connection = [...server().connections].find((c) => c.session === session);
      if (!connection) return callback(replies.internalError());
      // The socket's address in postern's one form, as IMAP and DAV see it (smtp-server's own keeps
      // an IPv6 zone id); the connection's copy too, which smtp-server copies into every reset session.
      connection.remoteAddress = session.remoteAddress = clientAddressOf(connection._socket);
      const slot = upstream.limiter.acquire(session.remoteAddress);
      if ('refused' in slot) {
        upstream.limiter.logRefusal(log, session.remoteAddress, slot.refused);
        return callback(slot.refused === 'descriptors' ? replies.tooBusy() : replies.tooManyConnections());
      }
      slots.set(session.id, slot.release);
      const connLog = log.child({ cid: session.id, ip: session.remoteAddress });
      sessions.set(session.id, new SubmissionSession(
        // _socket, read when needed: smtp-server swaps in the TLS socket at STARTTLS.
        { send: (code, text) => connection.send(code, text), reset: () => resetConnection(connection._socket) },
        { auth: deps.auth, target: upstream.target, onUpstream: upstream.onUpstream, maxAuthFailures: limits.maxAuthFailures, maxMessageBytes: limits.maxMessageBytes, log: connLog },
        connLog,
      ));
      if (!session.secure) session.disabledCommands = DISABLED_BEFORE_TLS;
      callback();
    },
    onSecure(_socket, session, callback) {
      session.disabledCommands = DISABLED_ALWAYS;
      callback();
    },
    onAuth: (auth, session, callback) => settle(() => sessionOf(session).authenticate(auth, session), callback, log, 'onAuth'),
    onMailFrom: (address, session, callback) => settle(() => sessionOf(session).mailFrom(address, session), callback, log, 'onMailFrom'),
    onRcptTo: (address, session, callback) => settle(() => sessionOf(session).rcptTo(address), callback, log, 'onRcptTo'),
    onData: (stream, session, callback) => settle(() => sessionOf(session).data(stream), callback, log, 'onData'),
    onClose(session) {
      sessions.get(session.id)?.end();
      sessions.delete(session.id);
      slots.get(session.id)?.();
      slots.delete(session.id);
    },
  };
}
