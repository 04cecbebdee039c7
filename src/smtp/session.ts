/**
 * One client connection: authenticates it, holds its authenticated upstream connection and relays
 * each transaction in step (MAIL, each RCPT, DATA go upstream when the client sends them; the
 * client gets the upstream's reply). The client is told 250 for a message only after the upstream
 * said 250 for it, so no message is lost silently.
 *
 * The upstream connection lives as long as the session; if the upstream closes it between
 * transactions (its own idle timeout), the next MAIL opens a new one. A connection lost in the
 * middle of a transaction ends the client session with 421 (the client retries the message).
 */
import type { SMTPServerAddress, SMTPServerAuthentication, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { countsAsFailure, logInUpstream, signIn, type SignedIn, type SignInDeps, type UpstreamLogin } from '../auth/sign-in.js';
import type { Authenticator, UpstreamCredential } from '../auth/types.js';
import { isPosternError, PosternError } from '../errors.js';
import type { Logger } from '../log.js';
import { openUpstreamSmtp, type SmtpUpstream, type SmtpUpstreamTarget } from '../upstream/smtp/connection.js';
import { mailFromCommand, rcptToCommand } from './mail-params.js';
import { relayData } from './relay-data.js';
import * as replies from './replies.js';

/** What the session needs from smtp-server's connection object. */
export interface ClientLine {
  send(code: number, text: string): void;
  /** Resets the connection (after a 421), discarding whatever is still queued for the client. */
  reset(): void;
}

export interface SessionDeps {
  auth: Authenticator;
  target: SmtpUpstreamTarget;
  maxAuthFailures: number;
  maxMessageBytes: number;
  log: Logger;
  /** Told about every fresh upstream connection (the listener mirrors its extensions in EHLO). */
  onUpstream?: (upstream: SmtpUpstream) => void;
}

export class SubmissionSession {
  private failures = 0;
  private signedIn: SignedIn<SmtpUpstream, UpstreamCredential> | null = null;
  private upstream: SmtpUpstream | null = null;
  /** The upstream has accepted MAIL for a transaction that has not ended. */
  private inTransaction = false;
  private relayingData = false;
  private commandsInFlight = 0;
  private ended = false;
  private unwatch: () => void = () => undefined;
  private stopUpstreamWatch: () => void = () => undefined;

  private clientAddress = '';

  constructor(private readonly client: ClientLine, private readonly deps: SessionDeps, readonly log: Logger) {}

  async authenticate(auth: SMTPServerAuthentication, session: SMTPServerSession): Promise<{ user: string }> {
    this.clientAddress = session.remoteAddress;
    // RFC 4616: an authorization identity other than the user itself would be "act as someone else".
    if (auth.method === 'PLAIN' && auth.authzid && auth.authcid && auth.authzid !== auth.authcid) throw replies.identityMismatch();
    const result = await signIn(this.signInDeps(), {
      login: auth.username ?? '', password: auth.password ?? '', protocol: 'smtp', clientAddress: session.remoteAddress,
    }, { ...this.upstreamLogin(), sendable: smtpCanSend });
    if (result.kind !== 'signed-in') {
      const reply = replies.signInFailure(result, 'auth');
      throw countsAsFailure(result) ? this.refused(reply) : reply;
    }
    this.signedIn = result;
    this.useUpstream(result.upstream);
    this.unwatch = result.watch(() => this.revoked());
    return { user: result.accepted.login };
  }

  async mailFrom(address: SMTPServerAddress, session: SMTPServerSession): Promise<void> {
    if (!this.signedIn) throw session.secure ? replies.authRequired() : replies.tlsRequired();
    if (!this.upstream?.isOpen) await this.reconnectUpstream();
    const upstream = this.upstream!;
    if (this.inTransaction) {
      // smtp-server answers RSET (and a new EHLO) itself; the upstream still holds the old transaction.
      replies.relayed(await this.inStep(upstream.command('RSET'), replies.upstreamUnavailable));
      this.inTransaction = false;
    }
    const command = mailFromCommand(address, upstream);
    replies.relayed(await this.inStep(upstream.command(command), replies.upstreamUnavailable));
    this.inTransaction = true;
  }

  async rcptTo(address: SMTPServerAddress): Promise<void> {
    const upstream = this.transactionUpstream();
    replies.relayed(await this.inStep(upstream.command(rcptToCommand(address, upstream)), replies.upstreamLostClosing));
  }

  async data(stream: SMTPServerDataStream): Promise<string> {
    const upstream = this.transactionUpstream();
    this.relayingData = true;
    try {
      const result = await relayData(stream, upstream, this.deps.maxMessageBytes).catch((err: unknown) => {
        // The client stream broke: the client went away or the session was ended (revocation,
        // shutdown). relayData has dropped the upstream; there is nobody left to answer.
        this.inTransaction = false;
        this.log.info({ event: 'smtp.data_aborted', err }, 'client stream ended before the message was complete');
        throw replies.connectionEnded();
      });
      if (result.kind === 'oversized') {
        this.inTransaction = false;
        this.log.info({ event: 'smtp.message_oversized', bytes: stream.byteLength }, 'message over the size limit; upstream transaction aborted');
        throw replies.messageTooBig(this.deps.maxMessageBytes);
      }
      if (result.kind === 'upstream-lost') {
        this.inTransaction = false;
        this.log.warn({ event: 'upstream.fault', stage: 'data', code: result.error.code, err: result.error }, 'upstream lost during DATA');
        throw replies.upstreamLostDuringMessage();
      }
      this.inTransaction = result.stage === 'start'; // refused DATA leaves the upstream transaction open
      this.log.info({ event: result.reply.code < 300 ? 'smtp.message_relayed' : 'smtp.message_refused', code: result.reply.code, bytes: stream.byteLength }, 'DATA relayed');
      return replies.relayed(result.reply);
    } finally {
      this.relayingData = false;
    }
  }

  /** The client is gone (or being closed): release everything. Idempotent. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.unwatch();
    this.stopUpstreamWatch();
    const upstream = this.upstream;
    this.upstream = null;
    // QUIT in the middle of DATA would be message content: drop the connection instead.
    if (upstream && this.relayingData) upstream.destroy();
    else if (upstream) void upstream.quit();
  }

  /** Ends the client session with a 421 and drops the upstream at once (revocation, shutdown). */
  terminate(reply: replies.SmtpReplyError): void {
    this.stopUpstreamWatch();
    this.upstream?.destroy();
    this.client.send(reply.responseCode, reply.message);
    this.end();
  }

  private refused(reply: replies.SmtpReplyError): replies.SmtpReplyError {
    this.failures++;
    if (this.failures >= this.deps.maxAuthFailures) {
      // The 535 goes out through the hook callback first; the 421 right after it closes the connection.
      const bye = replies.tooManyAuthFailures();
      setImmediate(() => this.client.send(bye.responseCode, bye.message));
    }
    return reply;
  }

  /** Logs in upstream again with the session's credential (the upstream closed the last connection). */
  private async reconnectUpstream(): Promise<void> {
    const result = await logInUpstream(this.signInDeps(), this.signedIn!, { ...this.upstreamLogin(), announce: () => false });
    if (result.kind !== 'signed-in') throw replies.signInFailure(result, 'transaction');
    this.useUpstream(result.upstream);
  }

  private signInDeps(): SignInDeps {
    return { auth: this.deps.auth, log: this.log };
  }

  private upstreamLogin(): UpstreamLogin<SmtpUpstream> {
    return {
      protocol: 'smtp',
      login: async (credential) => {
        const login = await openUpstreamSmtp(this.deps.target, credential, this.clientAddress);
        if (login.kind === 'rejected') throw new PosternError('UPSTREAM_AUTH_REJECTED', `upstream SMTP answered AUTH with ${login.reply.code}`);
        return login.connection;
      },
    };
  }

  private useUpstream(connection: SmtpUpstream): void {
    this.deps.onUpstream?.(connection);
    if (this.ended) {
      // The client went (or was sent away) while the upstream login ran.
      void connection.quit();
      throw replies.connectionEnded();
    }
    this.upstream = connection;
    this.inTransaction = false;
    this.stopUpstreamWatch = connection.onClose((err) => this.upstreamClosed(err));
  }

  private upstreamClosed(err: Error): void {
    if (this.ended || this.relayingData || this.commandsInFlight > 0) return; // those report their own failure
    if (this.inTransaction) {
      this.log.warn({ event: 'upstream.fault', stage: 'transaction', err }, 'upstream lost during a transaction');
      this.terminate(replies.upstreamLostClosing());
    }
  }

  /** One upstream command; if the upstream fails meanwhile, the client gets `onFault`'s reply. */
  private async inStep<T>(pending: Promise<T>, onFault: () => replies.SmtpReplyError): Promise<T> {
    this.commandsInFlight++;
    try {
      return await pending;
    } catch (err) {
      this.log.warn({ event: 'upstream.fault', stage: 'command', code: isPosternError(err) ? err.code : undefined, err }, 'upstream failed during a command');
      this.upstream?.destroy();
      this.inTransaction = false;
      throw onFault();
    } finally {
      this.commandsInFlight--;
    }
  }

  private transactionUpstream(): SmtpUpstream {
    if (!this.upstream?.isOpen || !this.inTransaction) throw replies.upstreamLostClosing();
    return this.upstream;
  }

  private revoked(): void {
    if (this.ended) return;
    this.terminate(replies.passwordRevoked());
    // Cut, not closed: replies queued for a client that is not reading must not keep flowing.
    this.client.reset();
  }
}

/**
 * SMTP sends a password with PLAIN or LOGIN, a master login with PLAIN only (RFC 4616), an OAuth2
 * token with OAUTHBEARER or XOAUTH2 (RFC 7628).
 */
function smtpCanSend(credential: UpstreamCredential): credential is UpstreamCredential {
  switch (credential.kind) {
    case 'password':
    case 'master':
    case 'bearer':
      return true;
  }
}
