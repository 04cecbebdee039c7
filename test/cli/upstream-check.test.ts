/**
 * `--check` against a real Dovecot on loopback: before saving, the CLI logs in to the configured
 * IMAP upstream with the credentials (the proxy's own upstream login) and refuses (exit 1, nothing
 * saved) unless the upstream accepts them. Covered: implicit TLS and STARTTLS, a distinct upstream
 * secret and user, master-user mode (SASL PLAIN with authorization identity), wrong password,
 * unreachable upstream, untrusted certificate; no secret in any output. With scripted upstreams,
 * the two cases where the imapflow check this replaced disagreed with the proxy's login: a
 * PREAUTH greeting (imapflow passed without checking anything; the proxy cannot log in there) and
 * LOGINDISABLED without AUTH= (imapflow refused; the proxy logs in with AUTHENTICATE PLAIN).
 */
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { freePort } from '../helpers/free-port.js';
import { createWorkspace, type CliResult, type InProcessOptions, type Workspace } from '../helpers/cli.js';
import { startFakeUpstream } from '../imap/fake-upstream.js';
import type { MailUpstreamConfig } from '../../src/config/schema.js';
import { connectImapUpstream } from '../../src/upstream/imap/client.js';

let dovecot: DovecotServer;
let ws: Workspace;
let masterEnv: Record<string, string>;
const ALICE_PW = 'alice upstream pw 1';
const CAROL_PW = 'carol upstream pw 2';
const outputs: CliResult[] = [];

beforeAll(async () => {
  dovecot = await startDovecot({ users: [{ name: 'alice', password: ALICE_PW }, { name: 'carol', password: CAROL_PW }] });
  masterEnv = { POSTERN_MASTER_PASSWORD: dovecot.masterUser.password };
  ws = await createWorkspace({
    imap: { upstream: { host: dovecot.host, port: dovecot.imapsPort, security: 'tls', caFile: dovecot.caFile } },
    master: { user: dovecot.masterUser.name },
  }, masterEnv);
});

afterAll(async () => {
  ws?.cleanup();
  await dovecot?.stop();
});

async function run(args: string[], options: InProcessOptions = {}): Promise<CliResult> {
  const r = await ws.runHere(args, { env: masterEnv, ...options });
  outputs.push(r);
  return r;
}

async function exists(login: string): Promise<boolean> {
  return (await run(['user', 'show', login])).code === 0;
}

/** A config variant next to the workspace's, for other upstream settings. */
function variant(name: string, upstream: Record<string, unknown>): string {
  return variantWith(name, { imap: { upstream } });
}

/** A config variant with other mail sections than the workspace's (e.g. POP3 only). */
function variantWith(name: string, sections: Record<string, { upstream: Record<string, unknown> }>): string {
  const file = path.join(ws.dir, `${name}.yaml`);
  writeFileSync(file, stringify({
    database: ws.database,
    keyFile: path.join(ws.dir, 'data', 'postern.key'),
    tls: { cert: path.join(ws.dir, 'certs', 'postern.crt'), key: path.join(ws.dir, 'certs', 'postern.key') },
    ...sections,
  }));
  return file;
}

it('saves an account whose password the upstream accepts (implicit TLS)', async () => {
  const r = await run(['user', 'add', 'alice', '--password-stdin', '--check'], { input: ALICE_PW + '\n' });
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toMatch(/^checking the login for "alice" at 127\.0\.0\.2:\d+\.\.\.\nupstream accepted the login\n$/);
  expect(await exists('alice')).toBe(true);
});

it('refuses, saving nothing, when the upstream refuses the password', async () => {
  const r = await run(['user', 'add', 'bob', '--password-stdin', '--check'], { input: 'not bobs password\n' });
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/postern: upstream check failed for "bob": the upstream refused the login; nothing saved\n$/);
  expect(await exists('bob')).toBe(false);
});

it('checks a distinct upstream secret and user name', async () => {
  const r = await run(['user', 'add', 'dora', '--password-stdin', '--upstream-secret-stdin', '--upstream-user', 'carol', '--check'], { input: `dora primary\n${CAROL_PW}\n` });
  expect(r.code, r.stderr).toBe(0);
  expect(await exists('dora')).toBe(true);
  // The primary password is not what the upstream knows: checking with it alone fails.
  const wrong = await run(['user', 'add', 'dora2', '--password-stdin', '--upstream-user', 'carol', '--check'], { input: 'dora primary\n' });
  expect(wrong.code).toBe(1);
});

