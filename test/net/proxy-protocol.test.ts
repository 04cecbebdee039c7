/**
 * Postern behind a real HAProxy speaking the PROXY protocol (v2, and v1 on one route), every
 * listener configured with `proxyProtocol.from: [127.0.0.1]` (where HAProxy connects from).
 * Clients connect to HAProxy from other loopback addresses (127.0.0.5…), so what postern records
 * tells the client from the balancer. Pinned:
 *  - IMAP sessions through HAProxy log in to a real Dovecot and work; the address in
 *    `session.started`, the password's last use and the history is the client's, never HAProxy's;
 *  - on every listener (IMAP ×2, POP3 ×2, SMTP ×2, DAV) a refused login names the client's address
 *    in `auth.refused` and in the history; the throttle blocks the client that failed, not the
 *    balancer: another client through the same HAProxy still logs in;
 *  - spoofing: a host that is not the balancer sending its own PROXY header straight to postern is
 *    cut before any greeting, and the address it claimed appears nowhere;
 *  - a balancer set up without send-proxy (no header) is cut, not served with its own address.
 */
import https from 'node:https';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startHaproxy, type HaproxyServer } from '../helpers/haproxy.js';
import { connectLineClient, type LineClient } from '../helpers/line-client.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { pop3Config } from '../pop3/support.js';
import { imapConfig, quoted } from '../imap/support.js';

const ALICE = { name: 'alice', password: 'alice-real-Secret-1' };
const PRIMARY = 'alice-primary-Secret-2';
const behindBalancer = { proxyProtocol: { from: ['127.0.0.1'], timeoutMs: 1_000 } };
const listener = { host: '127.0.0.1', port: 0, ...behindBalancer };
const throttle = { baseDelayMs: 0, maxDelayMs: 0, blockAfterFailures: 3, blockMs: 60_000, windowMs: 60_000 };

let dovecot: DovecotServer;
let postern: PosternHarness;
let haproxy: HaproxyServer;
let password: string;
const open: LineClient[] = [];

beforeAll(async () => {
  dovecot = await startDovecot({ users: [ALICE] });
  postern = await startPostern({
    config: {
      auth: { throttle },
      imap: imapConfig(dovecot, 'tls', { implicitTls: listener, starttls: listener }),
      pop3: pop3Config(dovecot, 'tls', { implicitTls: listener, starttls: listener }),
      smtp: { implicitTls: listener, starttls: listener, upstream: { host: dovecot.host, port: dovecot.submissionsPort, security: 'tls', caFile: dovecot.caFile } },
      dav: { listener, caldavUpstream: 'http://127.0.0.1:9/' },
    },
    secrets: [ALICE.password],
  });
  await postern.addUser('alice', PRIMARY, { mode: 'password', secret: ALICE.password });
  password = (await postern.newPassword('alice', PRIMARY)).password;
  const names = ['imap.implicitTls', 'imap.starttls', 'pop3.implicitTls', 'pop3.starttls', 'smtp.implicitTls', 'smtp.starttls', 'dav'];
  haproxy = await startHaproxy([
    ...names.map((name) => ({ name: name.replace('.', '_'), backendPort: postern.port(name), proxy: 'v2' as const })),
    { name: 'imap_v1', backendPort: postern.port('imap.starttls'), proxy: 'v1' },
    { name: 'imap_noproxy', backendPort: postern.port('imap.implicitTls'), proxy: 'none' },
  ]);
}, 120_000);

afterAll(async () => {
  open.splice(0).forEach((c) => c.close());
  await haproxy?.stop();
  await postern?.stop();
  await dovecot?.stop();
});

async function client(route: string, from: string, tls: boolean): Promise<LineClient> {
  const c = await connectLineClient({ host: '127.0.0.1', port: haproxy.port(route), localAddress: from, tls: tls ? { rejectUnauthorized: false } : undefined });
  open.push(c);
  return c;
}

async function imapCommand(c: LineClient, tag: string, command: string): Promise<string> {
  c.write(`${tag} ${command}\r\n`);
  return (await c.readUntil((l) => l.startsWith(`${tag} `))).at(-1)!;
}

const historyAddresses = async () => (await postern.accounts.history('alice')).map((e) => e.address).filter((a) => a !== null);

