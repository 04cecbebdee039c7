/**
 * The upstream half of an IMAP session before authentication: connect (implicit TLS, STARTTLS,
 * or plaintext only when configured), read the greeting, and — once postern has accepted the
 * client — log in with the account's real credentials and hand the raw socket to the relay.
 *
 * Why hand-written rather than imapflow + unbind(): postern needs exactly four commands
 * (STARTTLS, CAPABILITY, ID, LOGIN/AUTHENTICATE PLAIN), the raw tagged answer of the login (its
 * CAPABILITY code is what the client gets), every byte the upstream sent after it, and a
 * connection that is opened when the client connects but logged in only later. imapflow issues
 * its own post-login commands (CAPABILITY, NAMESPACE, ENABLE, COMPRESS) that would change the
 * session state the client believes it is in, and connects and logs in as one step.
 */
import net from 'node:net';
import type { BearerCredential, PasswordCredential, PlainCredential, UpstreamCredential } from '../../auth/types.js';
import type { MailUpstreamConfig } from '../../config/schema.js';
import { PosternError } from '../../errors.js';
import { mailEndpoint, openUpstreamSocket, upgradeToTls, upstreamTls } from '../connect.js';
import { UpstreamRefusal, safeProviderText, saslMessages, sentSecrets } from '../refusal.js';
import { saslPlainPayload } from '../sasl-plain.js';
import { ABORT_RESPONSE, oauthInitialResponse, pickOAuthMechanism } from '../sasl-oauth.js';
import { ResponseReader } from './response-reader.js';
import { capabilitiesFrom, codeName, hasCapability, idList, isQuotable, parseStatus, quote, type StatusResponse } from './wire.js';

export type IdPairs = ReadonlyArray<readonly [string, string | null]>;

export interface LoginRequest {
  credential: UpstreamCredential;
  /** The client's ID parameters, if it sent ID (RFC 2971). */
  id: IdPairs | null;
  clientAddress: string;
}

export interface LoggedIn {
  socket: net.Socket;
  /** Post-login capabilities, for the client's tagged OK. */
  capabilities: string[];
  /** Bytes the upstream sent after the login response (forward to the client as they are). */
  leftover: Buffer;
}

export interface PreAuthUpstream {
  /** The capabilities the upstream announces before login (after STARTTLS, if used). */
  readonly preLoginCapabilities: readonly string[];
  login(request: LoginRequest): Promise<LoggedIn>;
  /** True while the connection is open and not yet used. */
  usable(): boolean;
  close(): void;
}

