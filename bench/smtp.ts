/**
 * SMTP section: one real Dovecot (submission relaying to the test sink, which delivers by LMTP),
 * measured directly and through an in-process postern in the same run, with nodemailer as the client
 * over implicit TLS on both legs. Measures: small messages per second over one pooled session, a
 * login+send+quit per message (new session each time), and the time for one 10 MB message.
 * Everything behind the submission server (sink, LMTP, Dovecot's delivery) is in both columns.
 */
import { startDovecot } from '../test/helpers/dovecot.js';
import { startPostern } from '../test/helpers/postern.js';
import { addressOf } from '../test/helpers/relay-sink.js';
import nodemailer from 'nodemailer';
import { fmtMs, percentile, type BenchRow } from './table.js';

const SMALL = 200;
const SESSIONS = 40;
const BIG_BYTES = 10 * 1024 * 1024;
const BIG_ROUNDS = 3;

interface Target {
  port: number;
  host: string;
  ca: string;
  user: string;
  pass: string;
}

export async function run(): Promise<BenchRow[]> {
  const sender = { name: 'alice', password: 'bench-alice-Secret-1' };
  const rcpt = { name: 'bob', password: 'bench-bob-Secret-2' };
  const dovecot = await startDovecot({ users: [sender, rcpt] });
  const postern = await startPostern({
    config: { log: { level: 'warn' }, smtp: { implicitTls: { port: 0 }, upstream: { host: dovecot.host, port: dovecot.submissionsPort, security: 'tls', caFile: dovecot.caFile } } },
    secrets: [sender.password, rcpt.password],
  });
  try {
    await postern.addUser('alice', 'bench-primary-Secret-3', { mode: 'password', secret: sender.password });
    const { password } = await postern.newPassword('alice', 'bench-primary-Secret-3', { label: 'bench' });
    const direct: Target = { host: dovecot.host, port: dovecot.submissionsPort, ca: dovecot.caPem, user: sender.name, pass: sender.password };
    const proxied: Target = { host: '127.0.0.1', port: postern.port('smtp.implicitTls'), ca: postern.caPem, user: 'alice', pass: password };
    const small = message('small', 2 * 1024);
    const big = message('big', BIG_BYTES);

    const directRate = await pooledRate(direct, small);
    const posternRate = await pooledRate(proxied, small);
    const directSessions = await sessionTimes(direct, small);
    const posternSessions = await sessionTimes(proxied, small);
    const directBig = await bigTimes(direct, big);
    const posternBig = await bigTimes(proxied, big);
    return [
      { section: 'smtp', measure: `small messages, one session (n=${SMALL})`, direct: fmtRate(directRate), postern: fmtRate(posternRate), note: '2 KB each, nodemailer pool of 1' },
      { section: 'smtp', measure: `session p50 (n=${SESSIONS})`, direct: fmtMs(percentile(directSessions, 50)), postern: fmtMs(percentile(posternSessions, 50)), note: 'connect+TLS+AUTH+1 message+QUIT' },
      { section: 'smtp', measure: `session p95 (n=${SESSIONS})`, direct: fmtMs(percentile(directSessions, 95)), postern: fmtMs(percentile(posternSessions, 95)), note: 'postern: upstream login during AUTH' },
      { section: 'smtp', measure: '10 MB message', direct: fmtMs(Math.min(...directBig)), postern: fmtMs(Math.min(...posternBig)), note: `best of ${BIG_ROUNDS}, one session` },
    ];
  } finally {
    await postern.stop();
    await dovecot.stop();
  }
}

const envelope = { from: addressOf('alice'), to: [addressOf('bob')] };

function message(subject: string, bytes: number): Buffer {
  const header = `From: ${addressOf('alice')}\r\nTo: ${addressOf('bob')}\r\nSubject: ${subject}\r\n\r\n`;
  const line = `${'x'.repeat(76)}\r\n`;
  return Buffer.from(header + line.repeat(Math.ceil(bytes / line.length)));
}

function transport(target: Target, pool: boolean) {
  return nodemailer.createTransport({
    host: target.host, port: target.port, secure: true, auth: { user: target.user, pass: target.pass },
    tls: { ca: target.ca, servername: 'localhost' }, ...(pool ? { pool: true, maxConnections: 1, maxMessages: Infinity } : {}),
  });
}

/** Messages per second over one authenticated session. */
async function pooledRate(target: Target, raw: Buffer): Promise<number> {
  const t = transport(target, true);
  try {
    await t.sendMail({ envelope, raw }); // warm-up: login happens here
    const started = performance.now();
    for (let i = 0; i < SMALL; i++) await t.sendMail({ envelope, raw });
    return SMALL / ((performance.now() - started) / 1000);
  } finally {
    t.close();
  }
}

/** Full session per message: connect, TLS, AUTH, MAIL/RCPT/DATA, QUIT. */
async function sessionTimes(target: Target, raw: Buffer): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < SESSIONS + 3; i++) {
    const t = transport(target, false);
    const started = performance.now();
    await t.sendMail({ envelope, raw });
    if (i >= 3) times.push(performance.now() - started);
    t.close();
  }
  return times.sort((a, b) => a - b);
}

async function bigTimes(target: Target, raw: Buffer): Promise<number[]> {
  const t = transport(target, true);
  try {
    await t.sendMail({ envelope, raw: message('warm-up', 1024) });
    const times: number[] = [];
    for (let i = 0; i < BIG_ROUNDS; i++) {
      const started = performance.now();
      await t.sendMail({ envelope, raw });
      times.push(performance.now() - started);
    }
    return times;
  } finally {
    t.close();
  }
}

function fmtRate(perSecond: number): string {
  return `${perSecond.toFixed(1)} msg/s`;
}
