/**
 * The client side of a line-based mail session before it is relayed (IMAP and POP3 alike): owns
 * the socket, the pre-authentication timers and the teardown, pumps bytes through the protocol's
 * sans-I/O receiver with output back-pressure, swaps the socket for TLS on STARTTLS/STLS, and hands
 * the socket over once the session is relayed. What a command means, and every word on the wire
 * but the ones it is given, belong to the protocol's session.
 *
 * Must not: write anything in clear between the go-ahead for TLS and the end of the handshake, let
 * bytes pipelined after that go-ahead reach the TLS session (CVE-2011-0411, RFC 3207 §4.2,
 * RFC 2595 §4), keep reading while the session is busy (a login or a handshake in flight: the
 * socket is paused, so pipelined commands wait in the kernel, bounded by TCP), or log what the
 * client sends.
 */
import type net from 'node:net';
import tls from 'node:tls';
import type { LogEvent, Logger } from '../log.js';

/** `reading`: commands are taken; `busy`: a login or TLS handshake is in flight. */
export type Phase = 'reading' | 'busy' | 'relay' | 'closed';

/** What the connection needs of a protocol's receiver. */
export interface LineReceiver<R extends { type: string }> {
  push(chunk: Buffer): void;
  next(): R;
  /** Drops everything buffered (STARTTLS). */
  reset(): void;
  /** Bytes received but not consumed (forwarded upstream once relayed). */
  takeRemaining(): Buffer;
}

export interface ClientConnectionOptions<R extends { type: string }> {
  receiver: LineReceiver<R>;
  log: Logger;
  limits: { idleMs: number; preAuthLifetimeMs: number };
  /** For the `session.closed` message: `IMAP`, `POP3`. */
  protocol: string;
  /** Logged (debug) when a client stops reading; none if the protocol has no event for it. */
  backpressureEvent?: LogEvent;
  /**
   * Last words when the idle or the lifetime timer ends the session, or a login fails with an
   * internal error; null says nothing (RFC 1939 §3).
   */
  lastWords: { idle: string | null; lifetime: string | null; internal: string | null };
  /** One receiver result, other than needs-more-data, while reading. */
  onResult(result: Exclude<R, { type: 'needs-more-data' }>): void;
  /** The session's own cleanup, once, as the connection closes. */
  onTeardown(): void;
  /** Called once when the connection has fully ended. */
  onClosed(): void;
}

export class ClientConnection<R extends { type: string }> {
  private state: Phase = 'reading';
  /** Dropped at the hand-over: a relayed session lives for hours and reads no more commands. */
  private receiver: LineReceiver<R> | null;
  private readonly options: Omit<ClientConnectionOptions<R>, 'receiver'>;
  private secureNow: boolean;
  private idleTimer: NodeJS.Timeout | null = null;
  private lifetimeTimer: NodeJS.Timeout | null = null;
  /** Between the go-ahead for TLS and the end of the handshake nothing may be written in clear. */
  private upgrading = false;
  private awaitingDrain = false;
  private readonly startedAt = Date.now();
  private readonly onData = (chunk: Buffer) => {
    this.receiver?.push(chunk);
    this.pump();
  };

  constructor(
    private socketNow: net.Socket,
    secure: boolean,
    { receiver, ...options }: ClientConnectionOptions<R>,
  ) {
    this.receiver = receiver;
    this.options = options;
    this.secureNow = secure;
  }

  get phase(): Phase {
    return this.state;
  }

  get secure(): boolean {
    return this.secureNow;
  }

  /** A method, not a field test: the phase changes across awaits. */
  isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Says `greeting` and starts the pre-authentication timers. */
  start(greeting: string): void {
    // Long IDLE sessions sit silent for many minutes: keepalives notice dead peers and keep NAT state.
    this.socketNow.setKeepAlive(true, 60_000);
    this.socketNow.setNoDelay(true);
    this.attach(this.socketNow);
    this.write(greeting);
    this.armIdleTimer();
    this.armLifetimeTimer(this.options.limits.preAuthLifetimeMs);
  }

  write(line: string): void {
    if (this.state === 'closed' || this.upgrading || this.socketNow.destroyed) return;
    this.socketNow.write(`${line}\r\n`);
  }

  /** Last words (if any), then close; the socket is destroyed if the client does not go. */
  closeWith(line: string | null): void {
    if (this.state === 'closed') return;
    if (line) this.write(line);
    const socket = this.socketNow;
    this.teardown('closed by postern');
    socket.end();
    setTimeout(() => socket.destroy(), 1_000).unref();
  }

  /**
   * Runs a login: reading stops (and the idle clock) until resume() or handOver(). A bug in it must
   * end this connection, never the process.
   */
  runBusy(login: () => Promise<void>): void {
    this.pause();
    login().catch((err: unknown) => {
      this.options.log.error({ event: 'internal.error', err }, 'sign-in failed with an internal error');
      this.closeWith(this.options.lastWords.internal);
    });
  }

