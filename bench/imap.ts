/**
 * IMAP section: one real Dovecot, measured directly and through an in-process postern in the
 * same run. Login latency is connect → TLS → greeting → LOGIN → tagged OK with a raw client
 * (so no client-library chatter is counted); bulk FETCH is imapflow fetching every message's
 * full source (BODY[]) from an INBOX of 200 messages of ~50 KB.
 */
import { ImapFlow } from 'imapflow';
import { startDovecot } from '../test/helpers/dovecot.js';
import { connectLineClient } from '../test/helpers/line-client.js';
import { startPostern } from '../test/helpers/postern.js';
import { fmtMs, percentile, type BenchRow } from './table.js';

const LOGINS = 60;
const WARMUP = 5;
const MESSAGES = 200;
const MESSAGE_BYTES = 50 * 1024;
const FETCH_ROUNDS = 3;

interface Target {
  host: string;
  port: number;
  ca: string;
  servername?: string;
  user: string;
  pass: string;
}

export async function run(): Promise<BenchRow[]> {
  const user = { name: 'bench', password: 'bench-real-Secret-1' };
  const dovecot = await startDovecot({ users: [user] });
  const postern = await startPostern({
    config: { log: { level: 'warn' }, imap: { implicitTls: { port: 0 }, upstream: { host: dovecot.host, port: dovecot.imapsPort, security: 'tls', caFile: dovecot.caFile } } },
    secrets: [user.password],
  });
  try {
    await postern.addUser('bench', 'bench-primary-Secret-2', { mode: 'password', secret: user.password });
    const { password } = await postern.newPassword('bench', 'bench-primary-Secret-2', { label: 'bench' });
    const direct: Target = { host: dovecot.host, port: dovecot.imapsPort, ca: dovecot.caPem, servername: 'localhost', user: user.name, pass: user.password };
    const proxied: Target = { host: '127.0.0.1', port: postern.port('imap.implicitTls'), ca: postern.caPem, servername: 'localhost', user: 'bench', pass: password };

    const directLogins = await loginTimes(direct);
    const posternLogins = await loginTimes(proxied);
    await fillInbox(direct);
    const directFetch = await fetchRate(direct);
    const posternFetch = await fetchRate(proxied);
    return [
      { section: 'imap', measure: `login p50 (n=${LOGINS})`, direct: fmtMs(percentile(directLogins, 50)), postern: fmtMs(percentile(posternLogins, 50)), note: 'connect+TLS+greeting+LOGIN' },
      { section: 'imap', measure: `login p95 (n=${LOGINS})`, direct: fmtMs(percentile(directLogins, 95)), postern: fmtMs(percentile(posternLogins, 95)), note: 'postern: 2 TLS handshakes, upstream pre-connected' },
      { section: 'imap', measure: `FETCH BODY[] ${MESSAGES}×${MESSAGE_BYTES / 1024} KB`, direct: fmtRate(directFetch), postern: fmtRate(posternFetch), note: `best of ${FETCH_ROUNDS}, imapflow client` },
    ];
  } finally {
    await postern.stop();
    await dovecot.stop();
  }
}

async function loginOnce(t: Target): Promise<number> {
  const started = performance.now();
  const client = await connectLineClient({ host: t.host, port: t.port, tls: { ca: t.ca, servername: t.servername } });
  try {
    await client.readLine();
    client.write(`a LOGIN ${quote(t.user)} ${quote(t.pass)}\r\n`);
    const lines = await client.readUntil((l) => l.startsWith('a '));
    if (!lines.at(-1)!.startsWith('a OK')) throw new Error(`login failed: ${lines.at(-1)}`);
    return performance.now() - started;
  } finally {
    client.write('z LOGOUT\r\n');
    client.close();
  }
}

async function loginTimes(t: Target): Promise<number[]> {
  for (let i = 0; i < WARMUP; i++) await loginOnce(t);
  const times: number[] = [];
  for (let i = 0; i < LOGINS; i++) times.push(await loginOnce(t));
  return times.sort((a, b) => a - b);
}

function client(t: Target): ImapFlow {
  const c = new ImapFlow({ host: t.host, port: t.port, secure: true, servername: t.servername, auth: { user: t.user, pass: t.pass }, tls: { ca: t.ca, servername: t.servername }, logger: false });
  c.on('error', () => undefined);
  return c;
}

async function fillInbox(t: Target): Promise<void> {
  const c = client(t);
  await c.connect();
  const line = `${'The quick brown fox jumps over the lazy dog 0123456789'.padEnd(76, '.')}\r\n`;
  const body = line.repeat(Math.ceil(MESSAGE_BYTES / line.length));
  for (let i = 0; i < MESSAGES; i++) {
    await c.append('INBOX', `From: a@example.test\r\nTo: b@example.test\r\nSubject: bench ${i}\r\n\r\n${body}`);
  }
  await c.logout();
}

/** Best MB/s over a few rounds of fetching every message's full source. */
async function fetchRate(t: Target): Promise<number> {
  const c = client(t);
  await c.connect();
  const lock = await c.getMailboxLock('INBOX');
  let best = 0;
  try {
    for (let round = 0; round < FETCH_ROUNDS; round++) {
      const started = performance.now();
      let bytes = 0;
      let count = 0;
      for await (const msg of c.fetch('1:*', { source: true })) {
        bytes += msg.source?.length ?? 0;
        count++;
      }
      if (count !== MESSAGES) throw new Error(`fetched ${count} messages, expected ${MESSAGES}`);
      best = Math.max(best, bytes / 1e6 / ((performance.now() - started) / 1000));
    }
  } finally {
    lock.release();
    await c.logout();
  }
  return best;
}

function fmtRate(mbPerSecond: number): string {
  return `${mbPerSecond.toFixed(1)} MB/s`;
}

function quote(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}
