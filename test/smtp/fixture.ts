// Shared set-up for the SMTP submission tests: a real Dovecot (submission → relay sink → LMTP →
// INBOX), postern instances in front of it, and the clients a user would have: nodemailer to send,
// imapflow (straight to Dovecot) to read what arrived.
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type Mail from 'nodemailer/lib/mailer/index.js';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { connectLineClient, type LineClient } from '../helpers/line-client.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';

export const ALICE = { name: 'alice', password: 'alice-upstream-Secret-1' };
export const BOB = { name: 'bob', password: 'bob-upstream-Secret-2' };
export const PRIMARY = 'Alice-primary-passw0rd';

export function startMailServer(): Promise<DovecotServer> {
  return startDovecot({ users: [ALICE, BOB] });
}

export type UpstreamChoice = 'tls' | 'starttls';

/** Postern whose SMTP upstream is the given Dovecot, with alice set up (password mode). */
export async function startSmtpPostern(dovecot: DovecotServer, options: { security?: UpstreamChoice; limits?: Record<string, number>; upstream?: Record<string, unknown>; master?: boolean } = {}): Promise<PosternHarness> {
  const security = options.security ?? 'tls';
  const postern = await startPostern({
    config: {
      smtp: {
        implicitTls: { port: 0 },
        starttls: { port: 0 },
        upstream: {
          host: dovecot.host,
          port: security === 'tls' ? dovecot.submissionsPort : dovecot.submissionPort,
          security,
          caFile: dovecot.caFile,
          ...options.upstream,
        },
        ...(options.limits ? { limits: options.limits } : {}),
      },
      ...(options.master ? { master: { user: dovecot.masterUser.name, password: dovecot.masterUser.password } } : {}),
    },
    secrets: [ALICE.password, BOB.password, dovecot.masterUser.password],
  });
  await postern.addUser('alice', PRIMARY, { mode: 'password', user: ALICE.name, secret: ALICE.password });
  return postern;
}

export interface SendOptions {
  port: number;
  secure: boolean;
  user: string;
  pass: string;
  ca: string;
}

/** A nodemailer transport as a mail client would configure it (TLS required, postern's CA trusted). */
export function transport(options: SendOptions, extra: Record<string, unknown> = {}) {
  return nodemailer.createTransport({
    host: '127.0.0.1',
    port: options.port,
    secure: options.secure,
    requireTLS: !options.secure,
    auth: { user: options.user, pass: options.pass },
    tls: { ca: options.ca },
    ...extra,
  });
}

/** The exact bytes nodemailer would send for `mail`. */
export async function compose(mail: Mail.Options): Promise<Buffer> {
  return new MailComposer(mail).compile().build();
}

/** Every message in a Dovecot user's INBOX, as raw source, oldest first. */
export async function inbox(dovecot: DovecotServer, user: { name: string; password: string }): Promise<Buffer[]> {
  const client = new ImapFlow({
    host: dovecot.host, port: dovecot.imapsPort, secure: true, tls: { ca: dovecot.caPem }, auth: { user: user.name, pass: user.password }, logger: false,
  });
  await client.connect();
  try {
    const lock = await client.getMailboxLock('INBOX');
    try {
      const sources: Buffer[] = [];
      const status = client.mailbox;
      if (!status || status.exists === 0) return sources;
      for await (const message of client.fetch('1:*', { source: true })) if (message.source) sources.push(message.source);
      return sources;
    } finally {
      lock.release();
    }
  } finally {
    await client.logout();
  }
}

/** Waits until the INBOX holds at least `atLeast` messages more than `count`; returns the new ones. */
export async function waitForNew(dovecot: DovecotServer, user: { name: string; password: string }, count: number, atLeast = 1, timeoutMs = 10_000): Promise<Buffer[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = await inbox(dovecot, user);
    if (all.length >= count + atLeast) return all.slice(count);
    if (Date.now() > deadline) throw new Error(`no new message in ${user.name}'s INBOX within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A raw client on postern's implicit-TLS port, greeted and EHLO'd. */
export async function rawSession(port: number, ca: string): Promise<LineClient> {
  const client = await connectLineClient({ host: '127.0.0.1', port, tls: { ca, servername: 'localhost' } });
  expect220(await client.readLine());
  client.write('EHLO client.example\r\n');
  await client.readUntil((l) => l.startsWith('250 '));
  return client;
}

export function plainToken(user: string, pass: string, authzid = ''): string {
  return Buffer.from(`${authzid}\0${user}\0${pass}`).toString('base64');
}

/** Sends a command and returns the final reply line (multi-line replies collapsed to their last line). */
export async function say(client: LineClient, line: string): Promise<string> {
  client.write(`${line}\r\n`);
  const lines = await client.readUntil((l) => /^\d{3} /.test(l) || /^\d{3}$/.test(l));
  return lines[lines.length - 1]!;
}

function expect220(line: string): void {
  if (!line.startsWith('220 ')) throw new Error(`expected a 220 greeting, got ${line}`);
}

/** A hook that threw something other than a deliberate reply is a bug, even if the client coped. */
export function assertNoInternalErrors(postern: PosternHarness | undefined): void {
  const errors = postern?.logs.events('internal.error') ?? [];
  if (errors.length > 0) throw new Error(`postern logged internal errors: ${JSON.stringify(errors).slice(0, 500)}`);
}
