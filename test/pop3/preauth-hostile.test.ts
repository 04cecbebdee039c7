// Hostile and unusual pre-authentication input to the POP3 front, over real sockets, in front of
// a real Dovecot. Invariants pinned: before TLS, CAPA offers STLS and neither USER nor SASL, and
// USER, PASS and AUTH are refused in clear (RFC 2595 §4); APOP is refused; bytes pipelined after
// STLS never reach the TLS session (CVE-2011-0411); SASL (initial response, continuation, `*`
// cancel, bad base64, another identity) works as RFC 5034 says; an overlong line is refused once
// it ends and the connection stays usable; three failed logins, or the bad-command budget, end
// the connection; an idle or a merely busy pre-auth connection is closed without words (RFC 1939
// §3); an early talker is answered in order; an HTTP request is hung up on; the per-address
// connection cap holds; nothing the client sends before login is logged.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { connectLineClient } from '../helpers/line-client.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { deliver, message, pop3Config, rawPlain, rawTls } from './support.js';

const DAVE = { name: 'dave', password: 'dave-real-Secret-5' };
const PRIMARY = 'dave-primary-Secret-6';
const AUTH_FAILED = '-ERR [AUTH] Authentication failed.';
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

let dovecot: DovecotServer;
let postern: PosternHarness;
let password: string;

beforeAll(async () => {
  dovecot = await startDovecot({ users: [DAVE] });
  await deliver(dovecot, DAVE, [message('one'), message('two')]);
  postern = await startPostern({
    config: { pop3: pop3Config(dovecot, 'tls', { limits: { preAuthLineBytes: 1024, preAuthIdleMs: 400, maxConnectionsPerAddress: 20 } }) },
    secrets: [DAVE.password],
  });
  await postern.addUser('dave', PRIMARY, { mode: 'password', secret: DAVE.password });
  password = (await postern.newPassword('dave', PRIMARY)).password;
  postern.rememberSecret(b64(`\0dave\0${password}`));
}, 120_000);

afterAll(async () => {
  await postern?.stop();
  await dovecot?.stop();
});

async function loggedInAfter(c: Awaited<ReturnType<typeof rawTls>>): Promise<void> {
  c.write('STAT\r\n');
  expect(await c.readLine()).toMatch(/^\+OK 2 \d+$/);
}

