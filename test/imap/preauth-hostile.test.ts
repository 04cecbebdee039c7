// Hostile and unusual pre-authentication input, over real sockets, against a fake upstream.
// Invariants pinned: literals ({n} with `+`, LITERAL+ {n+}) and SASL (IR, continuation, `*`
// cancel, bad base64) work as RFC 9051/7888/4959 say; before TLS the plaintext port says
// LOGINDISABLED and refuses passwords; bytes pipelined after STARTTLS never reach the TLS
// session; oversized lines and literals are refused (the latter before `+`); three failed
// logins end in BYE; an idle pre-auth connection is closed; nothing is ever logged in clear.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectLineClient } from '../helpers/line-client.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { fakeImapConfig, startFakeUpstream, type FakeUpstream } from './fake-upstream.js';
import { quoted, rawPlain, rawTls } from './support.js';

const PRIMARY = 'dave-primary-Secret-5';
const AUTH_FAILED = 'NO [AUTHENTICATIONFAILED] Authentication failed.';
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

let fake: FakeUpstream;
let postern: PosternHarness;
let password: string;

beforeAll(async () => {
  fake = await startFakeUpstream();
  postern = await startPostern({ config: { imap: fakeImapConfig(fake, { limits: { preAuthLineBytes: 1024, preAuthIdleMs: 400 } }) } });
  await postern.addUser('dave', PRIMARY, { mode: 'password', secret: 'dave-upstream-Secret-6' });
  password = (await postern.newPassword('dave', PRIMARY)).password;
});

afterAll(async () => {
  await postern?.stop();
  await fake?.stop();
});

