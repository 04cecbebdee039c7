/**
 * One IMAP client connection, from greeting to relay: answers the pre-authentication commands
 * itself (RFC 9051 §6.1–6.2: CAPABILITY, NOOP, LOGOUT, ID, STARTTLS, LOGIN, AUTHENTICATE), asks the
 * Authenticator, logs in upstream and hands both sockets to the relay. The socket, the timers,
 * back-pressure and the TLS upgrade are the line-protocol ClientConnection's, shared with POP3.
 *
 * Must not: log anything the client sends before authentication (no protocol trace, no
 * passwords), or carry anything learnt in clear across STARTTLS (RFC 3207 §4.2's rule).
 */
import type net from 'node:net';
import type tls from 'node:tls';
import type { SignedIn } from '../auth/sign-in.js';
import type { Authenticator, UpstreamCredential } from '../auth/types.js';
import { ClientConnection } from '../line-protocol/client-connection.js';
import type { Logger } from '../log.js';
import type { TrackedConnection } from '../net/connection-registry.js';
import { SaslExchange, SASL_MECHANISMS, type SaslMechanism, type SaslStep } from '../sasl/exchange.js';
import type { LoggedIn, PreAuthUpstream } from '../upstream/imap/client.js';
import type { RevokeReason } from '../store/types.js';
import { postLoginCapabilities, preAuthCapabilities } from './capabilities.js';
import { astringValue, type Arg } from './grammar.js';
import { ID_RESPONSE, parseIdArgs, type IdParams } from './id.js';
import type { SessionLimits } from './limits.js';
import { CommandReceiver, type ReceiverResult } from './receiver.js';
import { Relay, type RelayEnd } from './relay.js';
import { authzRefusedReply, bye, reply, revokedBye } from './replies.js';
import { signIn } from './sign-in.js';
import { UpstreamSlot, type ReserveEarlyUpstream } from './upstream-slot.js';

export interface SessionDeps {
  auth: Authenticator;
  log: Logger;
  limits: SessionLimits;
  /** Opens a fresh upstream connection (greeting read, TLS in place). */
  connectUpstream: () => Promise<PreAuthUpstream>;
  /** The provider's latest pre-login capabilities, null while none is known. */
  upstreamCapabilities(): readonly string[] | null;
  /** A place in the budget of upstream connections opened before login, if one is free. */
  reserveEarlyUpstream: ReserveEarlyUpstream;
  /** Server TLS context for STARTTLS; null on an implicit-TLS listener. */
  starttlsContext: (() => tls.SecureContext) | null;
  /** Called once when the session has fully ended. */
  onClosed(): void;
}

type Command = Extract<ReceiverResult, { type: 'command' }>;

export class ImapSession implements TrackedConnection {
  // The pre-authentication parts (receiver, upstream slot, ID) are dropped at the hand-over to the
  // relay: an idle relayed session lives for hours, and tens of thousands of them add up.
  private receiver: CommandReceiver | null;
  private readonly conn: ClientConnection<ReceiverResult>;
  private failures = 0;
  private badCommands = 0;
  private clientId: IdParams | null = null;
  private sasl: { tag: string; exchange: SaslExchange } | null = null;
  private upstream: UpstreamSlot | null;
  private relay: Relay | null = null;
  private unwatch: (() => void) | null = null;

  constructor(
    socket: net.Socket,
    private readonly clientAddress: string,
    secure: boolean,
    private readonly deps: SessionDeps,
  ) {
    const receiver = new CommandReceiver(deps.limits);
    this.receiver = receiver;
    this.upstream = new UpstreamSlot(deps.connectUpstream, deps.reserveEarlyUpstream, deps.log);
    this.conn = new ClientConnection(socket, secure, {
      receiver,
      log: deps.log,
      limits: deps.limits,
      protocol: 'IMAP',
      backpressureEvent: 'imap.output_backpressure',
      lastWords: { idle: reply.bye(bye.idle), lifetime: reply.bye(bye.preAuthTooLong), internal: reply.bye(bye.internal) },
      onResult: (result) => this.handle(result),
      onTeardown: () => this.onTeardown(),
      onClosed: () => deps.onClosed(),
    });
  }

  start(): void {
    this.upstream?.open();
    this.conn.start(reply.greeting(this.capabilities()));
  }

