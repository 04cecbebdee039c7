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
import type { AcceptedAuth, Authenticator } from '../auth/types.js';
import { isPosternError } from '../errors.js';
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
  private accepted: AcceptedAuth | null = null;
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
    const outcome = await this.deps.auth.authenticate({
      login: auth.username ?? '', password: auth.password ?? '', protocol: 'smtp', clientAddress: session.remoteAddress,
    });
    if (outcome.kind !== 'accepted') throw this.refused(replies.authRefusal(outcome));
    this.accepted = outcome;
    this.unwatch = this.deps.auth.watchRevocation(outcome.passwordId, (reason) => this.revoked(reason));
    try {
      await this.connectUpstream(replies.upstreamUnavailableAtAuth);
    } catch (err) {
      this.accepted = null;
      this.unwatch();
      throw err;
    }
    this.log.info({ event: 'smtp.authenticated', user: outcome.login, passwordId: outcome.publicId }, 'session authenticated, upstream ready');
    return { user: outcome.login };
  }

  async mailFrom(address: SMTPServerAddress, session: SMTPServerSession): Promise<void> {
    if (!this.accepted) throw session.secure ? replies.authRequired() : replies.tlsRequired();
    if (!this.upstream?.isOpen) await this.connectUpstream(replies.upstreamUnavailable);
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

  private async connectUpstream(unavailable: () => replies.SmtpReplyError): Promise<void> {
    const accepted = this.accepted!;
    let login;
    try {
      login = await openUpstreamSmtp(this.deps.target, accepted.credential, this.clientAddress);
    } catch (err) {
      this.log.warn({ event: 'upstream.fault', stage: 'connect', code: isPosternError(err) ? err.code : undefined, err }, 'upstream SMTP unavailable');
      throw unavailable();
    }
    if (login.kind === 'rejected') {
      this.deps.auth.reportUpstreamRejected(accepted, 'smtp');
      throw replies.upstreamRefusedStoredCredentials();
    }
    this.deps.auth.reportUpstreamAccepted(accepted);
    this.deps.onUpstream?.(login.connection);
    if (this.ended) {
      void login.connection.quit();
      throw replies.passwordRevoked();
    }
    this.upstream = login.connection;
    this.inTransaction = false;
    this.stopUpstreamWatch = login.connection.onClose((err) => this.upstreamClosed(err));
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

  private revoked(reason: string): void {
    if (this.ended) return;
    this.log.warn({ event: 'session.revoked', user: this.accepted?.login, passwordId: this.accepted?.publicId, reason }, 'app password revoked; ending session');
    this.terminate(replies.passwordRevoked());
    // Cut, not closed: replies queued for a client that is not reading must not keep flowing.
    this.client.reset();
  }
}