  private pause(): void {
    this.state = 'busy';
    this.socketNow.pause();
    this.clearIdleTimer();
  }

  /** The login did not lead to a relay: read the next command. */
  resume(): void {
    if (this.state !== 'busy') return;
    this.state = 'reading';
    this.armIdleTimer();
    this.socketNow.resume();
    this.pump();
  }

  /**
   * Writes the go-ahead in clear, then upgrades to TLS. Whatever was pipelined after the command
   * came in clear and may be an attacker's: the receiver drops it, before and after the handshake.
   */
  startTls(goAhead: string, secureContext: () => tls.SecureContext): void {
    this.state = 'busy';
    this.upgrading = true;
    this.receiver?.reset();
    const plain = this.socketNow;
    plain.off('data', this.onData);
    plain.pause();
    plain.write(`${goAhead}\r\n`, () => this.upgrade(plain, secureContext()));
  }

  /** Stops reading commands for good: the socket is the relay's now (this still tears down). */
  handOver(): { socket: net.Socket; pipelined: Buffer } {
    this.state = 'relay';
    this.clearLifetimeTimer();
    this.socketNow.off('data', this.onData);
    const pipelined = this.receiver?.takeRemaining() ?? Buffer.alloc(0);
    this.receiver = null;
    return { socket: this.socketNow, pipelined };
  }

  teardown(why: string): void {
    if (this.state === 'closed') return;
    const wasRelay = this.state === 'relay';
    this.state = 'closed';
    this.clearIdleTimer();
    this.clearLifetimeTimer();
    this.options.onTeardown();
    const socket = this.socketNow;
    this.options.log.info({ event: 'session.closed', why, relayed: wasRelay, bytesIn: socket.bytesRead, bytesOut: socket.bytesWritten, ms: Date.now() - this.startedAt }, `${this.options.protocol} connection closed`);
    this.options.onClosed();
  }

  private attach(socket: net.Socket): void {
    socket.on('data', this.onData);
    socket.on('error', (err) => this.onSocketError(err));
    this.closeEndsSession(socket);
  }

  /** Once relayed, the relay decides what a close means. */
  private closeEndsSession(socket: net.Socket): void {
    socket.on('close', () => this.state !== 'relay' && this.teardown('client closed'));
  }

  private pump(): void {
    while (this.state === 'reading') {
      // A client that pipelines commands but never reads the answers must not grow our output
      // buffer without bound: stop reading until it catches up.
      if (this.socketNow.writableNeedDrain) return this.waitForDrain();
      const result = this.receiver?.next();
      if (!result || result.type === 'needs-more-data') return;
      this.armIdleTimer();
      this.options.onResult(result as Exclude<R, { type: 'needs-more-data' }>);
    }
  }

  private waitForDrain(): void {
    const socket = this.socketNow;
    socket.pause();
    if (this.awaitingDrain) return;
    this.awaitingDrain = true;
    if (this.options.backpressureEvent) this.options.log.debug({ event: this.options.backpressureEvent }, 'client is not reading; pausing input');
    socket.once('drain', () => {
      this.awaitingDrain = false;
      if (this.state !== 'reading') return;
      socket.resume();
      this.pump();
    });
  }

  private upgrade(plain: net.Socket, secureContext: tls.SecureContext): void {
    if (this.state === 'closed') return;
    plain.removeAllListeners('data');
    const secure = new tls.TLSSocket(plain, { isServer: true, secureContext });
    secure.on('error', (err: Error) => this.onSocketError(err));
    secure.once('secure', () => {
      if (this.state === 'closed') return void secure.destroy();
      this.socketNow = secure;
      this.secureNow = true;
      this.upgrading = false;
      this.receiver?.reset();
      secure.on('data', this.onData);
      this.closeEndsSession(secure);
      this.state = 'reading';
      this.pump();
    });
  }

  private onSocketError(err: Error): void {
    this.options.log.debug({ event: 'client.socket_error', code: (err as NodeJS.ErrnoException).code }, 'client socket error');
    if (this.state !== 'relay') this.teardown('client socket error');
    this.socketNow.destroy();
  }

  private armIdleTimer(): void {
    this.clearIdleTimer();
    this.idleTimer = setTimeout(() => this.closeWith(this.options.lastWords.idle), this.options.limits.idleMs);
    this.idleTimer.unref();
  }

  /** While a login or TLS handshake is in flight, look again a second later. */
  private armLifetimeTimer(ms: number): void {
    this.lifetimeTimer = setTimeout(() => {
      if (this.state === 'busy') return this.armLifetimeTimer(1_000);
      if (this.state !== 'relay') this.closeWith(this.options.lastWords.lifetime);
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
}
