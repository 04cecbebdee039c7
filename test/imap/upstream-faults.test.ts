// What the client sees when the upstream misbehaves, with scripted fake upstreams. Invariants:
// a hanging, closing, unreachable or untrusted upstream gives `NO [UNAVAILABLE]` plus a
// sentence, is logged, and postern keeps serving; refused stored credentials flag the account;
// an upstream dying mid-session gives the client `* BYE` and a close, never a hang. Also: the
// upstream connection opens when the client connects and goes when it leaves; ID is passed on,
// x-originating-ip only to a trusted upstream; commands pipelined after LOGIN reach the upstream.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSelfSigned } from '../../src/net/certs.js';
import { freePort } from '../helpers/free-port.js';
import { connectLineClient } from '../helpers/line-client.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { fakeImapConfig, startFakeUpstream, type FakeUpstream } from './fake-upstream.js';
import { quoted, rawPlain, rawTls, sleep } from './support.js';

const PRIMARY = 'erin-primary-Secret-7';
const UPSTREAM_SECRET = 'erin-upstream-Secret-8';

let fake: FakeUpstream;
let postern: PosternHarness;
let password: string;

async function startWith(imap: Record<string, unknown>): Promise<{ postern: PosternHarness; password: string }> {
  const p = await startPostern({ config: { imap }, secrets: [UPSTREAM_SECRET] });
  await p.addUser('erin', PRIMARY, { mode: 'password', secret: UPSTREAM_SECRET });
  return { postern: p, password: (await p.newPassword('erin', PRIMARY)).password };
}

async function login(p: PosternHarness, pass: string, extra = '') {
  const c = await rawTls(p);
  c.write(`${extra}a LOGIN erin ${quoted(pass)}\r\n`);
  return c;
}

beforeAll(async () => {
  fake = await startFakeUpstream();
  ({ postern, password } = await startWith(fakeImapConfig(fake)));
});

afterAll(async () => {
  await postern?.stop();
  await fake?.stop();
});

