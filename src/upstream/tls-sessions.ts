/**
 * TLS sessions kept for resumption toward mail upstreams (issue 15): a full handshake costs the
 * key exchange and, in Node, `getPeerCertificate(true)` to check the name — together a third of
 * postern's CPU per login. A resumed handshake (RFC 8446 §2.2 tickets, RFC 5077 in TLS 1.2) does
 * neither, and Node then skips checkServerIdentity: the session was verified when it was made.
 *
 * That skip is why a session may only ever be offered to the origin it was verified for. The key
 * is the verification settings object (the CA, rejectUnauthorized: one per upstream config,
 * upstream/connect.ts) and, inside it, host, port and the name checked. Two upstream names
 * behind one TLS terminator share its ticket keys, so a session from name A offered for name B
 * would be resumed and B's certificate never checked against B: the key keeps them apart.
 *
 * A session is kept only from a connection that passed its checks: in TLS 1.2 the ticket arrives
 * inside the handshake, before Node checks the name. Node 20 does not emit `session` for a socket
 * its checks then refuse, but that order is not documented, so a session seen before
 * `secureConnect` (emitted only once chain and name are verified) is held until then and dropped
 * otherwise; else a certificate valid for another name would be refused once, then resumed unchecked.
 * One session per origin, the newest, reused until a newer one arrives (RFC 8446 Appendix C.4's
 * advice against reuse is about linking a person's connections: these are all postern's own),
 * none past SESSION_MAX_AGE_MS. Never written to disk or logged: it carries a master secret.
 */
import type { ConnectionOptions, TLSSocket } from 'node:tls';

/** Well inside the lifetimes servers give (OpenSSL 7200 s): an older session is not offered. */
const SESSION_MAX_AGE_MS = 5 * 60_000;

interface Kept {
  session: Buffer;
  at: number;
}

export interface TlsOrigin {
  /** The verification settings: a session verified under one CA is never offered under another. */
  tls: ConnectionOptions;
  host: string;
  port: number;
}

const byVerification = new WeakMap<ConnectionOptions, Map<string, Kept>>();

/** The name a handshake checks the certificate against (servername, else host), with host and port. */
function originKey(origin: TlsOrigin): string {
  return `${origin.tls.servername ?? ''}\0${origin.host}\0${origin.port}`;
}

/** The session to offer this origin; undefined means a full handshake. */
export function sessionFor(origin: TlsOrigin, now = Date.now()): Buffer | undefined {
  const kept = byVerification.get(origin.tls)?.get(originKey(origin));
  return kept && now - kept.at < SESSION_MAX_AGE_MS ? kept.session : undefined;
}

/**
 * Keeps the newest session `socket`'s server sends, for later connections to the same origin,
 * once the socket is verified (see the header). The listener goes with the first session kept.
 */
export function keepSessions(socket: TLSSocket, origin: TlsOrigin): void {
  let verified = false;
  let early: Buffer | undefined;
  const keep = (session: Buffer) => {
    let origins = byVerification.get(origin.tls);
    if (!origins) byVerification.set(origin.tls, (origins = new Map<string, Kept>()));
    origins.set(originKey(origin), { session, at: Date.now() });
    socket.off('session', onSession);
  };
  const onSession = (session: Buffer) => {
    if (verified) keep(session);
    else early = session;
  };
  socket.on('session', onSession);
  socket.once('secureConnect', () => {
    verified = true;
    if (early) keep(early);
  });
}