export async function connectImapUpstream(config: MailUpstreamConfig): Promise<PreAuthUpstream> {
  const socket = await openSocket(config);
  const reader = new ResponseReader(socket);
  try {
    const greeting = parseStatus(await reader.read(config.greetingTimeoutMs));
    if (!greeting || greeting.tag !== '*' || greeting.status !== 'OK') {
      throw new PosternError(greeting?.status === 'BYE' ? 'UPSTREAM_UNAVAILABLE' : 'UPSTREAM_PROTOCOL', 'upstream greeting was not * OK');
    }
    const session = new UpstreamSession(socket, reader, config, capabilitiesFrom(greeting, null));
    if (config.security === 'starttls') await session.startTls();
    // Learn the capabilities now (the connection is opened early, while the client is still
    // busy with its own handshake), so the login itself costs no extra round trip.
    await session.loadCapabilities();
    return session;
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

/** Reads the CA file now, so a bad path fails start-up instead of every login. */
export function prepareUpstreamTls(config: MailUpstreamConfig): void {
  if (config.security !== 'plain') upstreamTls(config);
}

async function openSocket(config: MailUpstreamConfig): Promise<net.Socket> {
  const socket = await openUpstreamSocket(mailEndpoint(config));
  socket.setKeepAlive(true, 60_000);
  socket.on('error', ignoreError); // the reader reports errors from here on
  return socket;
}

/** One function for every upstream socket, not a closure each: the relay keeps the sockets for hours. */
function ignoreError(): void {}

class UpstreamSession implements PreAuthUpstream {
  private tagCounter = 0;
  private used = false;
  private closed = false;
  private readonly onClose = () => (this.closed = true);

  constructor(
    private socket: net.Socket,
    private readonly reader: ResponseReader,
    private readonly config: MailUpstreamConfig,
    private capabilities: string[] | null,
  ) {
    socket.once('close', this.onClose);
  }

  usable(): boolean {
    return !this.used && !this.closed && !this.socket.destroyed;
  }

  get preLoginCapabilities(): readonly string[] {
    return this.capabilities ?? [];
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }

  /** RFC 9051 §6.2.1; capabilities learnt before TLS are forgotten. */
  async startTls(): Promise<void> {
    const done = await this.exchange('STARTTLS');
    // A TLS failure, as for SMTP: the configured security cannot be had (never a fallback to clear).
    if (done.status !== 'OK') throw new PosternError('UPSTREAM_TLS_FAILED', 'upstream refused STARTTLS');
    this.reader.detach(false);
    const secure = await upgradeToTls(this.socket, mailEndpoint(this.config));
    secure.on('error', ignoreError);
    // The TLS socket closes with the plain one: one listener on it is enough.
    this.socket.off('close', this.onClose);
    secure.once('close', this.onClose);
    this.socket = secure;
    this.reader.rebind(secure);
    this.capabilities = null;
  }

  async login(request: LoginRequest): Promise<LoggedIn> {
    if (!this.usable()) throw new PosternError('UPSTREAM_UNAVAILABLE', 'upstream connection is no longer usable');
    this.used = true;
    try {
      return await this.doLogin(request);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  async loadCapabilities(): Promise<void> {
    this.capabilities ??= await this.fetchCapabilities();
  }

  private async doLogin(request: LoginRequest): Promise<LoggedIn> {
    const caps = this.capabilities ?? (await this.fetchCapabilities());
    const idTag = this.sendId(request);
    const { status, untaggedCaps } = await this.authenticate(request.credential, caps, idTag);
    if (status.status !== 'OK') throw loginRefusal(status, request.credential);
    const capabilities = capabilitiesFrom(status, untaggedCaps) ?? (await this.fetchCapabilities());
    const leftover = this.reader.detach();
    // The socket is the relay's from here on: a listener of ours would keep this session, its
    // reader and its capabilities alive for as long as the relayed session lasts (hours).
    this.socket.off('close', this.onClose);
    return { socket: this.socket, capabilities, leftover };
  }

  /** Sent without waiting: its answer is skipped while reading the login's. */
  private sendId(request: LoginRequest): string | null {
    const pairs: Array<readonly [string, string | null]> = (request.id ?? []).filter(([k]) => !/^x-originating-|^x-connected-/i.test(k));
    if (this.config.trusted) pairs.push(['x-originating-ip', request.clientAddress]);
    if (request.id === null && !this.config.trusted) return null;
    const tag = this.nextTag();
    this.socket.write(`${tag} ID ${idList(pairs)}\r\n`);
    return tag;
  }

  private async authenticate(credential: UpstreamCredential, caps: string[], idTag: string | null): Promise<{ status: StatusResponse; untaggedCaps: string | null }> {
    const parts = loginParts(credential, caps);
    const tag = this.nextTag();
    this.socket.write(`${tag} ${parts[0]}\r\n`);
    let next = 1;
    let untaggedCaps: string | null = null;
    for (;;) {
      const line = await this.reader.read(this.config.greetingTimeoutMs);
      if (line.startsWith('+')) {
        const part = parts[next++];
        if (part === undefined) throw new PosternError('UPSTREAM_PROTOCOL', 'unexpected continuation from upstream during login');
        this.socket.write(`${part}\r\n`);
        continue;
      }
      if (/^\* CAPABILITY /i.test(line)) untaggedCaps = line;
      const status = parseStatus(line);
      if (status?.tag === '*' && status.status === 'BYE') throw new PosternError('UPSTREAM_UNAVAILABLE', 'upstream said BYE during login');
      if (status && status.tag === tag) return { status, untaggedCaps };
      if (status && status.tag !== '*' && status.tag !== idTag) throw new PosternError('UPSTREAM_PROTOCOL', 'upstream answered an unknown tag');
    }
  }

  private async fetchCapabilities(): Promise<string[]> {
    let caps: string[] | null = null;
    const done = await this.exchange('CAPABILITY', (line) => (caps = capabilitiesFrom(null, line) ?? caps));
    if (done.status !== 'OK' || !caps) throw new PosternError('UPSTREAM_PROTOCOL', 'upstream CAPABILITY failed');
    return caps;
  }

  private async exchange(command: string, onUntagged?: (line: string) => void): Promise<StatusResponse> {
    const tag = this.nextTag();
    this.socket.write(`${tag} ${command}\r\n`);
    for (;;) {
      const line = await this.reader.read(this.config.greetingTimeoutMs);
      const status = parseStatus(line);
      if (status?.tag === tag) return status;
      if (status?.tag === '*' && status.status === 'BYE') throw new PosternError('UPSTREAM_UNAVAILABLE', 'upstream said BYE');
      onUntagged?.(line);
    }
  }

  private nextTag(): string {
    return `P${++this.tagCounter}`;
  }
}

/**
 * The login command and its continuation parts. Master-user credentials need SASL PLAIN with an
 * authorization identity (RFC 4616); so does an upstream that advertises LOGINDISABLED. LOGIN
 * uses quoted strings, or literals for values a quoted string cannot carry.
 */
function loginParts(credential: UpstreamCredential, caps: string[]): string[] {
  switch (credential.kind) {
    case 'master':
      return plainParts(credential, caps);
    case 'password':
      return hasCapability(caps, 'LOGINDISABLED') ? plainParts(credential, caps) : loginCommandParts(credential, caps);
    case 'bearer':
      return bearerParts(credential, caps);
  }
}

/**
 * AUTHENTICATE OAUTHBEARER or XOAUTH2, whichever the upstream advertises (RFC 7628 §4), with
 * SASL-IR when offered (RFC 4959). The last part answers the error challenge of a refusal.
 */
function bearerParts(credential: BearerCredential, caps: string[]): string[] {
  const offered = caps.filter((c) => /^AUTH=/i.test(c)).map((c) => c.slice(5).toUpperCase());
  const mechanism = pickOAuthMechanism(offered);
  if (!mechanism) throw new PosternError('UPSTREAM_PROTOCOL', 'upstream IMAP offers neither AUTH=OAUTHBEARER nor AUTH=XOAUTH2');
  const payload = oauthInitialResponse(mechanism, credential);
  return hasCapability(caps, 'SASL-IR')
    ? [`AUTHENTICATE ${mechanism} ${payload}`, ABORT_RESPONSE]
    : [`AUTHENTICATE ${mechanism}`, payload, ABORT_RESPONSE];
}

function plainParts(credential: PlainCredential, caps: string[]): string[] {
  const payload = saslPlainPayload(credential);
  return hasCapability(caps, 'SASL-IR') ? [`AUTHENTICATE PLAIN ${payload}`] : ['AUTHENTICATE PLAIN', payload];
}

function loginCommandParts(credential: PasswordCredential, caps: string[]): string[] {
  const nonSync = hasCapability(caps, 'LITERAL+');
  const parts: string[] = ['LOGIN'];
  for (const value of [credential.username, credential.password]) {
    if (isQuotable(value)) {
      parts[parts.length - 1] += ` ${quote(value)}`;
    } else {
      const size = Buffer.byteLength(value, 'utf8');
      parts[parts.length - 1] += ` {${size}${nonSync ? '+' : ''}}`;
      if (nonSync) parts[parts.length - 1] += `\r\n${value}`;
      else parts.push(value);
    }
  }
  return parts;
}

/**
 * RFC 5530 response codes that refuse a login for a reason other than the credentials, and
 * whether the refusal passes by itself (LIMIT: too many connections; INUSE: another session holds
 * the mailbox; UNAVAILABLE: the provider's own back end is away) or needs someone to act.
 * PRIVACYREQUIRED means postern's own upstream leg lacks TLS: an administrator's matter.
 */
const OTHER_REFUSALS: ReadonlyMap<string, { temporary: boolean }> = new Map([
  ['LIMIT', { temporary: true }],
  ['INUSE', { temporary: true }],
  ['UNAVAILABLE', { temporary: true }],
  ['SERVERBUG', { temporary: true }],
  ['OVERQUOTA', { temporary: false }],
  ['CONTACTADMIN', { temporary: false }],
  ['EXPIRED', { temporary: false }],
  ['PRIVACYREQUIRED', { temporary: false }],
  ['NOPERM', { temporary: false }],
  ['CANNOT', { temporary: false }],
]);

/**
 * A tagged NO to LOGIN/AUTHENTICATE: AUTHENTICATIONFAILED, AUTHORIZATIONFAILED, no code at all
 * (RFC 9051 §6.2.3's plain NO) and any code not listed above say the stored credentials are wrong;
 * a listed code is the provider's other refusal, passed on with its code and safe text. A BAD is
 * postern's or the server's bug, a fault.
 */
function loginRefusal(status: StatusResponse, credential: UpstreamCredential): PosternError {
  const code = codeName(status.code);
  if (status.status !== 'NO') return new PosternError('UPSTREAM_PROTOCOL', `upstream answered ${status.status}${code ? ` [${code}]` : ''} to the login`);
  const other = code ? OTHER_REFUSALS.get(code) : undefined;
  if (!code || !other) return new PosternError('UPSTREAM_AUTH_REJECTED', `upstream refused the login${code ? ` [${code}]` : ''}`);
  return new UpstreamRefusal({ code, text: safeProviderText(status.text, sentSecrets(credential, saslMessages(credential))), temporary: other.temporary });
}
