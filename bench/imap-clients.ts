/**
 * The benchmark's IMAP clients (bench/scale.ts, bench/instances.ts): raw TLS sockets and lines, so
 * that a client costs as little as it can and every figure is the server's. Logins come from 50
 * loopback addresses (127.0.2.x), as a crowd of apps would, so no per-address cap is what a
 * figure measures. Idle sessions sit in IDLE and record when their BYE arrives.
 */
import tls from 'node:tls';

const CLIENT_ADDRESSES = 50;
const OPEN_CONCURRENCY = 40;

/** Where clients log in: a TLS IMAP port, the CA that signs its certificate, app passwords for `bench`. */
export interface Endpoint {
  port: number;
  ca: string;
  passwords: readonly string[];
}

export interface Session {
  socket: tls.TLSSocket;
  /** Index of its password in the endpoint's passwords. */
  password: number;
  /** When the session's `* BYE` line arrived (epoch ms, sub-ms). */
  bye: Promise<number>;
}

/** Epoch milliseconds with performance.now()'s resolution, comparable across processes. */
export const epochNow = (): number => performance.timeOrigin + performance.now();

/** Lines from a socket, awaited one predicate at a time. */
function lineReader(socket: tls.TLSSocket): (until: (line: string) => boolean) => Promise<string> {
  let buffer = '';
  let waiter: { until: (l: string) => boolean; resolve: (l: string) => void } | undefined;
  const lines: string[] = [];
  const pump = () => {
    while (waiter && lines.length) {
      const line = lines.shift()!;
      if (waiter.until(line)) {
        const w = waiter;
        waiter = undefined;
        w.resolve(line);
      }
    }
  };
  socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('latin1');
    let i: number;
    while ((i = buffer.indexOf('\r\n')) >= 0) {
      lines.push(buffer.slice(0, i));
      buffer = buffer.slice(i + 2);
    }
    pump();
  });
  return (until) => new Promise((resolve) => {
    waiter = { until, resolve };
    pump();
  });
}

function connect(target: Endpoint, i: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: target.port, ca: target.ca, servername: 'localhost', localAddress: `127.0.2.${(i % CLIENT_ADDRESSES) + 1}` } as tls.ConnectionOptions);
    socket.once('error', reject);
    socket.once('secureConnect', () => resolve(socket));
  });
}

/** Connect, TLS, greeting, LOGIN, tagged OK; the session stays open. */
export async function login(target: Endpoint, i: number, password: string): Promise<{ socket: tls.TLSSocket; read: ReturnType<typeof lineReader> }> {
  const socket = await connect(target, i);
  const read = lineReader(socket);
  await read((l) => l.startsWith('* OK'));
  socket.write(`a LOGIN bench ${password}\r\n`);
  const answer = await read((l) => l.startsWith('a '));
  if (!answer.startsWith('a OK')) throw new Error(`login failed: ${answer}`);
  return { socket, read };
}

/** One complete login: connect, TLS, LOGIN (postern: upstream TLS + LOGIN), LOGOUT answered. */
export async function loginLogout(target: Endpoint, i: number): Promise<void> {
  const { socket, read } = await login(target, i, target.passwords[0]!);
  socket.write('z LOGOUT\r\n');
  await read((l) => l.startsWith('z '));
  socket.destroy();
}

/** `count` more sessions in IDLE, OPEN_CONCURRENCY logging in at a time, passwords in turn. */
export async function openSessions(into: Session[], count: number, target: Endpoint): Promise<void> {
  const { passwords } = target;
  let next = into.length;
  const end = into.length + count;
  const worker = async () => {
    while (next < end) {
      const i = next++;
      const password = i % passwords.length;
      const { socket, read } = await login(target, i, passwords[password]!);
      socket.write('b IDLE\r\n');
      await read((l) => l.startsWith('+'));
      into.push({ socket, password, bye: read((l) => l.startsWith('* BYE')).then(epochNow) });
    }
  };
  await Promise.all(Array.from({ length: OPEN_CONCURRENCY }, worker));
  // Let the handshakes' and logins' garbage settle before measuring.
  await new Promise((r) => setTimeout(r, 1_000));
}

/** When each session's BYE arrived; a session that never gets one fails the run instead of hanging it. */
export async function byes(sessions: readonly Session[], timeoutMs = 10_000): Promise<number[]> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no BYE within ${timeoutMs} ms`)), timeoutMs)));
  try {
    return await Promise.race([Promise.all(sessions.map((s) => s.bye)), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Revokes passwords 0 … revokes−1 one at a time, each at a random phase of the 250 ms poll;
 * `revoke` commits one and says when (epoch ms). Milliseconds from then to each of its sessions'
 * BYE, sorted.
 */
export async function revokeToBye(sessions: readonly Session[], revokes: number, revoke: (password: number) => Promise<number>): Promise<number[]> {
  const latencies: number[] = [];
  for (let p = 0; p < revokes; p++) {
    await new Promise((r) => setTimeout(r, Math.random() * 250));
    const at = await revoke(p);
    const affected = sessions.filter((s) => s.password === p);
    for (const t of await byes(affected)) latencies.push(t - at);
  }
  return latencies.sort((a, b) => a - b);
}