describe('logins', () => {
  it('USER/PASS with the PASS argument taking the rest of the line', async () => {
    const c = await rawTls(postern);
    c.write('USER dave\r\n');
    expect(await c.readLine()).toBe('+OK Send PASS.');
    c.write(`PASS ${password}\r\n`);
    expect(await c.readLine()).toBe('+OK Logged in.');
    await loggedInAfter(c);
    c.close();
  });

  it('commands pipelined after PASS reach the upstream once logged in', async () => {
    const c = await rawTls(postern);
    c.write(`USER dave\r\nPASS ${password}\r\nSTAT\r\nQUIT\r\n`);
    expect(await c.readUntil((l) => l.startsWith('+OK Logged'))).toEqual(['+OK Send PASS.', '+OK Logged in.']);
    expect(await c.readLine()).toMatch(/^\+OK 2 \d+$/);
    expect(await c.readLine()).toMatch(/^\+OK/);
    await c.closed;
  });

  it('AUTH PLAIN with initial response and by continuation, AUTH LOGIN by two challenges', async () => {
    const ir = await rawTls(postern);
    ir.write(`AUTH PLAIN ${b64(`\0dave\0${password}`)}\r\n`);
    expect(await ir.readLine()).toBe('+OK Logged in.');
    await loggedInAfter(ir);
    ir.close();

    const cont = await rawTls(postern);
    cont.write('AUTH PLAIN\r\n');
    expect(await cont.readLine()).toBe('+ ');
    cont.write(`${b64(`dave\0dave\0${password}`)}\r\n`);
    expect(await cont.readLine()).toBe('+OK Logged in.');
    cont.close();

    const login = await rawTls(postern);
    login.write('AUTH LOGIN\r\n');
    expect(await login.readLine()).toBe(`+ ${b64('Username:')}`);
    login.write(`${b64('dave')}\r\n`);
    expect(await login.readLine()).toBe(`+ ${b64('Password:')}`);
    login.write(`${b64(password)}\r\n`);
    expect(await login.readLine()).toBe('+OK Logged in.');
    login.close();
  });

  it('bare AUTH lists the mechanisms; an unknown one is refused', async () => {
    const c = await rawTls(postern);
    c.write('AUTH\r\n');
    expect(await c.readUntil((l) => l === '.')).toEqual(['+OK Mechanisms follow.', 'PLAIN', 'LOGIN', '.']);
    c.write('AUTH CRAM-MD5\r\n');
    expect(await c.readLine()).toBe('-ERR Unsupported authentication mechanism.');
    c.close();
  });

  it('bad base64: `*` cancels, bad base64 in an initial response or a continuation is -ERR, and the connection stays usable', async () => {
    const c = await rawTls(postern);
    c.write('AUTH PLAIN\r\n');
    expect(await c.readLine()).toBe('+ ');
    c.write('*\r\n');
    expect(await c.readLine()).toBe('-ERR AUTH cancelled.');
    c.write('AUTH PLAIN !!!not-base64!!!\r\n');
    expect(await c.readLine()).toBe('-ERR Invalid base64 in SASL response.');
    c.write('AUTH LOGIN\r\n');
    await c.readLine();
    c.write('ZGF2ZQ\r\n'); // unpadded
    expect(await c.readLine()).toBe('-ERR Invalid base64 in SASL response.');
    c.write('AUTH PLAIN AGRhdmU=\r\n'); // one NUL: malformed
    expect(await c.readLine()).toBe('-ERR Malformed SASL PLAIN response.');
    c.write('NOOP\r\n');
    expect(await c.readLine()).toBe('+OK NOOP.');
    c.close();
  });

  it('PLAIN acting for another identity is refused like a wrong password', async () => {
    const c = await rawTls(postern);
    c.write(`AUTH PLAIN ${b64(`erin\0dave\0${password}`)}\r\n`);
    expect(await c.readLine()).toBe(AUTH_FAILED);
    c.close();
  });

  it('PASS without USER straight before it is refused; APOP is refused and says why', async () => {
    const c = await rawTls(postern);
    c.write(`PASS ${password}\r\n`);
    expect(await c.readLine()).toBe('-ERR Send USER first.');
    c.write(`USER dave\r\nNOOP\r\nPASS ${password}\r\n`);
    expect(await c.readLine()).toBe('+OK Send PASS.');
    expect(await c.readLine()).toBe('+OK NOOP.');
    expect(await c.readLine()).toBe('-ERR Send USER first.');
    c.write('APOP dave c4c9334bac560ecc979e58001b3e22fb\r\n');
    expect(await c.readLine()).toMatch(/^-ERR \[AUTH\] APOP is not supported: it needs the clear password/);
    c.close();
  });

  it('ends the connection after three failed logins, the third answered first', async () => {
    const c = await rawTls(postern);
    for (let i = 0; i < 3; i++) {
      c.write('USER dave\r\nPASS wrong-wrong-wrong\r\n');
      expect(await c.readLine()).toBe('+OK Send PASS.');
      expect(await c.readLine()).toBe(AUTH_FAILED);
    }
    await c.closed;
  });
});

describe('in clear, and STLS', () => {
  it('CAPA in clear offers STLS and neither USER nor SASL; USER, PASS and AUTH are refused in clear', async () => {
    const c = await rawPlain(postern);
    c.write('CAPA\r\n');
    const caps = await c.readUntil((l) => l === '.');
    expect(caps).toContain('STLS');
    expect(caps.some((l) => /^(USER|SASL)\b/.test(l))).toBe(false);
    for (const command of ['USER dave', `PASS ${password}`, `AUTH PLAIN ${b64(`\0dave\0${password}`)}`, 'AUTH']) {
      c.write(`${command}\r\n`);
      expect(await c.readLine()).toBe('-ERR [AUTH] Log in only after STLS; passwords are never accepted in clear.');
    }
    c.close();
    expect(postern.logs.events('auth.ok').filter((e) => e.protocol === 'pop3' && e.listener === 'pop3.starttls')).toHaveLength(0);
  });

  it('STLS injection: commands pipelined after STLS in clear are discarded, never run over TLS', async () => {
    const c = await rawPlain(postern);
    c.write(`STLS\r\nUSER dave\r\nPASS ${password}\r\nCAPA\r\n`);
    expect(await c.readLine()).toBe('+OK Begin TLS negotiation now.');
    const discarded = await c.startTls({ ca: postern.caPem, servername: 'localhost' });
    expect(discarded.length).toBe(0);
    // Had the injected USER survived, this PASS would log in; had the injected PASS, STAT would be answered.
    c.write(`PASS ${password}\r\n`);
    expect(await c.readLine()).toBe('-ERR Send USER first.');
    c.write('CAPA\r\n');
    const caps = await c.readUntil((l) => l === '.');
    expect(caps).toContain('USER');
    expect(caps).not.toContain('STLS');
    c.write('STLS\r\n');
    expect(await c.readLine()).toBe('-ERR STLS is not available on this connection.');
    c.write(`USER dave\r\nPASS ${password}\r\n`);
    expect(await c.readLine()).toBe('+OK Send PASS.');
    expect(await c.readLine()).toBe('+OK Logged in.');
    c.close();
  });
});

