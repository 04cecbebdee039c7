/**
 * A small SMTP client for the upstream submission server: connect (implicit TLS, STARTTLS or an
 * explicitly configured plain connection), EHLO, AUTH, then one command at a time.
 *
 * Why not nodemailer's SMTPConnection: it sends a whole envelope at once and reports a summary,
 * but postern relays *in step* — each MAIL, RCPT and DATA goes upstream when the client sends it
 * and the client gets the upstream's own reply to it. That needs a client whose unit is one
 * command and one reply. No pipelining (RFC 2920) on purpose: one outstanding command keeps the
 * mapping from client command to upstream reply trivial.
 *
 * It must not: write a command containing CR or LF (a client-controlled address would otherwise
 * inject commands into an authenticated session), accept plaintext queued before the STARTTLS
 * handshake (RFC 3207 §6, the CVE-2011-1575 class), or log anything it sends (AUTH carries the
 * real credentials).
 */
import net from 'node:net';
import type tls from 'node:tls';
import { PosternError } from '../../errors.js';
import type { UpstreamCredential } from '../../auth/types.js';
import { classifyTransportError } from '../classify.js';
import { openUpstreamSocket, upgradeToTls } from '../connect.js';
import { UpstreamRefusal, safeProviderText, saslMessages, sentSecrets } from '../refusal.js';
import { ABORT_RESPONSE, oauthInitialResponse, pickOAuthMechanism } from '../sasl-oauth.js';
import { saslPlainPayload } from '../sasl-plain.js';
import { ReplyParser, type SmtpReply } from './reply-parser.js';

export interface SmtpUpstreamTarget {
  host: string;
  port: number;
  security: 'tls' | 'starttls' | 'plain';
  tls: tls.ConnectionOptions;
  connectTimeoutMs: number;
  greetingTimeoutMs: number;
  /** Name postern gives in EHLO. */
  clientName: string;
  /** Tell the upstream the real client's address with XCLIENT, if it offers it (Postfix, Dovecot). */
  trusted?: boolean;
  /** Per command (RFC 5321 §4.5.3.2 allows 5 minutes for MAIL and RCPT). */
  commandTimeoutMs?: number;
  /** For the reply to the final dot (RFC 5321 §4.5.3.2: 10 minutes). */
  dataEndTimeoutMs?: number;
}

export type UpstreamLogin =
  | { kind: 'ready'; connection: SmtpUpstream }
  /** The upstream refused the credentials (535, or 5.7.8, to AUTH: RFC 4954 §6). */
  | { kind: 'rejected'; reply: SmtpReply };

const DEFAULT_COMMAND_TIMEOUT_MS = 5 * 60_000;
const DEFAULT_DATA_END_TIMEOUT_MS = 10 * 60_000;
const QUIT_TIMEOUT_MS = 2_000;
const UNSAFE_IN_COMMAND = /[\r\n\0]/;

/**
 * Connects, greets, authenticates. Throws PosternError (UPSTREAM_*) for faults, an UpstreamRefusal
 * for a refusal of the login for another reason than the credentials (authRefusal).
 * `clientAddress` is passed on with XCLIENT only to a `trusted` upstream.
 */
export async function openUpstreamSmtp(target: SmtpUpstreamTarget, credential: UpstreamCredential, clientAddress?: string): Promise<UpstreamLogin> {
  const socket = await connectSocket(target);
  const connection = new SmtpUpstream(socket, target);
  try {
    await connection.greet();
    if (target.trusted && clientAddress) await connection.forwardClientAddress(clientAddress);
    const reply = await connection.authenticate(credential);
    if (reply.code === 235) return { kind: 'ready', connection };
    connection.destroy();
    if (credentialsRefused(reply)) return { kind: 'rejected', reply };
    throw authRefusal(reply, credential);
  } catch (err) {
    connection.destroy();
    throw err;
  }
}

/** Greeting and EHLO (after TLS) only, no login: what the upstream announces. Throws PosternError. */
export async function probeUpstreamSmtp(target: SmtpUpstreamTarget): Promise<SmtpUpstream> {
  const connection = new SmtpUpstream(await connectSocket(target), target);
  try {
    await connection.greet();
    return connection;
  } catch (err) {
    connection.destroy();
    throw err;
  }
}

