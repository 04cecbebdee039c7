/**
 * POP3 through postern to a real Dovecot, with real clients (python's poplib, fetchmail):
 *  - implicit TLS and STLS fronts, each to an implicit-TLS and to an STLS upstream, USER/PASS
 *    and AUTH PLAIN (with initial response, RFC 5034): the client reads exactly the messages
 *    Dovecot holds, byte for byte;
 *  - CAPA in clear offers STLS and neither USER nor SASL (RFC 2595 §4), and lists them after STLS;
 *  - the primary password is refused with the sentence IMAP uses; a password without the pop3
 *    scope is refused like a wrong one; a master-user account logs in upstream with AUTH PLAIN;
 *  - nothing secret reaches the logs (checked at stop by the harness).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PRIMARY_PASSWORD_REFUSED_TEXT } from '../../src/auth/types.js';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { deliver, fetchmail, message, poplib, pop3Config, rawTls } from './support.js';

const DAVE = { name: 'dave', password: 'dave-real-Secret-5' };
const DAVE_PRIMARY = 'dave-primary-Secret-6';
const ERIN = { name: 'erin', password: 'erin-real-Secret-7' };
const ERIN_PRIMARY = 'erin-primary-Secret-8';
const MASTER = { name: 'postern-master', password: 'master-real-Secret-9' };
const BODIES = ['First message.\r\n', `Second, with a dot line:\r\n.\r\n..two dots\r\n${'x'.repeat(2000)}\r\n`];

let dovecot: DovecotServer;
let tlsUp: PosternHarness;
let stlsUp: PosternHarness;
let dir: string;
let caFile: string;
let password: string;
let stlsPassword: string;

beforeAll(async () => {
  dovecot = await startDovecot({ users: [DAVE, ERIN], masterUser: MASTER });
  await deliver(dovecot, DAVE, BODIES.map((b, i) => message(`pop${i}`, b)));
  await deliver(dovecot, ERIN, [message('erin0')]);
  const secrets = [DAVE.password, ERIN.password, MASTER.password];
  tlsUp = await startPostern({ config: { pop3: pop3Config(dovecot, 'tls'), master: { user: MASTER.name, password: MASTER.password } }, secrets });
  stlsUp = await startPostern({ config: { pop3: pop3Config(dovecot, 'starttls') }, secrets });
  await tlsUp.addUser('dave', DAVE_PRIMARY, { mode: 'password', secret: DAVE.password });
  await tlsUp.addUser('erin', ERIN_PRIMARY, { mode: 'master', user: 'erin' });
  await stlsUp.addUser('dave', DAVE_PRIMARY, { mode: 'password', secret: DAVE.password });
  password = (await tlsUp.newPassword('dave', DAVE_PRIMARY, { scopes: 'pop3' })).password;
  stlsPassword = (await stlsUp.newPassword('dave', DAVE_PRIMARY)).password;
  dir = mkdtempSync(path.join(tmpdir(), 'postern-pop3-'));
  caFile = path.join(dir, 'postern-ca.pem');
  writeFileSync(caFile, tlsUp.caPem);
  writeFileSync(path.join(dir, 'stls-ca.pem'), stlsUp.caPem);
}, 120_000);

afterAll(async () => {
  await tlsUp?.stop();
  await stlsUp?.stop();
  await dovecot?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** What Dovecot stores: the appended message, as POP3 hands it out (lines, no final CRLF). */
function expectedMessages(): string[] {
  return BODIES.map((b, i) => message(`pop${i}`, b).replace(/\r\n$/, ''));
}