describe('faults during login', () => {
  it('an upstream that hangs mid-login gives NO [UNAVAILABLE] after the timeout, and postern goes on', async () => {
    fake.login = 'hang';
    try {
      const c = await login(postern, password);
      const started = Date.now();
      expect(await c.readLine(5_000)).toBe('a NO [UNAVAILABLE] The mail server cannot be reached right now; please try again later.');
      expect(Date.now() - started).toBeGreaterThanOrEqual(400);
      fake.login = 'ok';
      c.write(`b LOGIN erin ${quoted(password)}\r\n`);
      expect(await c.readLine()).toMatch(/^b OK \[CAPABILITY /);
      c.close();
      const fault = postern.logs.events('upstream.fault').find((e) => e.code === 'UPSTREAM_TIMEOUT');
      expect(fault).toBeDefined();
    } finally {
      fake.login = 'ok';
    }
  });

  it('an upstream that drops the connection mid-login gives NO [UNAVAILABLE]', async () => {
    fake.login = 'close';
    try {
      const c = await login(postern, password);
      expect(await c.readLine()).toMatch(/^a NO \[UNAVAILABLE\] /);
      c.close();
    } finally {
      fake.login = 'ok';
    }
  });

  it('an upstream refusing the stored credentials flags the account', async () => {
    fake.login = 'no';
    try {
      const c = await login(postern, password);
      expect(await c.readLine()).toMatch(/^a NO \[UNAVAILABLE\] The mail server refused the credentials/);
      c.close();
      // The flag goes through the write queue after the answer: waited for, not read at once.
      await expect.poll(async () => (await postern.app.store.accounts.findByLogin('erin'))?.upstreamStatus, { timeout: 5_000 }).toBe('rejected');
    } finally {
      fake.login = 'ok';
    }
    // A later good login clears the flag.
    const d = await login(postern, password);
    expect(await d.readLine()).toMatch(/^a OK /);
    d.close();
    await expect.poll(async () => (await postern.app.store.accounts.findByLogin('erin'))?.upstreamStatus, { timeout: 5_000 }).toBe('ok');
  });

  it('asks the upstream for capabilities when its OK carries none', async () => {
    fake.login = 'ok-no-capability';
    try {
      const c = await login(postern, password);
      expect(await c.readLine()).toBe('a OK [CAPABILITY IMAP4rev1 LITERAL+ IDLE NAMESPACE FAKE-EXTENSION] Logged in.');
      c.close();
    } finally {
      fake.login = 'ok';
    }
  });

  it('an unreachable upstream and an untrusted upstream certificate give NO [UNAVAILABLE], logged', async () => {
    const cert = generateSelfSigned(['localhost', '127.0.0.1']);
    const tlsFake = await startFakeUpstream({ tls: { key: cert.keyPem, cert: cert.certPem } });
    const dead = await startWith(fakeImapConfig({ ...fake, port: await freePort() }));
    const untrusted = await startWith(fakeImapConfig(tlsFake, { upstream: { security: 'tls' } }));
    try {
      for (const [p, pass, code] of [[dead.postern, dead.password, 'UPSTREAM_UNAVAILABLE'], [untrusted.postern, untrusted.password, 'UPSTREAM_TLS_FAILED']] as const) {
        const c = await login(p, pass);
        expect(await c.readLine()).toBe('a NO [UNAVAILABLE] The mail server cannot be reached right now; please try again later.');
        c.write('b NOOP\r\n');
        expect(await c.readLine()).toBe('b OK NOOP completed.');
        c.close();
        expect(p.logs.events('upstream.fault').map((e) => e.code)).toContain(code);
      }
    } finally {
      await Promise.all([dead.postern.stop(), untrusted.postern.stop(), tlsFake.stop()]);
    }
  });
});

describe('start-up', () => {
  it('refuses to start with an unreadable upstream CA file', async () => {
    await expect(startPostern({ config: { imap: fakeImapConfig(fake, { upstream: { security: 'tls', caFile: '/nonexistent/ca.pem' } }) } })).rejects.toThrow(/upstream CA file/);
  });
});

describe('the relayed session', () => {
  it('connects upstream as soon as the client connects, and lets go when it leaves unauthenticated', async () => {
    const before = fake.received.length;
    const live = fake.sockets.size;
    const c = await rawTls(postern);
    for (let i = 0; i < 50 && fake.received.length === before; i++) await sleep(10);
    expect(fake.received.length).toBe(before + 1);
    c.close();
    for (let i = 0; i < 100 && fake.sockets.size > live; i++) await sleep(10);
    expect(fake.sockets.size).toBe(live);
  });

  it('forwards commands pipelined after LOGIN, and the client\'s ID without its x-originating-ip', async () => {
    const c = await rawTls(postern);
    c.write('i ID ("name" "Thunderbird" "x-originating-ip" "6.6.6.6")\r\n');
    await c.readUntil((l) => l.startsWith('i OK'));
    c.write(`a LOGIN erin ${quoted(password)}\r\nb NOOP\r\nc SELECT INBOX\r\n`);
    expect(await c.readLine()).toMatch(/^a OK \[CAPABILITY /);
    expect(await c.readLine()).toBe('b OK NOOP done');
    expect(await c.readLine()).toBe('c OK SELECT done');
    const lines = fake.received.find((l) => l.includes('c SELECT INBOX'))!;
    expect(lines.find((l) => / ID /.test(l))).toBe('P1 ID ("name" "Thunderbird")');
    c.close();
  });

  it('does not pass on ID parameters the client sent in clear before STARTTLS', async () => {
    const c = await rawPlain(postern);
    c.write('i ID ("name" "injected-before-tls")\r\n');
    await c.readUntil((l) => l.startsWith('i OK'));
    c.write('s STARTTLS\r\n');
    expect(await c.readLine()).toMatch(/^s OK /);
    await c.startTls({ ca: postern.caPem, servername: 'localhost' });
    c.write(`a LOGIN erin ${quoted(password)}\r\nz SELECT sent-after-tls\r\n`);
    expect(await c.readLine()).toMatch(/^a OK \[CAPABILITY /);
    expect(await c.readLine()).toBe('z OK SELECT done');
    const lines = fake.received.find((l) => l.includes('z SELECT sent-after-tls'))!;
    expect(lines.some((l) => l.includes('LOGIN'))).toBe(true);
    expect(lines.filter((l) => l.includes('injected-before-tls'))).toEqual([]);
    c.close();
  });

  it('passes x-originating-ip to a trusted upstream', async () => {
    const trusted = await startWith(fakeImapConfig(fake, { upstream: { trusted: true } }));
    try {
      const c = await login(trusted.postern, trusted.password, 'i ID NIL\r\n');
      await c.readUntil((l) => l.startsWith('a OK'));
      c.write('t NOOP\r\n');
      await c.readLine();
      const idLines = fake.received.flat().filter((l) => /^P\d+ ID /.test(l));
      expect(idLines).toContain('P1 ID ("x-originating-ip" "127.0.0.1")');
      c.close();
    } finally {
      await trusted.postern.stop();
    }
  });

  it('relays a large response intact to a slow reader', async () => {
    const c = await login(postern, password);
    await c.readLine();
    const size = 4 * 1024 * 1024;
    c.socket().pause();
    c.write(`f BLOB ${size}\r\n`);
    await sleep(300); // the client reads nothing for a while; back-pressure holds the upstream
    c.socket().resume();
    expect(await c.readLine()).toBe(`* 1 FETCH (BODY[] {${size}}`);
    const body = await c.readBytes(size, 10_000);
    expect(body.every((b) => b === 0x78)).toBe(true);
    expect(await c.readLine()).toBe(')');
    expect(await c.readLine()).toBe('f OK done');
    c.close();
  });

  // DIE closes the upstream socket cleanly; RESET sends a TCP RST (postern sees ECONNRESET).
  it.each(['DIE', 'RESET'])('an upstream gone mid-session (%s) gives the client BYE and a close, not a hang', async (command) => {
    const c = await login(postern, password);
    await c.readLine();
    c.write(`d ${command}\r\n`);
    expect(await c.readLine(3_000)).toBe('* BYE Connection to the mail server was lost.');
    await c.closed;
  });

  it('an upstream LOGOUT is not followed by a BYE of postern\'s own', async () => {
    const c = await login(postern, password);
    await c.readLine();
    c.write('z LOGOUT\r\n');
    expect(await c.readLine()).toBe('* BYE bye');
    expect(await c.readLine()).toBe('z OK done');
    await c.closed;
    await expect(c.readLine(200)).rejects.toThrow();
  });

  it('greets connections beyond the per-address cap with BYE, and frees slots when sessions end', async () => {
    const capped = await startWith(fakeImapConfig(fake, { limits: { maxConnectionsPerAddress: 2 } }));
    const connect = async () => {
      const c = await connectLineClient({ host: '127.0.0.1', port: capped.postern.port('imap.implicitTls'), tls: { ca: capped.postern.caPem, servername: 'localhost' } });
      return { c, greeting: await c.readLine() };
    };
    try {
      const first = await connect();
      const second = await connect();
      expect(second.greeting).toMatch(/^\* OK /);
      const third = await connect();
      expect(third.greeting).toBe('* BYE Too many connections; please try again later.');
      await third.c.closed;
      first.c.close();
      await capped.postern.logs.waitForEvent('session.closed');
      const fourth = await connect();
      expect(fourth.greeting).toMatch(/^\* OK /);
      second.c.close();
      fourth.c.close();
    } finally {
      await capped.postern.stop();
    }
  });

  it('shutting postern down ends live sessions with BYE', async () => {
    const other = await startWith(fakeImapConfig(fake));
    const c = await login(other.postern, other.password);
    await c.readLine();
    const stopping = other.postern.stop();
    expect(await c.readLine(3_000)).toBe('* BYE Server shutting down.');
    await c.closed;
    await stopping;
  });
});