const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)/;

/** RFC 4954 §6: 535 5.7.8 "Authentication credentials invalid" (some servers say 535 alone). */
function credentialsRefused(reply: SmtpReply): boolean {
  return reply.code === 535 || ENHANCED.exec(reply.lines[0] ?? '')?.slice(1).join('.') === '5.7.8';
}

/**
 * Any other final answer to AUTH. 500–504 is a command the server could not take (postern's bug
 * or a broken server), and a 421 other than 4.7.x the server going away: faults. The rest is the
 * provider's refusal for another reason — 421 4.7.0 too many connections (Dovecot's
 * mail_max_userip_connections), 454 4.7.0 temporary failure, 525 5.7.13 account disabled, 534
 * 5.7.9 mechanism too weak, 538 5.7.11 encryption required, 550/554 5.7.x policy (RFC 4954 §6,
 * RFC 3463's X.7.X security or policy status, RFC 5248) — relayed with its codes and safe text.
 */
function authRefusal(reply: SmtpReply, credential: UpstreamCredential): PosternError {
  const enhanced = ENHANCED.exec(reply.lines[0] ?? '');
  const classMatches = enhanced?.[1] === String(reply.code)[0];
  const policy = classMatches && enhanced![2] === '7';
  if ((reply.code === 421 && !policy) || (reply.code >= 500 && reply.code <= 504)) {
    return new PosternError(reply.code === 421 ? 'UPSTREAM_UNAVAILABLE' : 'UPSTREAM_PROTOCOL', `upstream SMTP answered AUTH with ${reply.code}`);
  }
  const code = classMatches ? `${reply.code} ${enhanced!.slice(1).join('.')}` : String(reply.code);
  const text = reply.lines.map((l) => (classMatches ? l.replace(ENHANCED, '') : l).trim()).filter(Boolean).join(' ');
  const secrets = sentSecrets(credential, saslMessages(credential));
  return new UpstreamRefusal({ code, text: safeProviderText(text, secrets), temporary: reply.code < 500 });
}

function connectSocket(target: SmtpUpstreamTarget): Promise<net.Socket> {
  return openUpstreamSocket(target, `upstream SMTP ${target.host}:${target.port}`);
}

interface Waiter {
  resolve(reply: SmtpReply): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class SmtpUpstream {
  /** EHLO keywords (upper case) → their parameters. */
  capabilities = new Map<string, string>();
  private parser = new ReplyParser();
  private waiter: Waiter | null = null;
  private failure: Error | null = null;
  private readonly closeListeners = new Set<(err: Error) => void>();

  constructor(private socket: net.Socket, private readonly target: SmtpUpstreamTarget) {
    this.attach(socket);
  }

  get isOpen(): boolean {
    return this.failure === null;
  }

  /** Whether the upstream announced an EHLO extension, e.g. `8BITMIME`. */
  supports(keyword: string): boolean {
    return this.capabilities.has(keyword.toUpperCase());
  }

  /** Called once when the connection ends for any reason (including destroy()). */
  onClose(listener: (err: Error) => void): () => void {
    if (this.failure) {
      const failure = this.failure;
      queueMicrotask(() => listener(failure));
      return () => undefined;
    }
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  /** One command, its reply. `line` is without CRLF and must not contain CR, LF or NUL. */
  command(line: string, timeoutMs = this.target.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS): Promise<SmtpReply> {
    if (UNSAFE_IN_COMMAND.test(line)) return Promise.reject(new PosternError('INPUT_INVALID', 'SMTP command contains CR, LF or NUL'));
    if (this.failure) return Promise.reject(this.failure);
    this.socket.write(`${line}\r\n`);
    return this.read(timeoutMs);
  }

  /** Raw DATA bytes (already dot-stuffed). False: wait for drained() before writing more. */
  write(bytes: Buffer): boolean {
    if (this.failure) throw this.failure;
    return this.socket.write(bytes);
  }

  drained(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onClose = (err: Error) => (this.socket.removeListener('drain', onDrain), reject(err));
      const onDrain = () => (unsubscribe(), resolve());
      const unsubscribe = this.onClose(onClose);
      this.socket.once('drain', onDrain);
    });
  }

