// Invariants pinned here for the connection IMAP and POP3 sessions share, over real loopback
// sockets with a one-line-per-result receiver: bytes pipelined after the TLS go-ahead never reach
// the session, before or after the handshake (CVE-2011-0411), and the session is secure only after
// it; nothing is read while a login runs, and a login that throws ends the connection with the
// protocol's words, never the process; the idle timer ends a silent client with its words; the
// teardown runs once and is logged once.
import net from 'node:net';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import type pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../log.js';
import { generateSelfSigned } from '../net/certs.js';
import { ClientConnection, type LineReceiver } from './client-connection.js';

type Result = { type: 'needs-more-data' } | { type: 'line'; text: string };

/** One result per CRLF line; no bound (the line limits are LineBuffer's, tested there). */
class LinesReceiver implements LineReceiver<Result> {
  private buffer = '';
  push(chunk: Buffer): void {
    this.buffer += chunk.toString('latin1');
  }
  next(): Result {
    const end = this.buffer.indexOf('\r\n');
    if (end < 0) return { type: 'needs-more-data' };
    const text = this.buffer.slice(0, end);
    this.buffer = this.buffer.slice(end + 2);
    return { type: 'line', text };
  }
  reset(): void {
    this.buffer = '';
  }
  takeRemaining(): Buffer {
    const rest = Buffer.from(this.buffer, 'latin1');
    this.buffer = '';
    return rest;
  }
}

interface Harness {
  client: net.Socket;
  conn: ClientConnection<Result>;
  seen: string[];
  closed: number;
  logs: Array<Record<string, unknown>>;
}

const WORDS = { idle: 'BYE idle', lifetime: 'BYE lifetime', internal: 'BYE internal' };
let secureContext: tls.SecureContext;
const servers: net.Server[] = [];

beforeAll(() => {
  const cert = generateSelfSigned(['localhost']);
  secureContext = tls.createSecureContext({ cert: cert.certPem, key: cert.keyPem });
});

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A server whose one connection runs a ClientConnection; `onLine` is the session. */
async function connect(onLine: (h: Harness, text: string) => void, idleMs = 10_000): Promise<Harness> {
  const lines: string[] = [];
  const stream = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(...chunk.toString().split('\n').filter(Boolean)), done()) });
  const log = createLogger({ level: 'debug', destination: stream as unknown as pino.DestinationStream });
  const harness = { seen: [] as string[], closed: 0 } as Partial<Harness> as Harness;
  Object.defineProperty(harness, 'logs', { get: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) });
  const server = net.createServer((socket) => {
    harness.conn = new ClientConnection<Result>(socket, false, {
      receiver: new LinesReceiver(),
      log,
      limits: { idleMs, preAuthLifetimeMs: 60_000 },
      protocol: 'TEST',
      lastWords: WORDS,
      onResult: (result) => (harness.seen.push(result.text), onLine(harness, result.text)),
      onTeardown: () => undefined,
      onClosed: () => harness.closed++,
    });
    harness.conn.start('HELLO');
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  harness.client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  harness.client.on('error', () => undefined);
  await expectLine(harness.client, 'HELLO');
  return harness;
}

/** Reads until `line` has come (CRLF-terminated), and returns everything read so far. */
function expectLine(socket: net.Socket, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text.includes(`${line}\r\n`)) {
        socket.off('data', onData);
        resolve(text);
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed before ${line}; got ${JSON.stringify(text)}`)));
  });
}

const closedSoon = (socket: net.Socket) => new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())));

describe('ClientConnection', () => {
  it('STARTTLS injection: plaintext pipelined after the go-ahead never reaches the session, and TLS comes only after the handshake', async () => {
    const h = await connect((h, text) => {
      if (text === 'STARTTLS') h.conn.startTls('GO', () => secureContext);
    });
    const goAhead = expectLine(h.client, 'GO');
    h.client.write('STARTTLS\r\nINJECTED-BEFORE\r\n');
    await goAhead;
    expect(h.conn.secure).toBe(false);
    const secure = tls.connect({ socket: h.client, rejectUnauthorized: false });
    secure.on('error', () => undefined);
    await new Promise<void>((resolve) => secure.once('secureConnect', () => resolve()));
    secure.write('OVER-TLS\r\n');
    await expect.poll(() => h.seen).toEqual(['STARTTLS', 'OVER-TLS']);
    expect(h.conn.secure).toBe(true);
    secure.destroy();
    await expect.poll(() => h.closed).toBe(1);
  });

  it('reads nothing while a login runs, and a login that throws ends the connection with the internal words', async () => {
    const h = await connect((h, text) => {
      if (text === 'LOGIN') h.conn.runBusy(async () => {
        await new Promise((r) => setTimeout(r, 100));
        throw new Error('a bug in the login');
      });
    });
    const words = expectLine(h.client, WORDS.internal);
    h.client.write('LOGIN\r\nPIPELINED\r\n');
    await words;
    await closedSoon(h.client);
    expect(h.seen).toEqual(['LOGIN']);
    expect(h.logs.filter((e) => e.event === 'internal.error')).toHaveLength(1);
    expect(h.closed).toBe(1);
  });

  it('ends a silent client with the idle words, tears down once and logs it once', async () => {
    const h = await connect(() => undefined, 150);
    await expectLine(h.client, WORDS.idle);
    await closedSoon(h.client);
    await expect.poll(() => h.closed).toBe(1);
    h.conn.teardown('again');
    h.conn.closeWith('too late');
    expect(h.closed).toBe(1);
    const closed = h.logs.filter((e) => e.event === 'session.closed');
    expect(closed).toHaveLength(1);
    expect(closed[0]).toMatchObject({ why: 'closed by postern', relayed: false, msg: 'TEST connection closed' });
  });
});
