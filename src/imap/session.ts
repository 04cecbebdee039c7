/**
 * One client connection, from greeting to relay: the state machine that owns the socket and the
 * timers, feeds bytes to the sans-I/O receiver, answers the pre-authentication commands itself
 * (RFC 9051 §6.1–6.2: CAPABILITY, NOOP, LOGOUT, ID, STARTTLS, LOGIN, AUTHENTICATE), asks the
 * Authenticator, logs in upstream and hands both sockets to the relay.
 *
 * Must not: log anything the client sends before authentication (no protocol trace, no
 * passwords), keep reading while an authentication is in flight (the socket is paused, so
 * pipelined commands wait in the kernel, bounded by TCP), or let a STARTTLS client's plaintext
 * pipelined after the command reach the TLS session (CVE-2011-0411).
 */
import type net from 'node:net';
import tls from 'node:tls';
import type { SignedIn } from '../auth/sign-in.js';
import type { Authenticator, UpstreamCredential } from '../auth/types.js';
import type { Logger } from '../log.js';
import type { TrackedConnection } from '../net/connection-registry.js';
import type { LoggedIn, PreAuthUpstream } from '../upstream/imap/client.js';
import type { RevokeReason } from '../store/types.js';
import { postLoginCapabilities, preAuthCapabilities } from './capabilities.js';
import { astringValue, type Arg } from './grammar.js';
import { ID_RESPONSE, parseIdArgs, type IdParams } from './id.js';
import type { SessionLimits } from './limits.js';
import { CommandReceiver, type ReceiverResult } from './receiver.js';
import { Relay, type RelayEnd } from './relay.js';
import { authzRefusedReply, bye, reply, revokedBye } from './replies.js';
import { SaslExchange, SASL_MECHANISMS, type SaslMechanism, type SaslStep } from '../sasl/exchange.js';
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

type State = 'pre-auth' | 'sasl' | 'busy' | 'relay' | 'closed';

type Command = Extract<ReceiverResult, { type: 'command' }>;

