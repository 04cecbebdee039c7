// What a POP3 client sees when the upstream misbehaves. Against the real Dovecot: refused stored
// credentials give `-ERR [SYS/PERM]` and flag the account; an
// unreachable upstream and an untrusted certificate give `-ERR [SYS/TEMP]`, are logged, and the
// connection stays usable (never a fallback to an unverified certificate). Against a scripted
// in-process upstream (for what Dovecot will not do on cue): `-ERR [IN-USE]` to the login is the
// provider's refusal, passed on with its code and text (issue 18), not a refusal of the credentials; an upstream that dies mid-session closes the client's
// connection instead of leaving it hanging. Also: shutdown ends live sessions; a bad CA file
// stops start-up.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { freePort } from '../helpers/free-port.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { pop3Config, rawTls } from './support.js';

const DAVE = { name: 'dave', password: 'dave-real-Secret-5' };
const PRIMARY = 'dave-primary-Secret-6';

let dovecot: DovecotServer;

beforeAll(async () => {
  dovecot = await startDovecot({ users: [DAVE] });
}, 60_000);

afterAll(async () => {
  await dovecot?.stop();
});

async function startWith(pop3: Record<string, unknown>, secret = DAVE.password): Promise<{ postern: PosternHarness; password: string }> {
  const postern = await startPostern({ config: { pop3 }, secrets: [DAVE.password, secret] });
  await postern.addUser('dave', PRIMARY, { mode: 'password', secret });
  return { postern, password: (await postern.newPassword('dave', PRIMARY)).password };
}

async function login(postern: PosternHarness, password: string) {
  const c = await rawTls(postern);
  c.write(`USER dave\r\nPASS ${password}\r\n`);
  expect(await c.readLine()).toBe('+OK Send PASS.');
  return c;
}

/** A scripted plaintext POP3 upstream: greets, takes USER, answers PASS with `passReply`, then `after`. */
async function scriptedUpstream(passReply: string, after: (socket: net.Socket) => void = () => undefined): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.write('+OK scripted\r\n');
    let buffer = '';
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (let end = buffer.indexOf('\r\n'); end >= 0; end = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (line === 'CAPA') socket.write('+OK\r\nUSER\r\n.\r\n');
        else if (line.startsWith('USER ')) socket.write('+OK\r\n');
        else if (line.startsWith('PASS ')) {
          socket.write(`${passReply}\r\n`);
          if (passReply.startsWith('+OK')) after(socket);
        } else socket.write('+OK 0 0\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const plainUpstream = (port: number) => ({
  implicitTls: { host: '127.0.0.1', port: 0 },
  upstream: { host: '127.0.0.1', port, security: 'plain', connectTimeoutMs: 2_000, greetingTimeoutMs: 2_000 },
});

describe('login faults', () => {
  it('an upstream refusing the stored credentials flags the account', async () => {
    const wrong = await startWith(pop3Config(dovecot), 'not-the-real-Secret-1');
    try {
      const c = await login(wrong.postern, wrong.password);
      expect(await c.readLine()).toBe('-ERR [SYS/PERM] The mail server refused the credentials postern holds for this account; the administrator has been notified.');
      c.close();
      // The flag goes through the write queue after the answer: waited for, not read at once.
      await expect.poll(async () => (await wrong.postern.app.store.accounts.findByLogin('dave'))?.upstreamStatus, { timeout: 5_000 }).toBe('rejected');
      expect(wrong.postern.logs.events('upstream.credentials_rejected')).toMatchObject([{ protocol: 'pop3' }]);
    } finally {
      await wrong.postern.stop();
    }
  }, 30_000);

  it('an unreachable upstream and an untrusted upstream certificate give -ERR [SYS/TEMP], logged; the connection stays usable', async () => {
    const dead = await startWith(pop3Config({ ...dovecot, pop3sPort: await freePort(dovecot.host) }));
    const untrusted = await startWith({ ...pop3Config(dovecot), upstream: { ...(pop3Config(dovecot).upstream as object), caFile: undefined } });
    try {
      for (const [p, pass, code] of [[dead.postern, dead.password, 'UPSTREAM_UNAVAILABLE'], [untrusted.postern, untrusted.password, 'UPSTREAM_TLS_FAILED']] as const) {
        const c = await login(p, pass);
        expect(await c.readLine()).toBe('-ERR [SYS/TEMP] The mail server cannot be reached right now; please try again later.');
        c.write('NOOP\r\n');
        expect(await c.readLine()).toBe('+OK NOOP.');
        c.close();
        expect(p.logs.events('upstream.fault').map((e) => e.code)).toContain(code);
        expect((await p.app.store.accounts.findByLogin('dave'))?.upstreamStatus).not.toBe('rejected');
      }
    } finally {
      await Promise.all([dead.postern.stop(), untrusted.postern.stop()]);
    }
  }, 30_000);

  it('-ERR [IN-USE] to the upstream login is the provider\'s refusal, passed on, not a refusal of the credentials (RFC 3206)', async () => {
    const upstream = await scriptedUpstream('-ERR [IN-USE] Mailbox locked by another session');
    const p = await startWith(plainUpstream(upstream.port));
    try {
      const c = await login(p.postern, p.password);
      expect(await c.readLine()).toBe('-ERR [IN-USE] Mailbox locked by another session');
      c.close();
      expect((await p.postern.app.store.accounts.findByLogin('dave'))?.upstreamStatus).not.toBe('rejected');
      expect(p.postern.logs.events('upstream.login_refused')).toMatchObject([{ code: 'IN-USE', temporary: true, protocol: 'pop3' }]);
      expect(p.postern.logs.events('upstream.fault')).toEqual([]);
      expect(p.postern.logs.events('upstream.plaintext')).toHaveLength(1);
    } finally {
      await p.postern.stop();
      await upstream.close();
    }
  }, 30_000);
});

describe('the relayed session', () => {
  it('an upstream that dies mid-session closes the client connection', async () => {
    const upstream = await scriptedUpstream('+OK logged in', (socket) => setTimeout(() => socket.destroy(), 200));
    const p = await startWith(plainUpstream(upstream.port));
    try {
      const c = await login(p.postern, p.password);
      expect(await c.readLine()).toBe('+OK Logged in.');
      await c.closed;
      expect(p.postern.logs.events('session.closed').at(-1)).toMatchObject({ relayed: true, why: 'relay ended by upstream' });
    } finally {
      await p.postern.stop();
      await upstream.close();
    }
  }, 30_000);

  it('shutting postern down ends live sessions', async () => {
    const p = await startWith(pop3Config(dovecot));
    const c = await login(p.postern, p.password);
    expect(await c.readLine()).toBe('+OK Logged in.');
    const idle = await rawTls(p.postern);
    await p.postern.stop();
    await c.closed;
    await idle.closed;
  }, 30_000);

  it('refuses to start with an unreadable upstream CA file', async () => {
    await expect(startPostern({ config: { pop3: { ...pop3Config(dovecot), upstream: { ...(pop3Config(dovecot).upstream as object), caFile: '/nonexistent/ca.pem' } } } })).rejects.toThrow(/upstream CA file/);
  });
});
