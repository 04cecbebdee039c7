// A scripted in-process IMAP "provider" for the cases a real Dovecot cannot produce on demand:
// an upstream that hangs mid-login, refuses, closes mid-session, or must report exactly which
// bytes it received (ID parameters, pipelined commands). Plaintext or implicit TLS on 127.0.0.1.
import net from 'node:net';
import tls from 'node:tls';

export type LoginBehaviour = 'ok' | 'no' | 'hang' | 'close' | 'ok-no-capability';

export interface FakeUpstream {
  port: number;
  /** How the next logins are answered. */
  login: LoginBehaviour;
  /** Every line each connection sent, in order (connections in accept order). */
  received: string[][];
  /** Live upstream sockets. */
  sockets: Set<net.Socket>;
  stop(): Promise<void>;
}

const GREETING = '* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID AUTH=PLAIN] fake upstream ready\r\n';
const POST_LOGIN_CAPS = 'IMAP4rev1 LITERAL+ IDLE NAMESPACE FAKE-EXTENSION';

export async function startFakeUpstream(options: { tls?: { key: string; cert: string } } = {}): Promise<FakeUpstream> {
  const sockets = new Set<net.Socket>();
  const fake: FakeUpstream = { port: 0, login: 'ok', received: [], sockets, stop: async () => undefined };
  const onSocket = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const lines: string[] = [];
    fake.received.push(lines);
    socket.write(GREETING);
    let buffer = '';
    let loggedIn = false;
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      let end: number;
      while ((end = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        lines.push(line);
        const [tag, rawName] = line.split(' ');
        const name = (rawName ?? '').toUpperCase();
        if (!loggedIn && (name === 'LOGIN' || name === 'AUTHENTICATE')) {
          if (fake.login === 'hang') continue;
          if (fake.login === 'close') return void socket.destroy();
          if (fake.login === 'no') { socket.write(`${tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n`); continue; }
          loggedIn = true;
          socket.write(fake.login === 'ok' ? `${tag} OK [CAPABILITY ${POST_LOGIN_CAPS}] Logged in\r\n` : `${tag} OK Logged in\r\n`);
          continue;
        }
        if (name === 'CAPABILITY') socket.write(`* CAPABILITY ${loggedIn ? POST_LOGIN_CAPS : 'IMAP4rev1 LITERAL+ SASL-IR ID AUTH=PLAIN'}\r\n${tag} OK done\r\n`);
        else if (name === 'ID') socket.write(`* ID ("name" "fake")\r\n${tag} OK ID done\r\n`);
        else if (name === 'DIE') socket.destroy(); // closes mid-session without a word
        else if (name === 'BLOB') socket.write(`* 1 FETCH (BODY[] {${Number(line.split(' ')[2])}}\r\n${'x'.repeat(Number(line.split(' ')[2]))})\r\n${tag} OK done\r\n`);
        else if (name === 'LOGOUT') { socket.write(`* BYE bye\r\n${tag} OK done\r\n`); socket.end(); }
        else socket.write(`${tag} OK ${name} done\r\n`);
      }
    });
  };
  const server = options.tls ? tls.createServer({ ...options.tls }, onSocket) : net.createServer(onSocket);
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.port = (server.address() as net.AddressInfo).port;
  fake.stop = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return fake;
}

/** An imap config section for postern in front of a fake upstream. */
export function fakeImapConfig(fake: FakeUpstream, extra: { limits?: Record<string, unknown>; upstream?: Record<string, unknown> } = {}): Record<string, unknown> {
  return {
    implicitTls: { host: '127.0.0.1', port: 0 },
    starttls: { host: '127.0.0.1', port: 0 },
    upstream: { host: '127.0.0.1', port: fake.port, security: 'plain', connectTimeoutMs: 1_000, greetingTimeoutMs: 500, ...extra.upstream },
    limits: { preAuthIdleMs: 60_000, ...extra.limits },
  };
}
