// A scriptable in-process SMTP server standing in for the upstream in the cases a real server cannot
// produce on demand: hanging, dropping mid-message, replying oddly. Plain TCP on loopback (postern is
// configured with `security: plain` for these tests). Every connection counts; every command is kept.
import net from 'node:net';

export interface FakeContext {
  /** 1-based number of this connection. */
  connection: number;
  write(text: string): void;
  drop(): void;
}

export interface FakeScript {
  /** null: never greet. */
  greeting?: string | null;
  /** Reply for a command (CRLF added), or null to handle it yourself via ctx. Default: a sane server. */
  onCommand?(command: string, ctx: FakeContext): string | null | undefined;
  /** Called with each chunk of DATA bytes received; may drop the connection. */
  onDataChunk?(received: number, ctx: FakeContext): void;
  /** Final reply to a complete message. Default `250 2.0.0 Ok: queued as FAKE`. */
  onMessage?(message: Buffer, ctx: FakeContext): string | null;
  /** The EHLO reply, CRLF-separated lines. Default: AUTH PLAIN LOGIN, 8BITMIME, SIZE. */
  ehlo?: string;
}

export interface FakeUpstream {
  host: string;
  port: number;
  commands: string[];
  messages: Buffer[];
  /** The size of every BDAT chunk received, in order (RFC 3030; read by count, never scanned). */
  chunks: number[];
  connections(): number;
  /** Closes the n-th connection from the server side. */
  drop(connection: number): void;
  stop(): Promise<void>;
}

const EHLO = '250-fake.example\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SIZE 1000000000';

export async function startFakeUpstream(script: FakeScript = {}): Promise<FakeUpstream> {
  const commands: string[] = [];
  const messages: Buffer[] = [];
  const chunks: number[] = [];
  const sockets = new Set<net.Socket>();
  const byNumber = new Map<number, net.Socket>();
  let count = 0;
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const ctx: FakeContext = { connection: ++count, write: (t) => socket.write(t), drop: () => socket.destroy() };
    byNumber.set(ctx.connection, socket);
    let buffer = Buffer.alloc(0);
    let data: Buffer[] | null = null;
    let received = 0;
    let chunked: Buffer[] = [];
    let bdatChunk: { remaining: number; last: boolean } | null = null;
    const greeting = script.greeting === undefined ? '220 fake.example ESMTP' : script.greeting;
    if (greeting !== null) socket.write(`${greeting}\r\n`);
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (bdatChunk) {
          const take = Math.min(bdatChunk.remaining, buffer.length);
          chunked.push(buffer.subarray(0, take));
          buffer = buffer.subarray(take);
          bdatChunk.remaining -= take;
          if (bdatChunk.remaining > 0) return;
          const last = bdatChunk.last;
          bdatChunk = null;
          if (!last) {
            socket.write('250 2.0.0 chunk accepted\r\n');
            continue;
          }
          const message = Buffer.concat(chunked);
          chunked = [];
          messages.push(message);
          const reply = script.onMessage ? script.onMessage(message, ctx) : '250 2.0.0 Ok: queued as FAKE';
          if (reply !== null) socket.write(`${reply}\r\n`);
          continue;
        }
        if (data) {
          received += chunk.length;
          script.onDataChunk?.(received, ctx);
          const end = buffer.indexOf('\r\n.\r\n');
          const atStart = buffer.subarray(0, 3).toString() === '.\r\n' && data.length === 0;
          if (end < 0 && !atStart) return;
          const cut = atStart ? 0 : end + 2;
          data.push(buffer.subarray(0, cut));
          buffer = buffer.subarray(cut + 3);
          const message = Buffer.concat(data);
          messages.push(message);
          data = null;
          const reply = script.onMessage ? script.onMessage(message, ctx) : '250 2.0.0 Ok: queued as FAKE';
          if (reply !== null) socket.write(`${reply}\r\n`);
          continue;
        }
        const nl = buffer.indexOf('\r\n');
        if (nl < 0) return;
        const command = buffer.subarray(0, nl).toString('utf8');
        buffer = buffer.subarray(nl + 2);
        commands.push(command);
        const bdat = /^BDAT (\d+)( LAST)?$/.exec(command);
        if (bdat) {
          chunks.push(Number(bdat[1]));
          bdatChunk = { remaining: Number(bdat[1]), last: bdat[2] !== undefined };
          continue;
        }
        const custom = script.onCommand?.(command, ctx);
        if (custom === null) continue;
        const reply = custom ?? (/^EHLO /i.test(command) && script.ehlo ? script.ehlo : defaultReply(command));
        if (/^DATA$/i.test(command) && reply.startsWith('354')) {
          data = [];
          received = 0;
        }
        socket.write(`${reply}\r\n`);
        if (/^QUIT/i.test(command)) socket.end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  return {
    host: '127.0.0.1',
    port: address.port,
    commands,
    messages,
    chunks,
    connections: () => count,
    drop: (n) => byNumber.get(n)?.destroy(),
    stop: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

function defaultReply(command: string): string {
  const verb = command.split(' ')[0]!.toUpperCase();
  switch (verb) {
    case 'EHLO': return EHLO;
    case 'AUTH': return '235 2.7.0 Authentication successful';
    case 'MAIL': case 'RCPT': case 'RSET': case 'NOOP': return '250 2.0.0 Ok';
    case 'DATA': return '354 End data with <CR><LF>.<CR><LF>';
    case 'QUIT': return '221 2.0.0 Bye';
    default: return '502 5.5.2 Error: command not recognized';
  }
}
