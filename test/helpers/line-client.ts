// A raw CRLF line client for protocol edge-case tests: it sends exactly the bytes a test gives it and
// hands back server lines one at a time, so tests can speak broken, split or hostile protocol that a real
// client library would refuse to produce. It never interprets the protocol itself.
//
// Lines already received stay readable after the peer closes (a server's last words, such as BYE or 421,
// usually arrive just before the close). startTls() upgrades the socket in place and throws away any
// plaintext received but not yet read, as a STARTTLS client must (the CVE-2011-0411 injection class).
import net from 'node:net';
import tls from 'node:tls';

export interface LineClientOptions {
  host: string;
  port: number;
  /** true, or TLS options, for implicit TLS from the first byte. */
  tls?: boolean | tls.ConnectionOptions;
  /** Default timeout for connect, readLine and readUntil, in ms. */
  timeoutMs?: number;
  /** Source address to connect from, e.g. another loopback address (127.0.0.5) to tell clients apart. */
  localAddress?: string;
}

export interface LineClient {
  write(data: string | Buffer): void;
  /** The next CRLF-terminated line, without the CRLF. Rejects on timeout, or on close with no line left. */
  readLine(timeoutMs?: number): Promise<string>;
  /** Reads lines until one satisfies `predicate`; resolves all lines read, that one included. */
  readUntil(predicate: (line: string) => boolean, timeoutMs?: number): Promise<string[]>;
  /** Exactly `count` raw bytes (e.g. an IMAP literal), bypassing line splitting. */
  readBytes(count: number, timeoutMs?: number): Promise<Buffer>;
  /** Upgrades to TLS in place; resolves the unread plaintext that was discarded. */
  startTls(options?: tls.ConnectionOptions): Promise<Buffer>;
  readonly closed: Promise<void>;
  isClosed(): boolean;
  /** The socket in use now (the TLS socket after startTls). */
  socket(): net.Socket;
  close(): void;
}

type Take = (buffer: Buffer) => { value: Buffer; rest: Buffer } | undefined;

interface Waiter {
  take: Take;
  resolve(value: Buffer): void;
  reject(err: Error): void;
}

const CRLF = Buffer.from('\r\n');
const DEFAULT_TIMEOUT_MS = 5_000;

const takeLine: Take = (buffer) => {
  const end = buffer.indexOf(CRLF);
  if (end < 0) return undefined;
  return { value: buffer.subarray(0, end), rest: buffer.subarray(end + CRLF.length) };
};

function takeBytes(count: number): Take {
  return (buffer) =>
    buffer.length < count ? undefined : { value: buffer.subarray(0, count), rest: buffer.subarray(count) };
}

export async function connectLineClient(options: LineClientOptions): Promise<LineClient> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const socket = await openSocket(options, timeoutMs);
  return new RawLineClient(socket, options.host, timeoutMs);
}

function openSocket(options: LineClientOptions, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const { host, port } = options;
    const from = options.localAddress ? { localAddress: options.localAddress } : {};
    const socket = options.tls
      ? tls.connect({ host, port, ...from, ...(options.tls === true ? {} : options.tls) })
      : net.connect({ host, port, ...from });
    const ready = options.tls ? 'secureConnect' : 'connect';
    const timer = setTimeout(() => socket.destroy(new Error(`connect to ${host}:${port} timed out`)), timeoutMs);
    socket.once('error', (err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once(ready, () => {
      clearTimeout(timer);
      resolve(socket);
    });
  });
}

class RawLineClient implements LineClient {
  readonly closed: Promise<void>;
  private current: net.Socket;
  private buffer: Buffer = Buffer.alloc(0);
  private waiters: Waiter[] = [];
  private ended = false;
  private lastError: Error | undefined;
  private markClosed!: () => void;

  constructor(
    socket: net.Socket,
    private readonly host: string,
    private readonly timeoutMs: number,
  ) {
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
    this.current = socket;
    this.attach(socket);
  }

  write(data: string | Buffer): void {
    this.current.write(data);
  }

  async readLine(timeoutMs = this.timeoutMs): Promise<string> {
    return (await this.read(takeLine, timeoutMs, 'a line')).toString('utf8');
  }

  async readUntil(predicate: (line: string) => boolean, timeoutMs = this.timeoutMs): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    const lines: string[] = [];
    for (;;) {
      const line = await this.readLine(Math.max(1, deadline - Date.now()));
      lines.push(line);
      if (predicate(line)) return lines;
    }
  }

  readBytes(count: number, timeoutMs = this.timeoutMs): Promise<Buffer> {
    return this.read(takeBytes(count), timeoutMs, `${count} bytes`);
  }

  async startTls(options: tls.ConnectionOptions = {}): Promise<Buffer> {
    const plain = this.current;
    plain.pause();
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    const discarded = this.buffer;
    this.buffer = Buffer.alloc(0);
    const secure = tls.connect({ host: this.host, servername: serverName(this.host), ...options, socket: plain });
    this.current = secure;
    this.attach(secure);
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      void this.closed.then(() => reject(this.lastError ?? new Error('connection closed during TLS handshake')));
    });
    return discarded;
  }

  isClosed(): boolean {
    return this.ended;
  }

  socket(): net.Socket {
    return this.current;
  }

  close(): void {
    this.current.destroy();
  }

  private attach(socket: net.Socket): void {
    socket.on('error', (err) => (this.lastError = err));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => this.onClose());
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    this.serveWaiters();
  }

  private onClose(): void {
    this.ended = true;
    this.serveWaiters();
    this.failWaiters();
    this.markClosed();
  }

  /** After close, whatever cannot be served from the buffer never will be. */
  private failWaiters(): void {
    const reason = this.lastError ? `connection closed: ${this.lastError.message}` : 'connection closed';
    for (const waiter of this.waiters.splice(0)) waiter.reject(new Error(reason));
  }

  private serveWaiters(): void {
    while (this.waiters.length > 0) {
      const waiter = this.waiters[0]!;
      const taken = waiter.take(this.buffer);
      if (!taken) return;
      this.buffer = taken.rest;
      this.waiters.shift();
      waiter.resolve(Buffer.from(taken.value));
    }
  }

  private read(take: Take, timeoutMs: number, what: string): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const waiter: Waiter = {
        take,
        resolve: (value) => (clearTimeout(timer), resolve(value)),
        reject: (err) => (clearTimeout(timer), reject(err)),
      };
      this.waiters.push(waiter);
      this.serveWaiters();
      if (this.ended) this.failWaiters();
    });
  }
}

/** SNI must be a host name, never an IP literal (RFC 6066 section 3). */
function serverName(host: string): string | undefined {
  return net.isIP(host) === 0 ? host : undefined;
}