  /** Server shutdown. */
  shutdown(): void {
    if (this.relay) this.relay.terminate(reply.bye(bye.shutdown));
    else this.closeWith(reply.bye(bye.shutdown));
  }

  // ---- input ---------------------------------------------------------------------------------

  private handle(result: Exclude<ReceiverResult, { type: 'needs-more-data' }>): void {
    switch (result.type) {
      case 'needs-literal':
        this.write(reply.continuation());
        return;
      case 'error': {
        const tag = this.sasl?.tag ?? result.tag;
        this.write(result.tooBig ? reply.tooBig(tag, result.text) : reply.bad(tag, result.text));
        if (result.fatal) return this.closeWith(reply.bye(bye.protocol));
        if (this.sasl) this.endSasl();
        return this.countBad();
      }
      case 'sasl-line':
        return this.onSaslLine(result.line);
      case 'command':
        return this.onCommand(result);
    }
  }

  private onCommand(cmd: Command): void {
    const { tag, name, args } = cmd;
    switch (name) {
      case 'CAPABILITY':
        if (args.length) return this.badSyntax(tag);
        this.write(reply.capability(this.capabilities()));
        return this.write(reply.ok(tag, 'CAPABILITY completed.'));
      case 'NOOP':
        if (args.length) return this.badSyntax(tag);
        return this.write(reply.ok(tag, 'NOOP completed.'));
      case 'LOGOUT':
        if (args.length) return this.badSyntax(tag);
        this.write(reply.bye(bye.logout));
        this.write(reply.ok(tag, 'LOGOUT completed.'));
        return this.closeWith(null);
      case 'ID':
        return this.onId(tag, args);
      case 'STARTTLS':
        if (args.length) return this.badSyntax(tag);
        return this.onStartTls(tag);
      case 'LOGIN':
        return this.onLogin(tag, args);
      case 'AUTHENTICATE':
        return this.onAuthenticate(tag, args);
      default:
        this.write(reply.unknownCommand(tag));
        return this.countBad();
    }
  }

  private badSyntax(tag: string): void {
    this.write(reply.bad(tag, 'Invalid arguments.'));
    this.countBad();
  }

  private countBad(): void {
    if (++this.badCommands >= this.deps.limits.maxBadCommands) this.closeWith(reply.bye(bye.tooManyBad));
  }

  private onId(tag: string, args: Arg[]): void {
    const params = parseIdArgs(args, this.deps.limits);
    if (params === null) return this.badSyntax(tag);
    this.clientId = params;
    this.write(ID_RESPONSE);
    this.write(reply.ok(tag, 'ID completed.'));
  }

  // ---- STARTTLS (RFC 9051 §6.2.1) ------------------------------------------------------------

  private onStartTls(tag: string): void {
    const context = this.deps.starttlsContext;
    if (!context || this.conn.secure) {
      this.write(reply.bad(tag, 'STARTTLS is not available on this connection.'));
      return this.countBad();
    }
    // Anything learnt in clear may be an attacker's (RFC 3207 §4.2's rule): ID parameters sent in
    // clear are not passed upstream; the client sends ID again over TLS if it wants to.
    this.clientId = null;
    this.conn.startTls(reply.ok(tag, 'Begin TLS negotiation now.'), context);
  }

  // ---- LOGIN and AUTHENTICATE ------------------------------------------------------------------

  private onLogin(tag: string, args: Arg[]): void {
    if (!this.conn.secure) return this.write(reply.privacyRequired(tag));
    const login = astringValue(args[0]);
    const password = astringValue(args[1]);
    if (args.length !== 2 || login === null || password === null) return this.badSyntax(tag);
    this.signIn(tag, login, password);
  }

  private onAuthenticate(tag: string, args: Arg[]): void {
    if (!this.conn.secure) return this.write(reply.privacyRequired(tag));
    const [mechArg, irArg] = args;
    if (!mechArg || mechArg.kind !== 'atom' || args.length > 2 || (irArg && irArg.kind !== 'atom')) return this.badSyntax(tag);
    const mechanism = mechArg.value.toUpperCase() as SaslMechanism;
    if (!SASL_MECHANISMS.includes(mechanism)) {
      this.write(reply.no(tag, 'Unsupported authentication mechanism.'));
      return this.countBad();
    }
    const exchange = new SaslExchange(mechanism);
    this.sasl = { tag, exchange };
    this.receiver?.setMode('sasl');
    this.onSaslStep(exchange.start(irArg?.kind === 'atom' ? irArg.value : undefined));
  }

