/**
 * One POP3 client connection, from greeting to relay: the state machine that owns the socket and
 * the timers, feeds bytes to the sans-I/O receiver, answers the AUTHORIZATION-state commands
 * itself (RFC 1939 §4/§7: USER, PASS, QUIT, NOOP; RFC 2449 CAPA; RFC 2595 STLS; RFC 5034 AUTH
 * PLAIN/LOGIN with initial response), asks the sign-in pipeline, and hands both sockets to the
 * relay. APOP is refused: it proves knowledge of the clear password, which postern never keeps.
 *
 * Must not: log anything the client sends before authentication (no protocol trace, no
 * passwords), take a password in clear (USER, PASS and AUTH need TLS; CAPA in clear lists
 * neither), keep reading while an authentication is in flight (the socket is paused, so pipelined
 * commands wait in the kernel, bounded by TCP), or let plaintext pipelined after STLS reach the TLS
 * session (CVE-2011-0411, RFC 2595 §4).
 */
import type net from 'node:net';
import tls from 'node:tls';
import type { SignedIn } from '../auth/sign-in.js';
import type { Authenticator, UpstreamCredential } from '../auth/types.js';
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
  loginUpstream(credential: UpstreamCredential): Promise<Pop3LoggedIn>;
  /** Server TLS context for STLS; null on an implicit-TLS listener. */
  starttlsContext: (() => tls.SecureContext) | null;
  /** Called once when the session has fully ended. */
  onClosed(): void;
}

type State = 'authorization' | 'sasl' | 'busy' | 'relay' | 'closed';

export class Pop3Session implements TrackedConnection {
  private state: State = 'authorization';
  private readonly receiver: CommandReceiver;
  private secure: boolean;
  private failures = 0;
  private badCommands = 0;
  /** RFC 1939 §7: PASS only straight after a successful USER. */
  private user: string | null = null;
  private sasl: SaslExchange | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private lifetimeTimer: NodeJS.Timeout | null = null;
  private relay: Relay | null = null;
  /** Between our STLS +OK and the end of the handshake nothing may be written in clear. */
  private upgrading = false;
  private awaitingDrain = false;
  private unwatch: (() => void) | null = null;
  private readonly startedAt = Date.now();
  private readonly onData = (chunk: Buffer) => {
    this.receiver.push(chunk);
    this.pump();
  };

  constructor(
    private socket: net.Socket,
    private readonly clientAddress: string,
    secure: boolean,
    private readonly deps: SessionDeps,
  ) {
    this.secure = secure;
    this.receiver = new CommandReceiver(deps.limits);
  }

  start(): void {
    this.socket.setKeepAlive(true, 60_000);
    this.socket.setNoDelay(true);
    this.attach(this.socket);
    this.write(reply.greeting());
    this.armIdleTimer();
    this.armLifetimeTimer(this.deps.limits.preAuthLifetimeMs);
  }

  /** Server shutdown: POP3 has no way to say so; the connection just ends (RFC 1939 §3). */
  shutdown(): void {
    if (this.relay) this.relay.terminate();
    else this.closeWith(null);
  }

  // ---- input ---------------------------------------------------------------------------------

  private attach(socket: net.Socket): void {
    socket.on('data', this.onData);
    socket.on('error', (err) => this.onSocketError(err));
    socket.on('close', () => this.state !== 'relay' && this.teardown('client closed'));
  }

  private pump(): void {
    while (this.state === 'authorization' || this.state === 'sasl') {
      // A client that pipelines commands but never reads the answers must not grow our output
      // buffer without bound: stop reading until it catches up.
      if (this.socket.writableNeedDrain) return this.waitForDrain();
      const result = this.receiver.next();
      if (result.type === 'needs-more-data') return;
      this.armIdleTimer();
      this.handle(result);
    }
  }