  /** Writes the end of the message and waits for the upstream's verdict on it. */
  finishData(tail: Buffer): Promise<SmtpReply> {
    if (this.failure) return Promise.reject(this.failure);
    this.socket.write(tail);
    return this.read(this.target.dataEndTimeoutMs ?? DEFAULT_DATA_END_TIMEOUT_MS);
  }

  /**
   * One BDAT chunk (RFC 3030) and the upstream's reply to it: for LAST, its verdict on the message.
   * The command line carries only the count postern computed, so nothing a client sent can end up in it.
   */
  chunk(parts: readonly Buffer[], last: boolean): Promise<SmtpReply> {
    if (this.failure) return Promise.reject(this.failure);
    const size = parts.reduce((total, part) => total + part.length, 0);
    this.socket.write(`BDAT ${size}${last ? ' LAST' : ''}\r\n`);
    for (const part of parts) this.socket.write(part);
    return this.read(last ? (this.target.dataEndTimeoutMs ?? DEFAULT_DATA_END_TIMEOUT_MS) : (this.target.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS));
  }

  /** Polite end: QUIT, then close whatever the answer. Never throws. */
  async quit(): Promise<void> {
    if (this.failure) return;
    await this.command('QUIT', QUIT_TIMEOUT_MS).catch(() => undefined);
    this.destroy();
  }

  destroy(): void {
    this.fail(new PosternError('UPSTREAM_UNAVAILABLE', 'upstream SMTP connection closed'));
  }

  /** @internal Greeting, EHLO and, for `starttls`, the upgrade and a second EHLO. */
  async greet(): Promise<void> {
    const greeting = await this.read(this.target.greetingTimeoutMs);
    if (greeting.code !== 220) throw new PosternError('UPSTREAM_UNAVAILABLE', `upstream SMTP greeted with ${greeting.code}`);
    await this.ehlo();
    if (this.target.security !== 'starttls') return;
    if (!this.supports('STARTTLS')) throw new PosternError('UPSTREAM_TLS_FAILED', 'upstream SMTP does not offer STARTTLS');
    const ready = await this.command('STARTTLS', this.target.greetingTimeoutMs);
    if (ready.code !== 220) throw new PosternError('UPSTREAM_TLS_FAILED', `upstream SMTP answered STARTTLS with ${ready.code}`);
    await this.upgrade();
    await this.ehlo(); // RFC 3207 §4.2: forget everything learnt before TLS
  }

  /**
   * @internal XCLIENT ADDR (Postfix XCLIENT_README; Dovecot submission from login_trusted_networks):
   * the upstream then applies its per-client policies (rate limits, logs) to the real client rather
   * than to postern. It answers with a fresh greeting, so EHLO again. A refusal changes nothing and
   * is not fatal: mail still flows, only attributed to postern's address.
   */
  async forwardClientAddress(address: string): Promise<boolean> {
    const offered = (this.capabilities.get('XCLIENT') ?? '').toUpperCase().split(/\s+/);
    if (!offered.includes('ADDR') || net.isIP(address) === 0) return false;
    const value = net.isIPv6(address) ? `IPV6:${address}` : address;
    const reply = await this.command(`XCLIENT ADDR=${value}`, this.target.greetingTimeoutMs);
    if (reply.code !== 220) return false;
    await this.ehlo();
    return true;
  }