  private onSaslLine(line: string): void {
    if (!this.sasl) return;
    this.onSaslStep(this.sasl.exchange.respond(line));
  }

  private onSaslStep(step: SaslStep): void {
    const tag = this.sasl!.tag;
    switch (step.kind) {
      case 'challenge':
        return this.write(`+ ${step.challenge}`);
      case 'cancelled':
        this.endSasl();
        return this.write(reply.bad(tag, 'AUTHENTICATE cancelled.'));
      case 'bad':
        this.endSasl();
        this.write(reply.bad(tag, step.text));
        return this.countBad();
      case 'authz-refused':
        this.endSasl();
        this.write(authzRefusedReply(tag));
        return this.countFailure();
      case 'done':
        this.endSasl();
        this.signIn(tag, step.login, step.password);
    }
  }

  private endSasl(): void {
    this.sasl = null;
    this.receiver?.setMode('command');
  }

  private countFailure(): void {
    if (++this.failures >= this.deps.limits.maxAuthFailures) this.closeWith(reply.bye(bye.tooManyFailures));
  }

  private signIn(tag: string, login: string, password: string): void {
    this.conn.runBusy(() => this.authenticate(tag, login, password));
  }

  private async authenticate(tag: string, login: string, password: string): Promise<void> {
    const upstream = this.upstream;
    if (!upstream) return; // relayed already: no command reaches this session any more
    const result = await signIn(
      { auth: this.deps.auth, log: this.deps.log, upstream },
      { tag, login, password, clientAddress: this.clientAddress, clientId: this.clientId },
    );
    if (this.conn.isClosed()) {
      if (result.kind === 'signed-in') result.upstream.socket.destroy();
      return;
    }
    if (result.kind === 'signed-in') return this.startRelay(tag, result);
    this.write(result.line);
    if (result.failure) this.countFailure();
    this.conn.resume();
  }

  // ---- relay -----------------------------------------------------------------------------------

  private startRelay(tag: string, { upstream: loggedIn, watch }: SignedIn<LoggedIn, UpstreamCredential>): void {
    const { socket: upstream, capabilities, leftover } = loggedIn;
    const { socket: client, pipelined } = this.conn.handOver();
    this.receiver = null;
    this.upstream?.close();
    this.upstream = null;
    this.clientId = null;
    // Many clients ignore untagged CAPABILITY after login; the tagged OK carries it (RFC 9051 §6.2.3).
    this.write(reply.loggedIn(tag, postLoginCapabilities(capabilities)));
    if (leftover.length) client.write(leftover);
    if (pipelined.length) upstream.write(pipelined);
    this.relay = new Relay(client, upstream, (end) => this.onRelayEnd(end));
    this.unwatch = watch((reason) => this.onRevoked(reason));
    this.relay.start();
  }

  private onRevoked(reason: RevokeReason): void {
    // Cut, not closed: what is already queued for the client must not keep reaching a revoked app.
    this.relay?.terminate(revokedBye(reason), { cut: true });
  }

  private onRelayEnd(end: RelayEnd): void {
    if (end.by === 'upstream' && !end.upstreamSaidBye) {
      this.deps.log.warn({ event: 'upstream.lost', code: end.error ? (end.error as NodeJS.ErrnoException).code : undefined }, 'upstream closed the session without BYE; told the client');
    }
    this.conn.teardown(`relay ended by ${end.by}`);
  }

  // ---- output and teardown --------------------------------------------------------------------

  private capabilities(): string {
    const secure = this.conn.secure;
    return preAuthCapabilities({ secure, starttlsOffered: !secure && this.deps.starttlsContext !== null }, this.deps.upstreamCapabilities());
  }

  private write(line: string): void {
    this.conn.write(line);
  }

  private closeWith(line: string | null): void {
    this.conn.closeWith(line);
  }

  private onTeardown(): void {
    this.unwatch?.();
    this.unwatch = null;
    this.upstream?.close();
  }
}