describe('python poplib', () => {
  it('implicit TLS front, implicit TLS upstream, USER/PASS: every message byte for byte', async () => {
    const out = await poplib({ port: tlsUp.port('pop3.implicitTls'), mode: 'tls', user: 'dave', password, caFile });
    expect(out.error).toBeUndefined();
    expect(out.login).toBe('+OK Logged in.');
    expect((out.stat as number[])[0]).toBe(2);
    expect(out.messages).toEqual(expectedMessages());
    expect(out.quit).toMatch(/^\+OK/);
    expect(tlsUp.logs.events('session.started').at(-1)).toMatchObject({ protocol: 'pop3', user: 'dave' });
  }, 30_000);

  it('STLS front, STLS upstream, AUTH PLAIN with initial response', async () => {
    const out = await poplib({ port: stlsUp.port('pop3.starttls'), mode: 'stls', user: 'dave', password: stlsPassword, caFile: path.join(dir, 'stls-ca.pem'), auth: 'plain' });
    expect(out.error).toBeUndefined();
    expect(out.capa_before).toEqual(['AUTH-RESP-CODE', 'RESP-CODES', 'STLS', 'TOP', 'UIDL']);
    expect(out.capa).toEqual(['AUTH-RESP-CODE', 'RESP-CODES', 'SASL', 'TOP', 'UIDL', 'USER']);
    expect(out.login).toBe('+OK Logged in.');
    expect(out.messages).toEqual(expectedMessages());
  }, 30_000);

  it('a master-user account logs in upstream with AUTH PLAIN naming the account', async () => {
    const erinPassword = (await tlsUp.newPassword('erin', ERIN_PRIMARY)).password;
    const out = await poplib({ port: tlsUp.port('pop3.implicitTls'), mode: 'tls', user: 'erin', password: erinPassword, caFile });
    expect(out.error).toBeUndefined();
    expect(out.messages).toEqual([message('erin0').replace(/\r\n$/, '')]);
  }, 30_000);

  it('the primary password is refused with the same sentence as IMAP', async () => {
    const out = await poplib({ port: tlsUp.port('pop3.implicitTls'), mode: 'tls', user: 'dave', password: DAVE_PRIMARY, caFile });
    expect(out.error).toBe(`-ERR [AUTH] ${PRIMARY_PASSWORD_REFUSED_TEXT}`);
    expect(tlsUp.logs.events('auth.primary_refused').length).toBeGreaterThan(0);
  }, 30_000);

  it('a password without the pop3 scope is refused like a wrong one', async () => {
    const imapOnly = (await tlsUp.newPassword('dave', DAVE_PRIMARY, { scopes: 'imap,smtp' })).password;
    const out = await poplib({ port: tlsUp.port('pop3.implicitTls'), mode: 'tls', user: 'dave', password: imapOnly, caFile });
    expect(out.error).toBe('-ERR [AUTH] Authentication failed.');
  }, 30_000);
});

describe('fetchmail', () => {
  it('polls over implicit TLS and delivers every message', async () => {
    const result = await fetchmail({ dir: mkdtempSync(path.join(dir, 'fm-')), port: tlsUp.port('pop3.implicitTls'), mode: 'ssl', user: 'dave', password, caFile });
    expect(result.code, result.stderr + result.stdout).toBe(0);
    const delivered = readFileSync(result.deliveredFile, 'utf8');
    expect(delivered).toContain('Subject: pop0');
    expect(delivered).toContain('Subject: pop1');
    // Dovecot dot-stuffs (RFC 1939 §3), fetchmail unstuffs: the lines arrive as they were sent,
    // so the relay passed the stuffed lines untouched.
    expect(delivered).toMatch(/^\.\r?\n\.\.two dots\r?$/m);
    expect(delivered).not.toMatch(/^\.\.\./m);
  }, 60_000);

  it('polls over STLS and delivers every message', async () => {
    const result = await fetchmail({ dir: mkdtempSync(path.join(dir, 'fm-')), port: stlsUp.port('pop3.starttls'), mode: 'stls', user: 'dave', password: stlsPassword, caFile: path.join(dir, 'stls-ca.pem') });
    expect(result.code, result.stderr + result.stdout).toBe(0);
    expect(result.stdout + result.stderr).toMatch(/STLS/);
    expect(readFileSync(result.deliveredFile, 'utf8').match(/^Subject: pop\d/gm)).toEqual(['Subject: pop0', 'Subject: pop1']);
  }, 60_000);
});

describe('the relay', () => {
  it('passes the upstream commands through after login (UIDL, TOP, DELE then RSET)', async () => {
    const c = await rawTls(tlsUp);
    c.write(`USER dave\r\nPASS ${password}\r\n`);
    expect(await c.readLine()).toBe('+OK Send PASS.');
    expect(await c.readLine()).toBe('+OK Logged in.');
    c.write('TOP 1 0\r\n');
    const top = await c.readUntil((l) => l === '.');
    expect(top[0]).toMatch(/^\+OK/);
    expect(top).toContain('Subject: pop0');
    c.write('DELE 1\r\nRSET\r\nQUIT\r\n');
    expect(await c.readLine()).toMatch(/^\+OK/);
    expect(await c.readLine()).toMatch(/^\+OK/);
    expect(await c.readLine()).toMatch(/^\+OK/);
    await c.closed;
  }, 30_000);
});
