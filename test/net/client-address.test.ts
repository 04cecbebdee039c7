/**
 * One client address, whatever path it takes through postern. Each protocol listens dual-stack
 * (`::`), so an IPv4 client arrives as the IPv4-mapped `::ffff:127.0.0.1`; the same client must
 * be one and the same `127.0.0.1` to:
 *  - the connection limiter (a second connection is over `maxConnectionsPerAddress: 1`, and its
 *    `connection.limit` line names 127.0.0.1),
 *  - the throttle (two wrong passwords from it block 127.0.0.1: `auth.blocked`),
 *  - every log line that carries an `ip` (auth.ok, auth.refused, connection bindings), and no
 *    line shows the mapped form,
 *  - the history (every event's address, the password's last-use address).
 * The upstreams are a closed port: all of this happens before postern reaches them.
 */
import https from 'node:https';
import { afterEach, describe, expect, it } from 'vitest';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { connectLineClient, type LineClient } from '../helpers/line-client.js';

const CLOSED = { host: '127.0.0.1', port: 9 };
const dualStack = { host: '::', port: 0 };
const limits = { maxConnections: 100, maxConnectionsPerAddress: 1 };
const auth = { throttle: { baseDelayMs: 0, maxDelayMs: 0, blockAfterFailures: 2, blockMs: 60_000, windowMs: 60_000 } };
/** Two different wrong passwords: the throttle does not count one repeated password twice. */
const WRONG = ['wrong-wrong-wrong', 'wrong-wrong-wrong-wrong'] as const;

let postern: PosternHarness | undefined;
const open: Array<{ close(): void }> = [];
afterEach(async () => {
  open.splice(0).forEach((c) => c.close());
  await postern?.stop();
  postern = undefined;
});

async function start(config: Record<string, unknown>): Promise<{ postern: PosternHarness; password: string }> {
  postern = await startPostern({ config: { ...config, auth } });
  await postern.addUser('alice', 'alice primary password');
  return { postern, password: (await postern.newPassword('alice', 'alice primary password')).password };
}

async function line(port: number, tls: boolean): Promise<LineClient> {
  const client = await connectLineClient({ host: '127.0.0.1', port, tls: tls ? { rejectUnauthorized: false } : undefined });
  open.push(client);
  return client;
}

/** What every protocol must show once its client has connected twice, logged in once, failed twice. */
async function expectOneAddress(p: PosternHarness): Promise<void> {
  expect(p.logs.events('connection.limit')).toEqual([expect.objectContaining({ ip: '127.0.0.1', limit: 'address' })]);
  expect(p.logs.events('auth.ok')).toEqual([expect.objectContaining({ ip: '127.0.0.1' })]);
  expect(p.logs.events('auth.refused').map((e) => e.ip)).toEqual(['127.0.0.1', '127.0.0.1']);
  expect(p.logs.events('auth.blocked')).toEqual([expect.objectContaining({ ip: '127.0.0.1' })]);
  const withIp = p.logs.entries().filter((e) => 'ip' in e);
  expect(withIp.length).toBeGreaterThanOrEqual(5);
  expect(new Set(withIp.map((e) => e.ip))).toEqual(new Set(['127.0.0.1']));
  expect(p.logs.lines.filter((l) => l.includes('::ffff:'))).toEqual([]);
  await expect.poll(async () => (await p.accounts.history('alice')).filter((e) => e.type === 'login.failed').length).toBe(2);
  const history = await p.accounts.history('alice');
  expect(history.filter((e) => e.address !== null).map((e) => e.address)).toEqual(history.filter((e) => e.address !== null).map(() => '127.0.0.1'));
  await expect.poll(async () => (await p.accounts.listPasswords('alice'))[0]?.lastUsedAddress).toBe('127.0.0.1');
}

describe('a v4-mapped client is one address to limiter, throttle, logs and history', () => {
  it('IMAP', async () => {
    const { postern: p, password } = await start({ imap: { implicitTls: dualStack, upstream: CLOSED, limits } });
    const port = p.port('imap.implicitTls');
    const first = await line(port, true);
    expect(await first.readLine()).toMatch(/^\* OK/);
    const second = await line(port, true);
    expect(await second.readLine()).toMatch(/^\* BYE Too many connections/);
    first.write(`a1 LOGIN alice "${password}"\r\n`);
    expect((await first.readUntil((l) => l.startsWith('a1 '))).at(-1)).toMatch(/^a1 NO/); // upstream closed
    for (const [i, tag] of ['a2', 'a3'].entries()) {
      first.write(`${tag} LOGIN alice ${WRONG[i]}\r\n`);
      expect((await first.readUntil((l) => l.startsWith(`${tag} `))).at(-1)).toMatch(new RegExp(`^${tag} NO`));
    }
    await expectOneAddress(p);
  });

  it('SMTP', async () => {
    const { postern: p, password } = await start({ smtp: { implicitTls: dualStack, upstream: CLOSED, limits } });
    const port = p.port('smtp.implicitTls');
    const first = await line(port, true);
    expect(await first.readLine()).toMatch(/^220 /);
    const second = await line(port, true);
    expect(await second.readLine()).toMatch(/^421 /);
    first.write('EHLO client.example\r\n');
    await first.readUntil((l) => l.startsWith('250 '));
    const plain = (pw: string) => Buffer.from(`\0alice\0${pw}`).toString('base64');
    first.write(`AUTH PLAIN ${plain(password)}\r\n`);
    expect(await first.readLine()).toMatch(/^454 /); // upstream closed
    for (const wrong of WRONG) {
      first.write(`AUTH PLAIN ${plain(wrong)}\r\n`);
      expect(await first.readLine()).toMatch(/^535 /);
    }
    await expectOneAddress(p);
  });

  it('DAV', async () => {
    const { postern: p, password } = await start({ dav: { listener: dualStack, caldavUpstream: 'http://127.0.0.1:9/', limits } });
    const port = p.port('dav');
    const first = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
    const second = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
    open.push({ close: () => first.destroy() }, { close: () => second.destroy() });
    const get = (agent: https.Agent, pw: string) => new Promise<number>((resolve, reject) => {
      const req = https.get({ host: '127.0.0.1', port, path: '/alice/', agent, headers: { authorization: `Basic ${Buffer.from(`alice:${pw}`).toString('base64')}` } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
    });
    expect(await get(first, password)).toBe(502); // upstream closed; the connection stays open
    expect(await get(second, password)).toBe(503);
    for (const wrong of WRONG) expect(await get(first, wrong)).toBe(401);
    await expectOneAddress(p);
  });
});