describe('literals and SASL', () => {
  it('logs in with synchronising literals, answering each with +', async () => {
    const c = await rawTls(postern);
    c.write('a LOGIN {4}\r\n');
    expect(await c.readLine()).toMatch(/^\+ /);
    c.write(`dave {${password.length}}\r\n`);
    expect(await c.readLine()).toMatch(/^\+ /);
    c.write(`${password}\r\n`);
    expect(await c.readLine()).toBe('a OK [CAPABILITY IMAP4rev1 LITERAL+ IDLE NAMESPACE FAKE-EXTENSION] Logged in.');
    c.close();
  });

  it('the pre-auth idle and lifetime limits do not apply once the session is relayed', async () => {
    const c = await rawTls(postern);
    c.write(`a LOGIN dave ${quoted(password)}\r\n`);
    expect(await c.readLine()).toMatch(/^a OK /);
    await new Promise((r) => setTimeout(r, 2_200)); // longer than preAuthIdleMs (400) and 5 × that
    c.write('b NOOP\r\n');
    expect(await c.readLine()).toBe('b OK NOOP done');
    c.close();
  });

  it('logs in with non-synchronising literals (LITERAL+) in one write', async () => {
    const c = await rawTls(postern);
    c.write(`a LOGIN {4+}\r\ndave {${password.length}+}\r\n${password}\r\n`);
    expect(await c.readLine()).toMatch(/^a OK \[CAPABILITY .*\] Logged in\.$/);
    c.close();
  });

  it('AUTHENTICATE PLAIN with SASL-IR, and by continuation', async () => {
    const c = await rawTls(postern);
    c.write(`a AUTHENTICATE PLAIN ${b64(`\0dave\0${password}`)}\r\n`);
    expect(await c.readLine()).toMatch(/^a OK \[CAPABILITY /);
    c.close();
    const d = await rawTls(postern);
    d.write('b AUTHENTICATE PLAIN\r\n');
    expect(await d.readLine()).toBe('+ ');
    d.write(`${b64(`\0dave\0${password}`)}\r\n`);
    expect(await d.readLine()).toMatch(/^b OK \[CAPABILITY /);
    d.close();
  });

  it('AUTHENTICATE LOGIN asks for user name and password', async () => {
    const c = await rawTls(postern);
    c.write('a AUTHENTICATE LOGIN\r\n');
    expect(await c.readLine()).toBe(`+ ${b64('Username:')}`);
    c.write(`${b64('dave')}\r\n`);
    expect(await c.readLine()).toBe(`+ ${b64('Password:')}`);
    c.write(`${b64(password)}\r\n`);
    expect(await c.readLine()).toMatch(/^a OK \[CAPABILITY /);
    c.close();
  });

  it('`*` cancels AUTHENTICATE, bad base64 is BAD, and the connection stays usable', async () => {
    const c = await rawTls(postern);
    c.write('a AUTHENTICATE PLAIN\r\n');
    expect(await c.readLine()).toBe('+ ');
    c.write('*\r\n');
    expect(await c.readLine()).toBe('a BAD AUTHENTICATE cancelled.');
    c.write('b AUTHENTICATE PLAIN !!notbase64!!\r\n');
    expect(await c.readLine()).toBe('b BAD Invalid base64 in SASL response.');
    c.write('c AUTHENTICATE CRAM-MD5\r\n');
    expect(await c.readLine()).toBe('c NO Unsupported authentication mechanism.');
    c.write('d NOOP\r\n');
    expect(await c.readLine()).toBe('d OK NOOP completed.');
    c.close();
  });

  it('PLAIN acting for another identity is refused', async () => {
    const c = await rawTls(postern);
    c.write(`a AUTHENTICATE PLAIN ${b64(`admin\0dave\0${password}`)}\r\n`);
    expect(await c.readLine()).toBe('a NO [AUTHORIZATIONFAILED] Authentication failed.');
    c.close();
  });
});

describe('the plaintext port and STARTTLS', () => {
  it('advertises LOGINDISABLED and no AUTH= before TLS, and refuses LOGIN and AUTHENTICATE', async () => {
    const c = await connectLineClient({ host: '127.0.0.1', port: postern.port('imap.starttls') });
    const greeting = await c.readLine();
    expect(greeting).toMatch(/^\* OK \[CAPABILITY IMAP4rev1 .*STARTTLS LOGINDISABLED\]/);
    expect(greeting).not.toContain('AUTH=');
    c.write(`a LOGIN dave ${quoted(password)}\r\n`);
    expect(await c.readLine()).toMatch(/^a NO \[PRIVACYREQUIRED\]/);
    c.write(`b AUTHENTICATE PLAIN ${b64(`\0dave\0${password}`)}\r\n`);
    expect(await c.readLine()).toMatch(/^b NO \[PRIVACYREQUIRED\]/);
    c.close();
  });

  it('discards commands pipelined after STARTTLS and re-advertises capabilities over TLS', async () => {
    const c = await rawPlain(postern);
    const injected = `x LOGIN dave ${quoted(password)}\r\ny CAPABILITY\r\n`;
    c.write(`s STARTTLS\r\n${injected}`);
    expect(await c.readLine()).toBe('s OK Begin TLS negotiation now.');
    await c.startTls({ ca: postern.caPem, servername: 'localhost' });
    c.write('z CAPABILITY\r\n');
    const lines = await c.readUntil((l) => l.startsWith('z '));
    // Only our own command is answered: nothing for the injected x and y.
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\* CAPABILITY .*AUTH=PLAIN/);
    expect(lines[0]).not.toMatch(/STARTTLS|LOGINDISABLED/);
    expect(lines[1]).toBe('z OK CAPABILITY completed.');
    c.write('s2 STARTTLS\r\n');
    expect(await c.readLine()).toBe('s2 BAD STARTTLS is not available on this connection.');
    c.close();
  });

  it('rejects STARTTLS on the implicit-TLS port', async () => {
    const c = await rawTls(postern);
    c.write('a STARTTLS\r\n');
    expect(await c.readLine()).toBe('a BAD STARTTLS is not available on this connection.');
    c.close();
  });
});

describe('bounds', () => {
  it('refuses an oversized literal before the continuation', async () => {
    const c = await rawTls(postern);
    c.write('a LOGIN {100000}\r\n');
    expect(await c.readLine()).toMatch(/^a BAD \[TOOBIG\] Literal too large/);
    c.write('b NOOP\r\n');
    expect(await c.readLine()).toBe('b OK NOOP completed.');
    c.close();
  });

  it('answers an oversized line with BAD at once, and BYE for an oversized LITERAL+', async () => {
    const c = await rawTls(postern);
    c.write(`a LOGIN ${'x'.repeat(5000)}\r\n`);
    expect(await c.readLine()).toMatch(/^a BAD \[TOOBIG\] Command line too long/);
    c.write('b LOGIN {100000+}\r\n');
    expect(await c.readLine()).toMatch(/^b BAD \[TOOBIG\]/);
    expect(await c.readLine()).toMatch(/^\* BYE /);
    await c.closed;
  });

  it('ends the connection with BYE after three failed logins', async () => {
    const c = await rawTls(postern);
    for (const tag of ['a', 'b', 'c']) {
      c.write(`${tag} LOGIN dave wrong-password-${tag}\r\n`);
      expect(await c.readLine()).toBe(`${tag} ${AUTH_FAILED}`);
    }
    expect(await c.readLine()).toBe('* BYE Too many failed authentication attempts.');
    await c.closed;
  });

  it('ends the connection after too many invalid commands', async () => {
    const c = await rawTls(postern);
    for (let i = 0; i < 10; i++) c.write(`t${i} SELECT INBOX\r\n`);
    const lines = await c.readUntil((l) => l.startsWith('* BYE'));
    expect(lines.filter((l) => l.includes('BAD'))).toHaveLength(10);
    expect(lines.at(-1)).toBe('* BYE Too many invalid commands.');
    await c.closed;
  });

  it('closes an idle pre-auth connection, also a slow client that never finishes a line', async () => {
    const c = await rawTls(postern);
    c.write('a LOG');
    const started = Date.now();
    expect(await c.readLine(3_000)).toBe('* BYE Autologout; idle for too long.');
    await c.closed;
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it('a busy client that never logs in is still closed after five idle periods', async () => {
    const c = await rawTls(postern);
    const started = Date.now();
    const ticker = setInterval(() => !c.isClosed() && c.write('n NOOP\r\n'), 250);
    try {
      const lines = await c.readUntil((l) => l.startsWith('* BYE'), 5_000);
      expect(lines.at(-1)).toBe('* BYE Autologout; took too long to log in.');
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_900); // 5 × preAuthIdleMs (400)
    } finally {
      clearInterval(ticker);
    }
    await c.closed;
  });

  it('answers garbage with BAD without crashing, and LOGOUT says BYE', async () => {
    const c = await rawTls(postern);
    c.write('\r\n\x00\x01\x02\r\n(((\r\n');
    expect(await c.readLine()).toBe('* BAD Missing or invalid tag.');
    expect(await c.readLine()).toBe('* BAD Invalid character in command.');
    expect(await c.readLine()).toBe('* BAD Missing or invalid tag.');
    c.write('l LOGOUT\r\n');
    expect(await c.readUntil((l) => l.startsWith('l '))).toEqual(['* BYE Logging out.', 'l OK LOGOUT completed.']);
    await c.closed;
  });

  it('hangs up on an HTTP request at once', async () => {
    const c = await rawTls(postern);
    c.write('GET / HTTP/1.1\r\nHost: example.test\r\n\r\n');
    expect(await c.readLine()).toBe('* BAD This is an IMAP server, not a web server.');
    expect(await c.readLine()).toBe('* BYE Protocol error; closing the connection.');
    await c.closed;
  });
});

describe('logging', () => {
  it('never logs passwords or protocol traffic before authentication', async () => {
    const c = await rawTls(postern);
    c.write(`a LOGIN dave ${quoted(`${password}-wrong`)}\r\n`);
    await c.readLine();
    c.close();
    const text = postern.logs.lines.join('\n');
    expect(text).not.toContain(`${password}-wrong`);
    expect(text).not.toContain('a LOGIN');
  });
});

describe('a client that never reads', () => {
  it('pipelining thousands of commands without reading is answered in full once it reads', async () => {
    // ~2.5 MB of answers: far beyond socket buffers, so postern must stop reading and resume on drain.
    const c = await rawTls(postern);
    const count = 20_000;
    c.socket().pause();
    c.write(Array.from({ length: count }, (_, i) => `n${i} CAPABILITY\r\n`).join(''));
    await new Promise((r) => setTimeout(r, 300));
    c.socket().resume();
    const lines = await c.readUntil((l) => l.startsWith(`n${count - 1} `), 20_000);
    expect(lines.filter((l) => / OK CAPABILITY completed\.$/.test(l))).toHaveLength(count);
    expect(postern.logs.events('imap.output_backpressure').length).toBeGreaterThan(0);
    c.close();
  });
});

describe('random input over a real socket (property)', () => {
  it('never takes postern down: after any bytes, a new connection is served', async () => {
    const fragment = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
      fc.constantFrom('a LOGIN ', '{5}\r\n', '{9999999}\r\n', '{3+}\r\n', '"\\', '\r\n', 'b AUTHENTICATE PLAIN\r\n', '*\r\n', 'c STARTTLS\r\n', 'd ID (', ')\r\n').map((t) => Buffer.from(t)),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fragment, { minLength: 1, maxLength: 20 }), async (fragments) => {
        const c = await rawTls(postern);
        for (const f of fragments) c.write(f);
        await new Promise((r) => setTimeout(r, 20));
        c.close();
        const probe = await rawTls(postern);
        probe.write('p NOOP\r\n');
        expect(await probe.readLine()).toBe('p OK NOOP completed.');
        probe.close();
      }),
      { numRuns: 25 },
    );
  });
});
