/**
 * `--check`: before saving credentials, log in to the configured IMAP upstream with them, so a
 * typo is caught at the admin's desk rather than by a user's mail client.
 *
 * It logs in with the proxy's own upstream login (connectImapUpstream → login → LOGOUT), never a
 * second client: a check that passed where the proxy then fails (imapflow accepted a PREAUTH
 * greeting without checking anything and refused LOGINDISABLED servers the proxy logs in to with
 * AUTHENTICATE PLAIN) is worse than none. Reports a verdict, never the secret; nothing here logs.
 */
import type { Socket } from 'node:net';
import type { UpstreamCredential } from '../auth/types.js';
import type { MailUpstreamConfig } from '../config/schema.js';
import type { PosternError } from '../errors.js';
import { classifyTransportError, transportCause } from '../upstream/classify.js';
import { connectImapUpstream } from '../upstream/imap/client.js';
import { UpstreamRefusal } from '../upstream/refusal.js';

export interface CheckCredential {
  username: string;
  password: string;
  /** Master-user login acting for this user (SASL PLAIN authorization identity, RFC 4616). */
  authzid?: string;
}

export type CheckResult =
  | { ok: true }
  | { ok: false; reason: 'rejected' | 'refused' | 'unreachable' | 'tls' | 'timeout' | 'protocol'; detail: string };

/**
 * What a `trusted` upstream is told as the client's address (ID x-originating-ip): the login is
 * made from this host by its admin, not on behalf of a remote client.
 */
const CHECK_CLIENT_ADDRESS = '127.0.0.1';
/** The LOGOUT is a courtesy: the verdict is already in. */
const LOGOUT_WAIT_MS = 2_000;

/** Throws only for a broken config (e.g. an unreadable CA file); every upstream outcome is a CheckResult. */
export async function checkImapLogin(upstream: MailUpstreamConfig, credential: CheckCredential): Promise<CheckResult> {
  try {
    const session = await connectImapUpstream(upstream);
    const { socket } = await session.login({ credential: upstreamCredential(credential), id: null, clientAddress: CHECK_CLIENT_ADDRESS });
    await logout(socket);
    return { ok: true };
  } catch (err) {
    const failure = classifyTransportError(err);
    if (!failure.code.startsWith('UPSTREAM_')) throw failure;
    return verdict(failure);
  }
}

function upstreamCredential(credential: CheckCredential): UpstreamCredential {
  const { username, password, authzid } = credential;
  return authzid === undefined ? { kind: 'password', username, password } : { kind: 'master', username, password, authzid };
}

/** The CLI's line for each upstream outcome: Node's code when there is one, else postern's own text (never the upstream's). */
function verdict(err: PosternError): CheckResult {
  const cause = transportCause(err);
  switch (err.code) {
    case 'UPSTREAM_AUTH_REJECTED':
      return { ok: false, reason: 'rejected', detail: 'the upstream refused the login' };
    case 'UPSTREAM_LOGIN_REFUSED':
      // The credentials may be right: the provider refused for a reason of its own (LIMIT, EXPIRED…).
      return { ok: false, reason: 'refused', detail: `the upstream refused the login for a reason other than the credentials (${err instanceof UpstreamRefusal ? err.refusal.code : 'no code'})` };
    case 'UPSTREAM_TIMEOUT':
      return { ok: false, reason: 'timeout', detail: 'the upstream did not answer in time' };
    case 'UPSTREAM_TLS_FAILED':
      return { ok: false, reason: 'tls', detail: `TLS with the upstream failed (${cause || err.message})` };
    case 'UPSTREAM_UNAVAILABLE':
      return cause
        ? { ok: false, reason: 'unreachable', detail: `the upstream is unreachable (${cause})` }
        : { ok: false, reason: 'unreachable', detail: `the upstream is not available right now (${err.message})` };
    default:
      return { ok: false, reason: 'protocol', detail: `the upstream login did not complete (${cause || err.message})` };
  }
}

/** RFC 9051 §6.1.3; waits for the upstream to close, at most LOGOUT_WAIT_MS. Never throws. */
function logout(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => (clearTimeout(timer), socket.destroy(), resolve());
    const timer = setTimeout(done, LOGOUT_WAIT_MS);
    socket.once('close', done);
    socket.on('error', () => undefined);
    socket.resume(); // the login left it paused for a relay; read (and drop) the BYE
    socket.end('L LOGOUT\r\n');
  });
}
