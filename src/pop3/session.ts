/**
 * One POP3 client connection, from greeting to relay: answers the AUTHORIZATION-state commands
 * itself (RFC 1939 §4/§7: USER, PASS, QUIT, NOOP; RFC 2449 CAPA; RFC 2595 STLS; RFC 5034 AUTH
 * PLAIN/LOGIN with initial response), asks the sign-in pipeline, and hands both sockets to the
 * relay. APOP is refused: it proves knowledge of the clear password, which postern never keeps.
 * The socket, the timers, back-pressure and the STLS upgrade are the line-protocol
 * ClientConnection's, shared with IMAP.
 *
 * Must not: log anything the client sends before authentication (no protocol trace, no
 * passwords), or take a password in clear (USER, PASS and AUTH need TLS; CAPA in clear lists
 * neither).
 */
import type net from 'node:net';
import type tls from 'node:tls';
import type { SignedIn } from '../auth/sign-in.js';
import type { Authenticator, PlainCredential } from '../auth/types.js';
import { ClientConnection } from '../line-protocol/client-connection.js';
import type { Logger } from '../log.js';
import type { TrackedConnection } from '../net/connection-registry.js';
import { SaslExchange, SASL_MECHANISMS, type SaslMechanism, type SaslStep } from '../sasl/exchange.js';
import type { Pop3LoggedIn } from '../upstream/pop3/client.js';
import type { SessionLimits } from './limits.js';
import { CommandReceiver, type Command, type ReceiverResult } from './receiver.js';
import { Relay, type RelayEnd } from './relay.js';
import { authzRefusedReply, capabilities, reply } from './replies.js';
import { signIn } from './sign-in.js';

export interface SessionDeps {
  auth: Authenticator;
  log: Logger;
  limits: SessionLimits;
  /** Connects and logs in upstream with the account's credential. */
  loginUpstream(credential: PlainCredential): Promise<Pop3LoggedIn>;
  /** Server TLS context for STLS; null on an implicit-TLS listener. */
  starttlsContext: (() => tls.SecureContext) | null;
  /** Called once when the session has fully ended. */
  onClosed(): void;
}

export class Pop3Session implements TrackedConnection {
  private readonly receiver: CommandReceiver;
  private readonly conn: ClientConnection<ReceiverResult>;
  private failures = 0;
  private badCommands = 0;
  /** RFC 1939 §7: PASS only straight after a successful USER. */
  private user: string | null = null;
  private sasl: SaslExchange | null = null;
  private relay: Relay | null = null;
  private unwatch: (() => void) | null = null;

  constructor(
    socket: net.Socket,
    private readonly clientAddress: string,
    secure: boolean,
    private readonly deps: SessionDeps,
  ) {
    this.receiver = new CommandReceiver(deps.limits);
    this.conn = new ClientConnection(socket, secure, {
      receiver: this.receiver,
      log: deps.log,
      limits: deps.limits,
      protocol: 'POP3',
      // RFC 1939 §3: an autologout closes "without sending any response".
      lastWords: { idle: null, lifetime: null, internal: reply.internal() },
      onResult: (result) => this.handle(result),
      onTeardown: () => this.onTeardown(),
      onClosed: () => deps.onClosed(),
    });
  }

  start(): void {
    this.conn.start(reply.greeting());
  }

  /** Server shutdown: POP3 has no way to say so; the connection just ends (RFC 1939 §3). */
  shutdown(): void {
    if (this.relay) this.relay.terminate();
    else this.closeWith(null);
  }

  // ---- input ---------------------------------------------------------------------------------

  private handle(result: Exclude<ReceiverResult, { type: 'needs-more-data' }>): void {
    switch (result.type) {
      case 'error':
        if (result.fatal) return this.closeWith(reply.err(result.text));
        if (this.sasl) this.endSasl();
        this.user = null;
        this.write(reply.err(result.text));
        return this.countBad();
      case 'sasl-line':
        return this.onSaslStep(this.sasl!.respond(result.line));
      case 'command':
        return this.onCommand(result);
    }
  }

  private onCommand({ name, args }: Command): void {
    const user = this.user;
    this.user = null;
    switch (name) {
      case 'CAPA':
        if (args.length) return this.badArguments();
        return this.writeMultiLine(reply.capaHeader(), this.capabilities());
      case 'NOOP':
        if (args.length) return this.badArguments();
        return this.write(reply.ok('NOOP.'));
      case 'QUIT':
        if (args.length) return this.badArguments();
        return this.closeWith(reply.quit());
      case 'STLS':
        if (args.length) return this.badArguments();
        return this.onStartTls();
      case 'USER':
        return this.onUser(args);
      case 'PASS':
        return this.onPass(user, args);
      case 'AUTH':
        return this.onAuth(args);
      case 'APOP':
        this.write(reply.apopRefused());
        return this.countBad();
      default:
        this.write(reply.unknownCommand());
        return this.countBad();
    }
  }

  private badArguments(): void {
    this.write(reply.badArguments());
    this.countBad();
  }

  /** The command has had its one answer; past the budget the connection just ends after it. */
  private countBad(): void {
    if (++this.badCommands >= this.deps.limits.maxBadCommands) this.closeWith(null);
  }