  private waitForDrain(): void {
    const socket = this.socket;
    socket.pause();
    if (this.awaitingDrain) return;
    this.awaitingDrain = true;
    socket.once('drain', () => {
      this.awaitingDrain = false;
      if (this.state !== 'authorization' && this.state !== 'sasl') return;
      socket.resume();
      this.pump();
    });
  }

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
    if (!context || this.secure) {
      this.write(reply.stlsUnavailable());
      return this.countBad();
    }
    this.state = 'busy';
    this.upgrading = true;
    // Whatever the client pipelined after STLS came in clear and may be an attacker's.
    this.receiver.reset();
    const plain = this.socket;
    plain.off('data', this.onData);
    plain.pause();
    plain.write(`${reply.stlsGo()}\r\n`, () => this.upgrade(plain, context()));
  }

  private upgrade(plain: net.Socket, secureContext: tls.SecureContext): void {
    if (this.state === 'closed') return;
    plain.removeAllListeners('data');
    const secure = new tls.TLSSocket(plain, { isServer: true, secureContext });
    secure.on('error', (err: Error) => this.onSocketError(err));
    secure.once('secure', () => {
      if (this.state === 'closed') return void secure.destroy();
      this.socket = secure;
      this.secure = true;
      this.upgrading = false;
      this.receiver.reset();
      secure.on('data', this.onData);
      secure.on('close', () => this.state !== 'relay' && this.teardown('client closed'));
      this.state = 'authorization';
      this.pump();
    });
  }

  // ---- USER/PASS and AUTH ----------------------------------------------------------------------

  private onUser(args: string[]): void {
    if (!this.secure) return this.write(reply.privacyRequired());
    if (args.length !== 1) return this.badArguments();
    this.user = args[0]!;
    this.write(reply.userAccepted());
  }

  private onPass(user: string | null, args: string[]): void {
    if (!this.secure) return this.write(reply.privacyRequired());
    if (user === null) {
      this.write(reply.passWithoutUser());
      return this.countBad();
    }
    if (args.length !== 1) return this.badArguments();
    this.signIn(user, args[0]!);
  }

  private onAuth(args: string[]): void {
    if (!this.secure) return this.write(reply.privacyRequired());
    // Bare AUTH lists the mechanisms (what Outlook and others send; RFC 5034 leaves it to CAPA).
    if (args.length === 0) return this.writeMultiLine(reply.ok('Mechanisms follow.'), [...SASL_MECHANISMS]);
    const mechanism = args[0]!.toUpperCase() as SaslMechanism;
    if (!SASL_MECHANISMS.includes(mechanism)) {
      this.write(reply.unsupportedMechanism());
      return this.countBad();
    }
    this.sasl = new SaslExchange(mechanism);
    this.state = 'sasl';
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
    if (this.state === 'sasl') this.state = 'authorization';
  }

  /** Runs the async sign-in; a bug in it must end this connection, never the process. */
  private signIn(login: string, password: string): void {
    this.authenticate(login, password).catch((err: unknown) => {
      this.deps.log.error({ event: 'internal.error', err }, 'sign-in failed with an internal error');
      this.closeWith(reply.internal());
    });
  }

  private async authenticate(login: string, password: string): Promise<void> {
    this.state = 'busy';
    this.socket.pause();
    this.clearIdleTimer();
    const result = await signIn(
      { auth: this.deps.auth, log: this.deps.log, loginUpstream: (credential) => this.deps.loginUpstream(credential), cancelled: () => this.isClosed() },
      { login, password, clientAddress: this.clientAddress },
    );
    if (this.isClosed()) {
      if (result.kind === 'signed-in') result.upstream.socket.destroy();
      return;
    }
    if (result.kind === 'signed-in') return this.startRelay(result);
    if (result.failure) this.countFailure(result.line);
    else this.write(result.line);
    this.resumeAuthorization();
  }

  /** A method, not a field test: the state changes across awaits. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  private resumeAuthorization(): void {
    if (this.state !== 'busy') return;
    this.state = 'authorization';
    this.armIdleTimer();
    this.socket.resume();
    this.pump();
  }

  // ---- relay -----------------------------------------------------------------------------------

  private startRelay({ upstream: loggedIn, watch }: SignedIn<Pop3LoggedIn, UpstreamCredential>): void {
    const { socket: upstream, leftover } = loggedIn;
    this.state = 'relay';
    this.clearLifetimeTimer();
    this.socket.off('data', this.onData);
    // The upstream's own +OK is not passed on: it may name the upstream user or server.
    this.socket.write(`${reply.loggedIn()}\r\n`);
    if (leftover.length) this.socket.write(leftover);
    const pipelined = this.receiver.takeRemaining();
    if (pipelined.length) upstream.write(pipelined);
    this.relay = new Relay(this.socket, upstream, (end) => this.onRelayEnd(end));
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
    this.teardown(`relay ended by ${end.by}`);
  }

  // ---- output, timers, teardown ---------------------------------------------------------------

  private capabilities(): string[] {
    return capabilities({ secure: this.secure, starttlsOffered: !this.secure && this.deps.starttlsContext !== null });
  }

  private write(line: string): void {
    if (this.state === 'closed' || this.upgrading || this.socket.destroyed) return;
    this.socket.write(`${line}\r\n`);
  }

  /** RFC 1939 §3: a multi-line response ends with a line holding a single `.`. */
  private writeMultiLine(status: string, lines: string[]): void {
    this.write([status, ...lines, '.'].join('\r\n'));
  }

  private armIdleTimer(): void {
    this.clearIdleTimer();
    // RFC 1939 §3: an autologout closes "without sending any response".
    this.idleTimer = setTimeout(() => this.closeWith(null), this.deps.limits.idleMs);
    this.idleTimer.unref();
  }

  /** While a login or TLS handshake is in flight, look again a second later. */
  private armLifetimeTimer(ms: number): void {
    this.lifetimeTimer = setTimeout(() => {
      if (this.state === 'busy') return this.armLifetimeTimer(1_000);
      if (this.state !== 'relay') this.closeWith(null);
    }, ms);
    this.lifetimeTimer.unref();
  }

  private clearLifetimeTimer(): void {
    if (this.lifetimeTimer) clearTimeout(this.lifetimeTimer);
    this.lifetimeTimer = null;
  }

  private clearIdleTimer(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  /** Last words (if any), then close; the socket is destroyed if the client does not go. */
  private closeWith(line: string | null): void {
    if (this.state === 'closed') return;
    if (line) this.write(line);
    const socket = this.socket;
    this.teardown('closed by postern');
    socket.end();
    setTimeout(() => socket.destroy(), 1_000).unref();
  }

  private onSocketError(err: Error): void {
    this.deps.log.debug({ event: 'client.socket_error', code: (err as NodeJS.ErrnoException).code }, 'client socket error');
    if (this.state !== 'relay') this.teardown('client socket error');
    this.socket.destroy();
  }

  private teardown(why: string): void {
    if (this.state === 'closed') return;
    const wasRelay = this.state === 'relay';
    this.state = 'closed';
    this.clearIdleTimer();
    this.clearLifetimeTimer();
    this.unwatch?.();
    this.unwatch = null;
    this.deps.log.info({ event: 'session.closed', why, relayed: wasRelay, bytesIn: this.socket.bytesRead, bytesOut: this.socket.bytesWritten, ms: Date.now() - this.startedAt }, 'POP3 connection closed');
    this.deps.onClosed();
  }
}