it('checks over STARTTLS, and set-password / set-upstream refuse bad credentials without changing anything', async () => {
  const starttls = variant('starttls', { host: dovecot.host, port: dovecot.imapPort, security: 'starttls', caFile: dovecot.caFile });
  const ok = await run(['-c', starttls, 'user', 'set-upstream', 'alice', '--password-stdin', '--check'], { input: ALICE_PW + '\n' });
  expect(ok.code, ok.stderr).toBe(0);
  const bad = await run(['-c', starttls, 'user', 'set-password', 'alice', '--password-stdin', '--check'], { input: 'a new primary the upstream does not know\n' });
  expect(bad.code).toBe(1);
  expect(bad.stderr).toMatch(/the upstream refused the login; nothing saved/);
  // The old primary still works: nothing was changed.
  const made = await run(['password', 'new', 'alice', '--label', 'still mine', '--password-stdin'], { input: ALICE_PW + '\n' });
  expect(made.code, made.stderr).toBe(0);
});

it('checks master-user mode: the master logs in acting for the account', async () => {
  const r = await run(['user', 'add', 'alice-via-master', '--mode', 'master', '--upstream-user', 'alice', '--password-stdin', '--check'], { input: 'master mode primary\n' });
  expect(r.code, r.stderr).toBe(0);
  const wrongMaster = await run(['user', 'add', 'carol-via-master', '--mode', 'master', '--upstream-user', 'carol', '--password-stdin', '--check'], {
    input: 'x primary\n', env: { POSTERN_MASTER_PASSWORD: 'not the master password' },
  });
  expect(wrongMaster.code).toBe(1);
  expect(wrongMaster.stderr).toMatch(/the upstream refused the login; nothing saved/);
  expect(await exists('carol-via-master')).toBe(false);
});

it('names an unreachable upstream and an untrusted certificate', async () => {
  const closed = variant('closed', { host: '127.0.0.1', port: await freePort(), security: 'tls' });
  const unreachable = await run(['-c', closed, 'user', 'add', 'erin', '--password-stdin', '--check'], { input: 'erin primary\n' });
  expect(unreachable.code).toBe(1);
  expect(unreachable.stderr).toMatch(/postern: upstream check failed for "erin": the upstream is unreachable \(ECONNREFUSED\); nothing saved\n$/);
  const untrusted = variant('untrusted', { host: dovecot.host, port: dovecot.imapsPort, security: 'tls' });
  const tls = await run(['-c', untrusted, 'user', 'add', 'erin', '--password-stdin', '--check'], { input: ALICE_PW + '\n' });
  expect(tls.code).toBe(1);
  expect(tls.stderr).toMatch(/postern: upstream check failed for "erin": TLS with the upstream failed \(.+\); nothing saved\n$/);
  expect(await exists('erin')).toBe(false);
});

/** An upstream that says the connection is already logged in (RFC 9051 §7.1.4), whoever it is. */
async function startPreauthUpstream(): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.write('* PREAUTH [CAPABILITY IMAP4rev1 AUTH=PLAIN] logged in without asking\r\n');
    socket.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\r\n').filter(Boolean)) socket.write(`${line.split(' ')[0]} OK done\r\n`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    stop: () => new Promise<void>((resolve) => (sockets.forEach((s) => s.destroy()), server.close(() => resolve()))),
  };
}

const plainUpstream = (port: number): MailUpstreamConfig => ({ host: '127.0.0.1', port, security: 'plain', rejectUnauthorized: true, connectTimeoutMs: 2_000, greetingTimeoutMs: 2_000, trusted: false });

it('refuses an upstream that greets with PREAUTH, where the proxy cannot log in', async () => {
  const preauth = await startPreauthUpstream();
  try {
    // The proxy's own login refuses this upstream ...
    await expect(connectImapUpstream(plainUpstream(preauth.port))).rejects.toMatchObject({ code: 'UPSTREAM_PROTOCOL' });
    // ... so the check must too, whatever the password (imapflow's verifyOnly check passed here).
    const config = variant('preauth', { host: '127.0.0.1', port: preauth.port, security: 'plain' });
    const r = await run(['-c', config, 'user', 'add', 'frank', '--password-stdin', '--check'], { input: 'any password at all\n' });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/postern: upstream check failed for "frank": the upstream login did not complete \(upstream greeting was not \* OK\); nothing saved\n$/);
    expect(await exists('frank')).toBe(false);
  } finally {
    await preauth.stop();
  }
});