describe('limits', () => {
  it('an overlong line is refused once it ends, without holding it, and the connection stays usable', async () => {
    const c = await rawTls(postern);
    c.write(`USER ${'x'.repeat(200_000)}\r\nNOOP\r\n`);
    expect(await c.readLine()).toBe('-ERR Line too long (limit 1024 bytes before authentication).');
    expect(await c.readLine()).toBe('+OK NOOP.');
    c.close();
  });

  it('ends the connection after too many invalid commands, each answered once', async () => {
    const c = await rawTls(postern);
    c.write('XYZZ\r\n'.repeat(12));
    const lines: string[] = [];
    await c.closed;
    for (;;) {
      const line = await c.readLine(500).catch(() => null);
      if (line === null) break;
      lines.push(line);
    }
    expect(lines).toEqual(Array(10).fill('-ERR Unknown command, or not allowed before authentication.'));
  });

  it('closes an idle pre-auth connection without words, also a client that never finishes a line', async () => {
    const c = await rawTls(postern);
    c.write('USER da');
    const started = Date.now();
    await c.closed;
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    await expect(c.readLine(100)).rejects.toThrow();
  });

  it('a busy client that never logs in is still closed after five idle periods', async () => {
    const c = await rawTls(postern);
    const started = Date.now();
    const ticker = setInterval(() => !c.isClosed() && c.write('NOOP\r\n'), 250);
    try {
      await c.closed;
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_900); // 5 × preAuthIdleMs (400)
    } finally {
      clearInterval(ticker);
    }
  });

  it('an early talker (commands before the greeting) is answered in order after the greeting', async () => {
    const c = await connectLineClient({ host: '127.0.0.1', port: postern.port('pop3.implicitTls'), tls: { ca: postern.caPem, servername: 'localhost' } });
    c.write('NOOP\r\nQUIT\r\n');
    expect(await c.readLine()).toBe('+OK Postern POP3 proxy ready.');
    expect(await c.readLine()).toBe('+OK NOOP.');
    expect(await c.readLine()).toBe('+OK Bye.');
    await c.closed;
  });

  it('hangs up on an HTTP request at once', async () => {
    const c = await rawTls(postern);
    c.write('GET / HTTP/1.1\r\nHost: example.test\r\n\r\n');
    expect(await c.readLine()).toBe('-ERR This is a POP3 server, not a web server.');
    await c.closed;
  });

  it('refuses connections beyond the per-address cap with a -ERR greeting', async () => {
    const held = await Promise.all(Array.from({ length: 20 }, () => rawPlain(postern)));
    const over = await connectLineClient({ host: '127.0.0.1', port: postern.port('pop3.starttls') });
    expect(await over.readLine()).toBe('-ERR [SYS/TEMP] Too many connections; please try again later.');
    await over.closed;
    held.forEach((c) => c.close());
  });
});

describe('logging', () => {
  it('never logs passwords or protocol traffic before authentication', async () => {
    const c = await rawTls(postern);
    c.write(`USER dave\r\nPASS ${password}-wrong\r\nAUTH PLAIN ${b64(`\0dave\0${password}-wrong`)}\r\n`);
    await c.readLine();
    await c.readLine();
    await c.readLine();
    c.close();
    const text = postern.logs.lines.join('\n');
    expect(text).not.toContain(`${password}-wrong`);
    expect(text).not.toContain(b64(`\0dave\0${password}-wrong`));
    expect(text).not.toContain('USER dave');
    expect(text).not.toContain('PASS ');
  });
});

describe('random input over a real socket (property)', () => {
  it('never takes postern down: after any bytes, a new connection is served', async () => {
    const fragment = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
      fc.constantFrom('USER ', 'PASS x y\r\n', '\r\n', 'AUTH PLAIN\r\n', '*\r\n', 'STLS\r\n', 'APOP a b\r\n', 'AUTH LOGIN\r\n', '====\r\n').map((t) => Buffer.from(t)),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fragment, { minLength: 1, maxLength: 20 }), async (fragments) => {
        const c = await rawTls(postern);
        for (const f of fragments) c.write(f);
        await new Promise((r) => setTimeout(r, 20));
        c.close();
        const probe = await rawTls(postern);
        probe.write('NOOP\r\n');
        expect(await probe.readLine()).toBe('+OK NOOP.');
        probe.close();
      }),
      { numRuns: 25 },
    );
  }, 60_000);
});
