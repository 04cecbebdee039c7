/**
 * POP3 section: one real Dovecot, measured directly and through an in-process postern in the same
 * run. Login latency is connect → TLS → greeting → USER → PASS → +OK with a raw client; RETR
 * throughput is one session retrieving every message of an INBOX of 200 messages of ~50 KB, one
 * RETR at a time (as fetchmail does), reading raw bytes up to each terminating `.` line.
 */
import tls from 'node:tls';
import { startDovecot } from '../test/helpers/dovecot.js';
import { connectLineClient } from '../test/helpers/line-client.js';
import { startPostern } from '../test/helpers/postern.js';
import { deliver } from '../test/pop3/support.js';
import { fmtMs, percentile, type BenchRow } from './table.js';

const LOGINS = 60;
const WARMUP = 5;
const MESSAGES = 200;
const MESSAGE_BYTES = 50 * 1024;
const RETR_ROUNDS = 3;

interface Target {
  host: string;
  port: number;
  ca: string;
  user: string;
  pass: string;
}

export async function run(): Promise<BenchRow[]> {
  const user = { name: 'bench', password: 'bench-real-Secret-1' };
  const dovecot = await startDovecot({ users: [user] });
  const postern = await startPostern({
    config: { log: { level: 'warn' }, pop3: { implicitTls: { port: 0 }, upstream: { host: dovecot.host, port: dovecot.pop3sPort, security: 'tls', caFile: dovecot.caFile } } },
    secrets: [user.password],
  });
  try {
    await postern.addUser('bench', 'bench-primary-Secret-2', { mode: 'password', secret: user.password });
    const { password } = await postern.newPassword('bench', 'bench-primary-Secret-2', { label: 'bench' });
    const direct: Target = { host: dovecot.host, port: dovecot.pop3sPort, ca: dovecot.caPem, user: user.name, pass: user.password };
    const proxied: Target = { host: '127.0.0.1', port: postern.port('pop3.implicitTls'), ca: postern.caPem, user: 'bench', pass: password };

    const directLogins = await loginTimes(direct);
    const posternLogins = await loginTimes(proxied);
    const line = `${'The quick brown fox jumps over the lazy dog 0123456789'.padEnd(76, '.')}\r\n`;
    const body = line.repeat(Math.ceil(MESSAGE_BYTES / line.length));
    await deliver(dovecot, user, Array.from({ length: MESSAGES }, (_, i) => `From: a@example.test\r\nTo: b@example.test\r\nSubject: bench ${i}\r\n\r\n${body}`));
    const directRetr = await retrRate(direct);
    const posternRetr = await retrRate(proxied);
    return [
      { section: 'pop3', measure: `login p50 (n=${LOGINS})`, direct: fmtMs(percentile(directLogins, 50)), postern: fmtMs(percentile(posternLogins, 50)), note: 'connect+TLS+greeting+USER/PASS' },
      { section: 'pop3', measure: `login p95 (n=${LOGINS})`, direct: fmtMs(percentile(directLogins, 95)), postern: fmtMs(percentile(posternLogins, 95)), note: 'postern: 2 TLS handshakes, upstream connected at PASS' },
      { section: 'pop3', measure: `RETR ${MESSAGES}×${MESSAGE_BYTES / 1024} KB`, direct: `${directRetr.toFixed(1)} MB/s`, postern: `${posternRetr.toFixed(1)} MB/s`, note: `best of ${RETR_ROUNDS}, one RETR at a time` },
    ];
  } finally {
    await postern.stop();
    await dovecot.stop();
  }
}

async function loginOnce(t: Target): Promise<number> {
  const started = performance.now();
  const client = await connectLineClient({ host: t.host, port: t.port, tls: { ca: t.ca, servername: 'localhost' } });
  try {
    await client.readLine();
    client.write(`USER ${t.user}\r\nPASS ${t.pass}\r\n`);
    await client.readLine();
    const answer = await client.readLine();
    if (!answer.startsWith('+OK')) throw new Error(`login failed: ${answer}`);
    return performance.now() - started;
  } finally {
    client.write('QUIT\r\n');
    client.close();
  }
}

async function loginTimes(t: Target): Promise<number[]> {
  for (let i = 0; i < WARMUP; i++) await loginOnce(t);
  const times: number[] = [];
  for (let i = 0; i < LOGINS; i++) times.push(await loginOnce(t));
  return times.sort((a, b) => a - b);
}

/** Best MB/s over a few sessions, each retrieving every message. */
async function retrRate(t: Target): Promise<number> {
  let best = 0;
  for (let round = 0; round < RETR_ROUNDS; round++) {
    const socket = tls.connect({ host: t.host, port: t.port, ca: t.ca, servername: 'localhost' });
    const reader = replyReader(socket);
    try {
      await reader.until('\r\n');
      socket.write(`USER ${t.user}\r\nPASS ${t.pass}\r\n`);
      await reader.until('\r\n');
      if (!(await reader.until('\r\n')).startsWith('+OK')) throw new Error('login failed');
      const started = performance.now();
      let bytes = 0;
      for (let i = 1; i <= MESSAGES; i++) {
        socket.write(`RETR ${i}\r\n`);
        bytes += (await reader.until('\r\n.\r\n')).length;
      }
      best = Math.max(best, bytes / 1e6 / ((performance.now() - started) / 1000));
      socket.write('QUIT\r\n');
    } finally {
      socket.destroy();
    }
  }
  return best;
}

/** Reads raw bytes up to and including a terminator (latin1: byte offsets stay byte offsets). */
function replyReader(socket: tls.TLSSocket): { until(end: string): Promise<string> } {
  let buffer = '';
  let waiting: { end: string; resolve(text: string): void } | null = null;
  const serve = () => {
    if (!waiting) return;
    const at = buffer.indexOf(waiting.end);
    if (at < 0) return;
    const text = buffer.slice(0, at + waiting.end.length);
    buffer = buffer.slice(at + waiting.end.length);
    const done = waiting;
    waiting = null;
    done.resolve(text);
  };
  socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('latin1');
    serve();
  });
  socket.on('error', () => undefined);
  return { until: (end) => new Promise((resolve) => ((waiting = { end, resolve }), serve())) };
}