it('passes for an upstream with LOGINDISABLED and no AUTH= advertised, where the proxy logs in with AUTHENTICATE PLAIN', async () => {
  const fake = await startFakeUpstream({ greetingCaps: 'IMAP4rev1 LOGINDISABLED' });
  try {
    const config = variant('logindisabled', { host: '127.0.0.1', port: fake.port, security: 'plain' });
    const r = await run(['-c', config, 'user', 'add', 'gina', '--password-stdin', '--check'], { input: 'gina upstream pw\n' });
    // imapflow's check said "the upstream refused the login" (it would not send LOGIN and saw no AUTH=PLAIN).
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/upstream accepted the login\n$/);
    const b64 = Buffer.from('\0gina\0gina upstream pw', 'utf8').toString('base64');
    expect(fake.received[0]?.slice(0, 2)).toEqual(['P1 AUTHENTICATE PLAIN', b64]);
    expect(fake.received[0]?.[2]).toMatch(/^L LOGOUT$/);
    expect(await exists('gina')).toBe(true);
  } finally {
    await fake.stop();
  }
});

it('checks through the POP3 upstream when POP3 is the only mail upstream configured', async () => {
  const pop3Only = variantWith('pop3-only', { pop3: { upstream: { host: dovecot.host, port: dovecot.pop3sPort, security: 'tls', caFile: dovecot.caFile } } });
  const ok = await run(['-c', pop3Only, 'user', 'add', 'hana', '--upstream-user', 'alice', '--password-stdin', '--check'], { input: ALICE_PW + '\n' });
  expect(ok.code, ok.stderr).toBe(0);
  expect(ok.stderr).toMatch(new RegExp(`^checking the login for "hana" at 127\\.0\\.0\\.2:${dovecot.pop3sPort}\\.\\.\\.\nupstream accepted the login\n$`));
  const bad = await run(['-c', pop3Only, 'user', 'add', 'ivan', '--upstream-user', 'alice', '--password-stdin', '--check'], { input: 'not alices pop3 password\n' });
  expect(bad.code).toBe(1);
  expect(bad.stderr).toMatch(/postern: upstream check failed for "ivan": the upstream refused the login; nothing saved\n$/);
  expect(await exists('hana')).toBe(true);
  expect(await exists('ivan')).toBe(false);
});

it('checks through the SMTP upstream when SMTP is the only mail upstream configured', async () => {
  const smtpOnly = variantWith('smtp-only', { smtp: { upstream: { host: dovecot.host, port: dovecot.submissionsPort, security: 'tls', caFile: dovecot.caFile } } });
  const ok = await run(['-c', smtpOnly, 'user', 'add', 'jana', '--upstream-user', 'carol', '--password-stdin', '--check'], { input: CAROL_PW + '\n' });
  expect(ok.code, ok.stderr).toBe(0);
  expect(ok.stderr).toMatch(new RegExp(`^checking the login for "jana" at 127\\.0\\.0\\.2:${dovecot.submissionsPort}\\.\\.\\.\nupstream accepted the login\n$`));
  const bad = await run(['-c', smtpOnly, 'user', 'add', 'karl', '--upstream-user', 'carol', '--password-stdin', '--check'], { input: 'not carols smtp password\n' });
  expect(bad.code).toBe(1);
  expect(bad.stderr).toMatch(/postern: upstream check failed for "karl": the upstream refused the login; nothing saved\n$/);
  expect(await exists('jana')).toBe(true);
  expect(await exists('karl')).toBe(false);
});

it('refuses --check with no mail upstream configured, saving nothing', async () => {
  const none = variantWith('no-mail', {});
  const r = await run(['-c', none, 'user', 'add', 'lena', '--password-stdin', '--check'], { input: 'lena primary\n' });
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/--check needs an upstream in the config \(imap, pop3 or smtp\)/);
  expect(await exists('lena')).toBe(false);
});

it('no upstream or master secret appeared in any output', () => {
  for (const r of outputs) {
    for (const secret of [ALICE_PW, CAROL_PW, dovecot.masterUser.password, 'dora primary', 'not bobs password', 'any password at all', 'gina upstream pw', 'not alices pop3 password', 'not carols smtp password', 'lena primary']) {
      expect(r.stdout + r.stderr).not.toContain(secret);
    }
  }
});