  /**
   * @internal SASL PLAIN (with authzid for master users, RFC 4616) or LOGIN; an OAuth2 token with
   * OAUTHBEARER or XOAUTH2 (RFC 7628); returns the final reply.
   */
  async authenticate(credential: UpstreamCredential): Promise<SmtpReply> {
    const mechanisms = (this.capabilities.get('AUTH') ?? '').toUpperCase().split(/\s+/);
    const timeout = this.target.greetingTimeoutMs;
    if (credential.kind === 'bearer') {
      const mechanism = pickOAuthMechanism(mechanisms);
      if (!mechanism) throw new PosternError('UPSTREAM_PROTOCOL', 'upstream SMTP offers neither AUTH OAUTHBEARER nor AUTH XOAUTH2');
      const reply = await this.command(`AUTH ${mechanism} ${oauthInitialResponse(mechanism, credential)}`, timeout);
      // 334 with a JSON error (RFC 7628 §3.2.2): end the exchange to get the final failure.
      return reply.code === 334 ? this.command(ABORT_RESPONSE, timeout) : reply;
    }
    if (mechanisms.includes('PLAIN')) {
      const token = saslPlainPayload(credential);
      const reply = await this.command(`AUTH PLAIN ${token}`, timeout);
      return reply.code === 334 ? this.command(token, timeout) : reply;
    }
    // LOGIN has no authorization identity: only a password login can use it.
    if (mechanisms.includes('LOGIN') && credential.kind === 'password') {
      const step = await this.command('AUTH LOGIN', timeout);
      if (step.code !== 334) return step;
      const next = await this.command(Buffer.from(credential.username, 'utf8').toString('base64'), timeout);
      if (next.code !== 334) return next;
      return this.command(Buffer.from(credential.password, 'utf8').toString('base64'), timeout);
    }
    throw new PosternError('UPSTREAM_PROTOCOL', 'upstream SMTP offers no usable AUTH mechanism (need PLAIN, or LOGIN without a master user)');
  }

  private async ehlo(): Promise<void> {
    const reply = await this.command(`EHLO ${this.target.clientName}`, this.target.greetingTimeoutMs);
    if (reply.code !== 250) throw new PosternError('UPSTREAM_PROTOCOL', `upstream SMTP answered EHLO with ${reply.code}`);
    this.capabilities = new Map();
    for (const line of reply.lines.slice(1)) {
      const [keyword = '', ...params] = line.trim().split(/\s+/);
      if (keyword) this.capabilities.set(keyword.toUpperCase(), params.join(' '));
    }
  }

  private async upgrade(): Promise<void> {
    // Anything after the 220 arrived in plaintext and would be read as if it came over TLS (RFC 3207 §6).
    // A complete extra reply has already failed the connection (no command was waiting for it).
    if (this.failure) throw this.failure;
    if (this.parser.midReply) {
      const err = new PosternError('UPSTREAM_PROTOCOL', 'upstream SMTP sent data after its STARTTLS reply (possible injection)');
      this.fail(err);
      throw err;
    }
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    const secure = await upgradeToTls(plain, this.target, 'upstream SMTP STARTTLS').catch((err: Error) => {
      this.fail(err);
      throw err;
    });
    this.socket = secure;
    this.parser = new ReplyParser();
    this.attach(secure);
  }

  private attach(socket: net.Socket): void {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(classifyTransportError(err, 'upstream SMTP')));
    socket.on('close', () => this.fail(new PosternError('UPSTREAM_UNAVAILABLE', 'upstream SMTP closed the connection')));
  }

  private onData(chunk: Buffer): void {
    let replies: SmtpReply[];
    try {
      replies = this.parser.push(chunk);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    for (const reply of replies) {
      const waiter = this.waiter;
      if (waiter) {
        this.waiter = null;
        clearTimeout(waiter.timer);
        waiter.resolve(reply);
      } else {
        // One command in flight at most, so a reply nobody asked for is a shutdown notice (421)
        // or a desynchronised upstream; either way the connection is no longer trustworthy.
        const code = reply.code === 421 ? 'UPSTREAM_UNAVAILABLE' : 'UPSTREAM_PROTOCOL';
        this.fail(new PosternError(code, `upstream SMTP sent an unsolicited ${reply.code} reply`));
        return;
      }
    }
  }

  private read(timeoutMs: number): Promise<SmtpReply> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new PosternError('UPSTREAM_TIMEOUT', `upstream SMTP did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.socket.destroy();
    const waiter = this.waiter;
    this.waiter = null;
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.reject(err);
    }
    for (const listener of this.closeListeners) listener(err);
    this.closeListeners.clear();
  }
}