describe('through HAProxy with PROXY v2', () => {
  it('an IMAP session logs in upstream, and its address is the client\'s everywhere', async () => {
    const c = await client('imap_implicitTls', '127.0.0.5', true);
    expect(await c.readLine()).toMatch(/^\* OK/);
    expect(await imapCommand(c, 'a1', `LOGIN alice ${quoted(password)}`)).toMatch(/^a1 OK/);
    expect(await imapCommand(c, 'a2', 'SELECT INBOX')).toMatch(/^a2 OK/);
    expect(await imapCommand(c, 'a3', 'LOGOUT')).toMatch(/^a3 OK/);
    expect(postern.logs.events('session.started')).toEqual([expect.objectContaining({ protocol: 'imap', ip: '127.0.0.5' })]);
    await expect.poll(async () => (await postern.accounts.listPasswords('alice'))[0]?.lastUsedAddress).toBe('127.0.0.5');
    await expect.poll(historyAddresses).toContain('127.0.0.5');
  });

  it('PROXY v1 on the STARTTLS listener: the session works across the upgrade, address kept', async () => {
    const c = await client('imap_v1', '127.0.0.6', false);
    expect(await c.readLine()).toMatch(/^\* OK/);
    expect(await imapCommand(c, 's1', 'STARTTLS')).toMatch(/^s1 OK/);
    await c.startTls({ rejectUnauthorized: false });
    expect(await imapCommand(c, 's2', `LOGIN alice ${quoted(password)}`)).toMatch(/^s2 OK/);
    await imapCommand(c, 's3', 'LOGOUT');
    expect(postern.logs.events('session.started').map((e) => e.ip)).toContain('127.0.0.6');
  });

  it('every listener names the client in auth.refused and in the history', async () => {
    const wrong = 'wrong-wrong-wrong';
    const plain = Buffer.from(`\0alice\0${wrong}`).toString('base64');
    const imapTls = await client('imap_implicitTls', '127.0.0.11', true);
    await imapTls.readLine();
    expect(await imapCommand(imapTls, 'b1', `LOGIN alice ${wrong}`)).toMatch(/^b1 NO/);
    const imapPlain = await client('imap_starttls', '127.0.0.12', false);
    await imapPlain.readLine();
    await imapCommand(imapPlain, 'b1', 'STARTTLS');
    await imapPlain.startTls({ rejectUnauthorized: false });
    expect(await imapCommand(imapPlain, 'b2', `LOGIN alice ${wrong}`)).toMatch(/^b2 NO/);
    const pop3Tls = await client('pop3_implicitTls', '127.0.0.13', true);
    await pop3Tls.readLine();
    pop3Tls.write(`AUTH PLAIN ${plain}\r\n`);
    expect(await pop3Tls.readLine()).toMatch(/^-ERR/);
    const pop3Plain = await client('pop3_starttls', '127.0.0.14', false);
    await pop3Plain.readLine();
    pop3Plain.write('STLS\r\n');
    expect(await pop3Plain.readLine()).toMatch(/^\+OK/);
    await pop3Plain.startTls({ rejectUnauthorized: false });
    pop3Plain.write(`AUTH PLAIN ${plain}\r\n`);
    expect(await pop3Plain.readLine()).toMatch(/^-ERR/);
    const smtpTls = await client('smtp_implicitTls', '127.0.0.15', true);
    expect(await smtpTls.readLine()).toMatch(/^220 /);
    smtpTls.write('EHLO client.example\r\n');
    await smtpTls.readUntil((l) => l.startsWith('250 '));
    smtpTls.write(`AUTH PLAIN ${plain}\r\n`);
    expect(await smtpTls.readLine()).toMatch(/^535 /);
    const smtpPlain = await client('smtp_starttls', '127.0.0.16', false);
    expect(await smtpPlain.readLine()).toMatch(/^220 /);
    smtpPlain.write('EHLO client.example\r\n');
    await smtpPlain.readUntil((l) => l.startsWith('250 '));
    smtpPlain.write('STARTTLS\r\n');
    expect(await smtpPlain.readLine()).toMatch(/^220 /);
    await smtpPlain.startTls({ rejectUnauthorized: false });
    smtpPlain.write('EHLO client.example\r\n');
    await smtpPlain.readUntil((l) => l.startsWith('250 '));
    smtpPlain.write(`AUTH PLAIN ${plain}\r\n`);
    expect(await smtpPlain.readLine()).toMatch(/^535 /);
    expect(await davStatus('127.0.0.17', wrong)).toBe(401);
    const expected = ['127.0.0.11', '127.0.0.12', '127.0.0.13', '127.0.0.14', '127.0.0.15', '127.0.0.16', '127.0.0.17'];
    await expect.poll(() => postern.logs.events('auth.refused').map((e) => e.ip)).toEqual(expected);
    await expect.poll(async () => (await postern.accounts.history('alice')).filter((e) => e.type === 'login.failed').map((e) => e.address).sort()).toEqual(expected);
    expect(postern.logs.entries().filter((e) => e.ip === '127.0.0.1')).toEqual([]);
  });

  it('the throttle blocks the client that failed, not the balancer every client comes through', async () => {
    const attacker = await client('imap_implicitTls', '127.0.0.21', true);
    await attacker.readLine();
    for (const tag of ['t1', 't2', 't3']) await imapCommand(attacker, tag, `LOGIN alice wrong-password-${tag}`);
    // The account has failures from many addresses by now: the attacker's address is refused
    // unchecked from its second try (penalty-throttle.ts), and only it.
    await expect.poll(() => postern.logs.events('auth.refused').filter((e) => e.reason === 'throttled').map((e) => e.ip)).toEqual(['127.0.0.21', '127.0.0.21']);
    const user = await client('imap_implicitTls', '127.0.0.22', true);
    await user.readLine();
    expect(await imapCommand(user, 'u1', `LOGIN alice ${quoted(password)}`)).toMatch(/^u1 OK/);
    await imapCommand(user, 'u2', 'LOGOUT');
  });
});

