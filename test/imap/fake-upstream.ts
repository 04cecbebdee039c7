// A scripted in-process IMAP "provider" for the cases a real Dovecot cannot produce on demand:
// an upstream that hangs mid-login, refuses, closes mid-session, or must report exactly which
// bytes it received (ID parameters, pipelined commands). Plaintext or implicit TLS on 127.0.0.1.
import net from 'node:net';
import tls from 'node:tls';

/** `{ answer }`: the tagged answer after the tag, as given (e.g. `NO [LIMIT] Too many connections`). */
export type LoginBehaviour = 'ok' | 'no' | 'hang' | 'close' | 'ok-no-capability' | { answer: string };

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

const GREETING_CAPS = 'IMAP4rev1 LITERAL+ SASL-IR ID AUTH=PLAIN';
const POST_LOGIN_CAPS = 'IMAP4rev1 LITERAL+ IDLE NAMESPACE FAKE-EXTENSION';

/** `greetingCaps: ''` greets without a CAPABILITY code. */
export async function startFakeUpstream(options: { tls?: { key: string; cert: string }; greetingCaps?: string } = {}): Promise<FakeUpstream> {
  const greetingCaps = options.greetingCaps ?? GREETING_CAPS;
  const sockets = new Set<net.Socket>();
  const fake: FakeUpstream = { port: 0, login: 'ok', received: [], sockets, stop: async () => undefined };
  const onSocket = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const lines: string[] = [];
    fake.received.push(lines);
    socket.write(greetingCaps ? `* OK [CAPABILITY ${greetingCaps}] fake upstream ready\r\n` : '* OK fake upstream ready\r\n');
    let buffer = Buffer.alloc(0);
    let parts = '';
    let literal: number | null = null;
    let loggedIn = false;
    let saslTag: string | null = null;
    const answerLogin = (tag: string) => {
      if (fake.login === 'hang') return;
      if (fake.login === 'close') return void socket.destroy();
      if (fake.login === 'no') return void socket.write(`${tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n`);
      if (typeof fake.login === 'object') return void socket.write(`${tag} ${fake.login.answer}\r\n`);
      loggedIn = true;
      socket.write(fake.login === 'ok' ? `${tag} OK [CAPABILITY ${POST_LOGIN_CAPS}] Logged in\r\n` : `${tag} OK Logged in\r\n`);
    };
    const dispatch = (line: string) => {
      lines.push(line);
      if (saslTag !== null) {
        const tag = saslTag;
        saslTag = null;
        return line === '*' ? void socket.write(`${tag} BAD cancelled\r\n`) : answerLogin(tag);
      }
      const [tag, rawName, ...rest] = line.split(' ');
      const name = (rawName ?? '').toUpperCase();
      if (!loggedIn && name === 'AUTHENTICATE' && rest.length === 1) {
        saslTag = tag!;
        return void socket.write('+ \r\n');
      }
      if (!loggedIn && (name === 'LOGIN' || name === 'AUTHENTICATE')) return answerLogin(tag!);
      if (name === 'CAPABILITY') socket.write(`* CAPABILITY ${loggedIn ? POST_LOGIN_CAPS : greetingCaps || 'IMAP4rev1 LITERAL+'}\r\n${tag} OK done\r\n`);
      else if (name === 'ID') socket.write(`* ID ("name" "fake")\r\n${tag} OK ID done\r\n`);
      else if (name === 'DIE') socket.destroy(); // closes mid-session without a word
      else if (name === 'RESET') socket.resetAndDestroy(); // TCP RST: postern sees ECONNRESET
      else if (name === 'BLOB') socket.write(`* 1 FETCH (BODY[] {${Number(rest[0])}}\r\n${'x'.repeat(Number(rest[0]))})\r\n${tag} OK done\r\n`);
      else if (name === 'LOGOUT') { socket.write(`* BYE bye\r\n${tag} OK done\r\n`); socket.end(); }
      else socket.write(`${tag} OK ${name} done\r\n`);
    };
    // Assembles whole commands, literals included ({n} gets a `+`, {n+} does not), as a server must.
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (literal !== null) {
          if (buffer.length < literal) return;
          parts += buffer.subarray(0, literal).toString('utf8');
          buffer = buffer.subarray(literal);
          literal = null;
          continue;
        }
        const end = buffer.indexOf('\r\n');
        if (end < 0) return;
        const line = buffer.subarray(0, end).toString('utf8');
        buffer = buffer.subarray(end + 2);
        const marker = /\{(\d+)(\+?)\}$/.exec(line);
        if (marker) {
          parts += `${line}\r\n`;
          literal = Number(marker[1]);
          if (!marker[2]) socket.write('+ go ahead\r\n');
          continue;
        }
        const command = parts + line;
        parts = '';
        dispatch(command);
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
