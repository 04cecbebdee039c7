/**
 * The upstream half of a POP3 session: connect (implicit TLS, STLS, or plaintext only when
 * configured), read the greeting, log in with the account's real credentials and hand the raw
 * socket to the relay. Called once postern has accepted the app password (no early connection:
 * POP3 clients log in straight away, and an idle pre-auth one must not hold a provider login slot).
 *
 * The login: AUTH PLAIN with an initial response (RFC 5034 §4, RFC 4616) for a master user (only
 * SASL can name the account as authorization identity) or when CAPA lists SASL PLAIN; otherwise
 * USER/PASS (RFC 1939 §7). Never APOP: postern has no shared secret for it, and the real password
 * goes only over the TLS the config demands (connect.ts never falls back).
 */
import { safeProviderText, sentSecrets, UpstreamRefusal } from '../refusal.js';
import type net from 'node:net';
import type { PlainCredential } from '../../auth/types.js';
import type { MailUpstreamConfig } from '../../config/schema.js';
import { PosternError } from '../../errors.js';
import { mailEndpoint, openUpstreamSocket, upgradeToTls, upstreamTls } from '../connect.js';
import { saslPlainPayload } from '../sasl-plain.js';
import { Pop3LineReader } from './line-reader.js';

export interface Pop3LoggedIn {
  socket: net.Socket;
  /** Bytes the upstream sent after the login's +OK (forward to the client as they are). */
  leftover: Buffer;
}

/** Reads the CA file now, so a bad path fails start-up instead of every login. */
export function preparePop3UpstreamTls(config: MailUpstreamConfig): void {
  if (config.security !== 'plain') upstreamTls(config);
}

export async function loginPop3Upstream(config: MailUpstreamConfig, credential: PlainCredential): Promise<Pop3LoggedIn> {
  let socket = await openUpstreamSocket(mailEndpoint(config), 'POP3 upstream connection');
  socket.setKeepAlive(true, 60_000);
  socket.on('error', () => undefined); // the reader reports errors from here on
  const reader = new Pop3LineReader(socket);
  const timeout = config.greetingTimeoutMs;
  try {
    const greeting = await reader.line(timeout);
    if (!greeting.startsWith('+OK')) throw new PosternError('UPSTREAM_UNAVAILABLE', 'upstream POP3 greeting was not +OK');
    if (config.security === 'starttls') socket = await startTls(socket, reader, config);
    const caps = await capabilities(socket, reader, timeout);
    await logIn(socket, reader, credential, caps, timeout);
    return { socket, leftover: reader.detach() };
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

/** RFC 2595 §4: STLS, then a handshake; what came in clear is dropped, CAPA asked again. */
async function startTls(plain: net.Socket, reader: Pop3LineReader, config: MailUpstreamConfig): Promise<net.Socket> {
  plain.write('STLS\r\n');
  const answer = await reader.line(config.greetingTimeoutMs);
  // A TLS failure, as for IMAP and SMTP: the configured security cannot be had (never a fallback to clear).
  if (!answer.startsWith('+OK')) throw new PosternError('UPSTREAM_TLS_FAILED', 'upstream refused STLS');
  reader.detach(false);
  const secure = await upgradeToTls(plain, mailEndpoint(config), 'POP3 upstream STLS');
  secure.on('error', () => undefined);
  reader.rebind(secure);
  return secure;
}

/** CAPA (RFC 2449); a server without it gets USER/PASS. */
async function capabilities(socket: net.Socket, reader: Pop3LineReader, timeout: number): Promise<string[]> {
  socket.write('CAPA\r\n');
  const [status, ...lines] = await reader.multiLine(timeout);
  return status!.startsWith('+OK') ? lines.map((l) => l.toUpperCase()) : [];
}

async function logIn(socket: net.Socket, reader: Pop3LineReader, credential: PlainCredential, caps: string[], timeout: number): Promise<void> {
  if (usesSaslPlain(credential, caps)) {
    socket.write(`AUTH PLAIN ${saslPlainPayload(credential)}\r\n`);
    return verdict(await reader.line(timeout), credential);
  }
  socket.write(`USER ${credential.username}\r\n`);
  const user = await reader.line(timeout);
  if (!user.startsWith('+OK')) return verdict(user, credential);
  socket.write(`PASS ${credential.password}\r\n`);
  verdict(await reader.line(timeout), credential);
}

function usesSaslPlain(credential: PlainCredential, caps: string[]): boolean {
  switch (credential.kind) {
    case 'master':
      return true;
    case 'password':
      // USER/PASS carry no CR, LF or (for USER) space; SASL PLAIN carries any password.
      return caps.some((c) => /^SASL\b.*\bPLAIN\b/.test(c)) || /[\r\n]/.test(credential.password) || /[\s]/.test(credential.username);
  }
}

/**
 * RFC 3206 response codes: [SYS/TEMP], [SYS/PERM], [IN-USE] and [LOGIN-DELAY] say the login
 * failed for another reason than the credentials — the provider's refusal, passed on to the client
 * with its code (issue 18), never a verdict on the stored credentials; [AUTH] or no code is a
 * refusal of them.
 */
function verdict(line: string, credential: PlainCredential): void {
  if (line.startsWith('+OK')) return;
  if (!line.startsWith('-ERR')) throw new PosternError('UPSTREAM_PROTOCOL', 'upstream answered neither +OK nor -ERR to the login');
  const match = /^-ERR \[([A-Z/-]+)\]\s*(.*)$/i.exec(line);
  const code = match?.[1]?.toUpperCase();
  if (code && code !== 'AUTH') {
    const text = safeProviderText(match?.[2] ?? '', sentSecrets(credential));
    throw new UpstreamRefusal({ code, text, temporary: code !== 'SYS/PERM' });
  }
  throw new PosternError('UPSTREAM_AUTH_REJECTED', `upstream refused the login${code ? ` [${code}]` : ''}`);
}