describe('refused', () => {
  it('spoofed PROXY header from a host that is not the balancer: cut before the greeting, its claim recorded nowhere', async () => {
    const refusalsBefore = postern.logs.events('proxy.refused').length;
    const socket = net.connect({ host: '127.0.0.1', port: postern.port('imap.starttls'), localAddress: '127.0.0.9' });
    socket.on('error', () => undefined);
    socket.write('PROXY TCP4 198.51.100.77 127.0.0.1 4000 143\r\n');
    const received: Buffer[] = [];
    socket.on('data', (d: Buffer) => received.push(d));
    await new Promise((r) => socket.once('close', r));
    expect(Buffer.concat(received).length).toBe(0);
    expect(postern.logs.events('proxy.refused').slice(refusalsBefore)).toEqual([
      expect.objectContaining({ listener: 'imap.starttls', peer: '127.0.0.9', reason: 'source is not a configured load balancer' }),
    ]);
    expect(postern.logs.lines.filter((l) => l.includes('198.51.100.77'))).toEqual([]);
  });

  it('a balancer that sends no header (send-proxy missing) is cut, not served as the client', async () => {
    const refusalsBefore = postern.logs.events('proxy.refused').length;
    const refused = await client('imap_noproxy', '127.0.0.10', true).then(() => null, (err: NodeJS.ErrnoException) => err);
    expect(refused).toBeInstanceOf(Error);
    // Up to 5 s: the PostgreSQL pass once found no line within the default second (not reproduced
    // in runs of the file alone); the message says how the client failed and what was logged before.
    await expect.poll(() => postern.logs.events('proxy.refused').slice(refusalsBefore), {
      timeout: 5_000,
      message: `client failed with ${refused?.code ?? ''} ${refused?.message ?? ''}; refusals logged before: ${JSON.stringify(postern.logs.events('proxy.refused'))}`,
    }).toEqual([
      expect.objectContaining({ listener: 'imap.implicitTls', peer: '127.0.0.1', reason: 'no PROXY header' }),
    ]);
  });
});

function davStatus(from: string, pw: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.get({
      host: '127.0.0.1', port: haproxy.port('dav'), path: '/alice/', localAddress: from, rejectUnauthorized: false, agent: false,
      headers: { authorization: `Basic ${Buffer.from(`alice:${pw}`).toString('base64')}` },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}