export class ImapSession implements TrackedConnection {
  private state: State = 'pre-auth';
  private readonly receiver: CommandReceiver;
  private secure: boolean;
  private failures = 0;
  private badCommands = 0;
  private clientId: IdParams | null = null;
  private sasl: { tag: string; exchange: SaslExchange } | null = null;
  private readonly upstream: UpstreamSlot;
  private idleTimer: NodeJS.Timeout | null = null;
  private lifetimeTimer: NodeJS.Timeout | null = null;
  private relay: Relay | null = null;
  /** Between our STARTTLS OK and the end of the handshake nothing may be written in clear. */
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
    this.upstream = new UpstreamSlot(deps.connectUpstream, deps.reserveEarlyUpstream, deps.log);
  }

  start(): void {
    // Long IDLE sessions sit silent for many minutes: keepalives notice dead peers and keep NAT state.
    this.socket.setKeepAlive(true, 60_000);
    this.socket.setNoDelay(true);
    this.attach(this.socket);
    this.upstream.open();
    this.write(reply.greeting(this.capabilities()));
    this.armIdleTimer();
    this.armLifetimeTimer(this.deps.limits.preAuthLifetimeMs);
  }

  /** While a login or TLS handshake is in flight, look again a second later. */
  private armLifetimeTimer(ms: number): void {
    this.lifetimeTimer = setTimeout(() => {
      if (this.state === 'busy') return this.armLifetimeTimer(1_000);
      if (this.state !== 'relay') this.closeWith(reply.bye(bye.preAuthTooLong));
    }, ms);
    this.lifetimeTimer.unref();
  }

  /** Server shutdown. */
  shutdown(): void {
    if (this.relay) this.relay.terminate(reply.bye(bye.shutdown));
    else this.closeWith(reply.bye(bye.shutdown));
  }

  // ---- input ---------------------------------------------------------------------------------

  private attach(socket: net.Socket): void {
    socket.on('data', this.onData);
    socket.on('error', (err) => this.onSocketError(err));
    socket.on('close', () => this.state !== 'relay' && this.teardown('client closed'));
  }

  private pump(): void {
    while (this.state === 'pre-auth' || this.state === 'sasl') {
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
    this.deps.log.debug({ event: 'imap.output_backpressure' }, 'client is not reading; pausing input');
    socket.once('drain', () => {
      this.awaitingDrain = false;
      if (this.state !== 'pre-auth' && this.state !== 'sasl') return;
      socket.resume();
      this.pump();
    });
  }

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
    if (!context || this.secure) {
      this.write(reply.bad(tag, 'STARTTLS is not available on this connection.'));
      return this.countBad();
    }
    this.state = 'busy';
    this.upgrading = true;
    // Whatever the client pipelined after STARTTLS came in clear and may be an attacker's, and so
    // may anything learnt before it (RFC 3207 §4.2's rule): ID parameters sent in clear are not
    // passed upstream; the client sends ID again over TLS if it wants to.
    this.receiver.reset();
    this.clientId = null;
    const plain = this.socket;
    plain.off('data', this.onData);
    plain.pause();
    plain.write(`${reply.ok(tag, 'Begin TLS negotiation now.')}\r\n`, () => this.upgrade(plain, context()));
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
      this.state = 'pre-auth';
      this.pump();
    });
  }

  // ---- LOGIN and AUTHENTICATE ------------------------------------------------------------------

  private onLogin(tag: string, args: Arg[]): void {
    if (!this.secure) return this.write(reply.privacyRequired(tag));
    const login = astringValue(args[0]);
    const password = astringValue(args[1]);
    if (args.length !== 2 || login === null || password === null) return this.badSyntax(tag);
    this.signIn(tag, login, password);
  }

  private onAuthenticate(tag: string, args: Arg[]): void {
    if (!this.secure) return this.write(reply.privacyRequired(tag));
    const [mechArg, irArg] = args;
    if (!mechArg || mechArg.kind !== 'atom' || args.length > 2 || (irArg && irArg.kind !== 'atom')) return this.badSyntax(tag);
    const mechanism = mechArg.value.toUpperCase() as SaslMechanism;
    if (!SASL_MECHANISMS.includes(mechanism)) {
      this.write(reply.no(tag, 'Unsupported authentication mechanism.'));
      return this.countBad();
    }
    const exchange = new SaslExchange(mechanism);
    this.sasl = { tag, exchange };
    this.state = 'sasl';
    this.receiver.setMode('sasl');
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
    this.receiver.setMode('command');
    if (this.state === 'sasl') this.state = 'pre-auth';
  }

  private countFailure(): void {
    if (++this.failures >= this.deps.limits.maxAuthFailures) this.closeWith(reply.bye(bye.tooManyFailures));
  }

  /** Runs the async sign-in; a bug in it must end this connection, never the process. */
  private signIn(tag: string, login: string, password: string): void {
    this.authenticate(tag, login, password).catch((err: unknown) => {
      this.deps.log.error({ event: 'internal.error', err }, 'sign-in failed with an internal error');
      this.closeWith(reply.bye(bye.internal));
    });
  }

  private async authenticate(tag: string, login: string, password: string): Promise<void> {
    this.state = 'busy';
    this.socket.pause();
    this.clearIdleTimer();
    const result = await signIn(
      { auth: this.deps.auth, log: this.deps.log, upstream: this.upstream },
      { tag, login, password, clientAddress: this.clientAddress, clientId: this.clientId },
    );
    if (this.isClosed()) {
      if (result.kind === 'signed-in') result.upstream.socket.destroy();
      return;
    }
    if (result.kind === 'signed-in') return this.startRelay(tag, result);
    this.write(result.line);
    if (result.failure) this.countFailure();
    this.resumePreAuth();
  }

  /** A method, not a field test: the state changes across awaits. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  private resumePreAuth(): void {
    if (this.state !== 'busy') return;
    this.state = 'pre-auth';
    this.armIdleTimer();
    this.socket.resume();
    this.pump();
  }

  // ---- relay -----------------------------------------------------------------------------------

  private startRelay(tag: string, { upstream: loggedIn, watch }: SignedIn<LoggedIn, UpstreamCredential>): void {
    const { socket: upstream, capabilities, leftover } = loggedIn;
    this.state = 'relay';
    this.clearLifetimeTimer();
    this.socket.off('data', this.onData);
    // Many clients ignore untagged CAPABILITY after login; the tagged OK carries it (RFC 9051 §6.2.3).
    this.write(reply.loggedIn(tag, postLoginCapabilities(capabilities)));
    if (leftover.length) this.socket.write(leftover);
    const pipelined = this.receiver.takeRemaining();
    if (pipelined.length) upstream.write(pipelined);
    this.relay = new Relay(this.socket, upstream, (end) => this.onRelayEnd(end));
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
    this.teardown(`relay ended by ${end.by}`);
  }

  // ---- output, timers, teardown ---------------------------------------------------------------

  private capabilities(): string {
    const ctx = { secure: this.secure, starttlsOffered: !this.secure && this.deps.starttlsContext !== null };
    return preAuthCapabilities(ctx, this.deps.upstreamCapabilities());
  }

  private write(line: string): void {
    if (this.state === 'closed' || this.upgrading || this.socket.destroyed) return;
    this.socket.write(`${line}\r\n`);
  }

  private armIdleTimer(): void {
    this.clearIdleTimer();
    this.idleTimer = setTimeout(() => this.closeWith(reply.bye(bye.idle)), this.deps.limits.idleMs);
    this.idleTimer.unref();
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
    this.upstream.close();
    this.deps.log.info({ event: 'session.closed', why, relayed: wasRelay, bytesIn: this.socket.bytesRead, bytesOut: this.socket.bytesWritten, ms: Date.now() - this.startedAt }, 'IMAP connection closed');
    this.deps.onClosed();
  }
}