  private countFailure(line: string): void {
    this.write(line);
    if (++this.failures >= this.deps.limits.maxAuthFailures) this.closeWith(null);
  }

  // ---- STLS (RFC 2595 §4) --------------------------------------------------------------------

  private onStartTls(): void {
    const context = this.deps.starttlsContext;
    if (!context || this.conn.secure) {
      this.write(reply.stlsUnavailable());
      return this.countBad();
    }
    this.conn.startTls(reply.stlsGo(), context);
  }

  // ---- USER/PASS and AUTH ----------------------------------------------------------------------

  private onUser(args: string[]): void {
    if (!this.conn.secure) return this.write(reply.privacyRequired());
    if (args.length !== 1) return this.badArguments();
    this.user = args[0]!;
    this.write(reply.userAccepted());
  }

  private onPass(user: string | null, args: string[]): void {
    if (!this.conn.secure) return this.write(reply.privacyRequired());
    if (user === null) {
      this.write(reply.passWithoutUser());
      return this.countBad();
    }
    if (args.length !== 1) return this.badArguments();
    this.signIn(user, args[0]!);
  }

  private onAuth(args: string[]): void {
    if (!this.conn.secure) return this.write(reply.privacyRequired());
    // Bare AUTH lists the mechanisms (what Outlook and others send; RFC 5034 leaves it to CAPA).
    if (args.length === 0) return this.writeMultiLine(reply.ok('Mechanisms follow.'), [...SASL_MECHANISMS]);
    const mechanism = args[0]!.toUpperCase() as SaslMechanism;
    if (!SASL_MECHANISMS.includes(mechanism)) {
      this.write(reply.unsupportedMechanism());
      return this.countBad();
    }
    this.sasl = new SaslExchange(mechanism);
    this.receiver.setMode('sasl');
    this.onSaslStep(this.sasl.start(args[1]));
  }

  private onSaslStep(step: SaslStep): void {
    switch (step.kind) {
      case 'challenge':
        return this.write(`+ ${step.challenge}`);
      case 'cancelled':
        this.endSasl();
        return this.write(reply.saslCancelled());
      case 'bad':
        this.endSasl();
        this.write(reply.err(step.text));
        return this.countBad();
      case 'authz-refused':
        this.endSasl();
        return this.countFailure(authzRefusedReply());
      case 'done':
        this.endSasl();
        this.signIn(step.login, step.password);
    }
  }

  private endSasl(): void {
    this.sasl = null;
    this.receiver.setMode('command');
  }

  private signIn(login: string, password: string): void {
    this.conn.runBusy(() => this.authenticate(login, password));
  }

  private async authenticate(login: string, password: string): Promise<void> {
    const result = await signIn(
      { auth: this.deps.auth, log: this.deps.log, loginUpstream: (credential) => this.deps.loginUpstream(credential), cancelled: () => this.conn.isClosed() },
      { login, password, clientAddress: this.clientAddress },
    );
    if (this.conn.isClosed()) {
      if (result.kind === 'signed-in') result.upstream.socket.destroy();
      return;
    }
    if (result.kind === 'signed-in') return this.startRelay(result);
    if (result.failure) this.countFailure(result.line);
    else this.write(result.line);
    this.conn.resume();
  }

  // ---- relay -----------------------------------------------------------------------------------

  private startRelay({ upstream: loggedIn, watch }: SignedIn<Pop3LoggedIn, PlainCredential>): void {
    const { socket: upstream, leftover } = loggedIn;
    const { socket: client, pipelined } = this.conn.handOver();
    // The upstream's own +OK is not passed on: it may name the upstream user or server.
    client.write(`${reply.loggedIn()}\r\n`);
    if (leftover.length) client.write(leftover);
    if (pipelined.length) upstream.write(pipelined);
    this.relay = new Relay(client, upstream, (end) => this.onRelayEnd(end));
    this.unwatch = watch(() => this.onRevoked());
    this.relay.start();
  }

  private onRevoked(): void {
    // Cut, not closed, and without words: see relay.ts.
    this.relay?.terminate({ cut: true });
  }

  private onRelayEnd(end: RelayEnd): void {
    if (end.by === 'upstream' && end.error) {
      this.deps.log.warn({ event: 'upstream.lost', code: (end.error as NodeJS.ErrnoException).code }, 'upstream connection failed mid-session');
    }
    this.conn.teardown(`relay ended by ${end.by}`);
  }

  // ---- output and teardown --------------------------------------------------------------------

  private capabilities(): string[] {
    const secure = this.conn.secure;
    return capabilities({ secure, starttlsOffered: !secure && this.deps.starttlsContext !== null });
  }

  private write(line: string): void {
    this.conn.write(line);
  }

  /** RFC 1939 §3: a multi-line response ends with a line holding a single `.`. */
  private writeMultiLine(status: string, lines: string[]): void {
    this.write([status, ...lines, '.'].join('\r\n'));
  }

  private closeWith(line: string | null): void {
    this.conn.closeWith(line);
  }

  private onTeardown(): void {
    this.unwatch?.();
    this.unwatch = null;
  }
}
