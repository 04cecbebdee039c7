/**
 * `--check`: before saving credentials, log in to a configured mail upstream with them, so a
 * typo is caught at the admin's desk rather than by a user's mail client. The upstream is IMAP's
 * when one is configured, else POP3's, else SMTP's: whichever front the account will be used through.
 *
 * It logs in with the proxy's own upstream login (connectImapUpstream → login → LOGOUT;
 * loginPop3Upstream → QUIT; openUpstreamSmtp → QUIT), never a second client: a check that passed
 * where the proxy then fails (imapflow accepted a PREAUTH greeting without checking anything and
 * refused LOGINDISABLED servers the proxy logs in to with AUTHENTICATE PLAIN) is worse than none.
 * Reports a verdict, never the secret; nothing here logs.
 */
import type { Socket } from 'node:net';
import type { PlainCredential } from '../auth/types.js';
import type { MailUpstreamConfig } from '../config/schema.js';
import { PosternError } from '../errors.js';
import { smtpUpstreamTarget } from '../smtp/upstream-target.js';
import { classifyTransportError, transportCause } from '../upstream/classify.js';
import { connectImapUpstream } from '../upstream/imap/client.js';
import { loginPop3Upstream } from '../upstream/pop3/client.js';
import { UpstreamRefusal } from '../upstream/refusal.js';
import { openUpstreamSmtp } from '../upstream/smtp/connection.js';

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

export type CheckProtocol = 'imap' | 'pop3' | 'smtp';

export interface CheckTarget {
  protocol: CheckProtocol;
  upstream: MailUpstreamConfig;
}

type MailSections = Partial<Record<CheckProtocol, { upstream: MailUpstreamConfig } | undefined>>;

/** The upstream a check logs in to: IMAP's, else POP3's, else SMTP's; null with none configured. */
export function checkTarget(config: MailSections): CheckTarget | null {
  for (const protocol of ['imap', 'pop3', 'smtp'] as const) {
    const upstream = config[protocol]?.upstream;
    if (upstream) return { protocol, upstream };
  }
  return null;
}

/**
 * Throws only for a broken config (e.g. an unreadable CA file); every upstream outcome is a
 * CheckResult. `serverName`: what postern calls itself in SMTP's EHLO.
 */
export async function checkLogin(target: CheckTarget, credential: CheckCredential, serverName: string): Promise<CheckResult> {
  try {
    await LOGINS[target.protocol](target.upstream, upstreamCredential(credential), serverName);
    return { ok: true };
  } catch (err) {
    const failure = classifyTransportError(err);
    if (!failure.code.startsWith('UPSTREAM_')) throw failure;
    return verdict(failure);
  }
}

/** Each logs in the way the proxy does and logs out again; throws what the login throws. */
const LOGINS: Record<CheckProtocol, (upstream: MailUpstreamConfig, credential: PlainCredential, serverName: string) => Promise<void>> = {
  async imap(upstream, credential) {
    const session = await connectImapUpstream(upstream);
    const { socket } = await session.login({ credential, id: null, clientAddress: CHECK_CLIENT_ADDRESS });
    await logout(socket, 'L LOGOUT');
  },
  async pop3(upstream, credential) {
    const { socket } = await loginPop3Upstream(upstream, credential);
    await logout(socket, 'QUIT');
  },
  async smtp(upstream, credential, serverName) {
    const login = await openUpstreamSmtp(smtpUpstreamTarget(upstream, serverName), credential);
    if (login.kind === 'rejected') throw new PosternError('UPSTREAM_AUTH_REJECTED', 'upstream refused the login');
    await login.connection.quit();
  },
};

function upstreamCredential(credential: CheckCredential): PlainCredential {
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

/** IMAP LOGOUT (RFC 9051 §6.1.3) or POP3 QUIT (RFC 1939 §6); waits for the upstream to close, at most LOGOUT_WAIT_MS. Never throws. */
function logout(socket: Socket, command: string): Promise<void> {
  return new Promise((resolve) => {
    const done = () => (clearTimeout(timer), socket.destroy(), resolve());
    const timer = setTimeout(done, LOGOUT_WAIT_MS);
    socket.once('close', done);
    socket.on('error', () => undefined);
    socket.resume(); // the login left it paused for a relay; read (and drop) the goodbye
    socket.end(`${command}\r\n`);
  });
}
