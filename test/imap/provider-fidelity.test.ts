// What postern answers itself before login, compared with what the provider (a real Dovecot)
// answers (issue 18, items 1 and 3). Invariants pinned here:
// - postern's pre-login capability list is Dovecot's own, minus what postern handles itself
//   (AUTH=, STARTTLS, LOGINDISABLED, SASL-IR, COMPRESS), for which it puts in its own; in the
//   greeting's CAPABILITY code and in answer to CAPABILITY alike, and also for a client that got no
//   early upstream connection (pre-connecting off: the list is learnt at start-up);
// - an ID with RFC 2971's 30 pairs of 1024-octet values is answered before login, and the session
//   it is passed on to (Dovecot) works; a longer ID line is refused at once, before its end;
// - AUTHENTICATE with an OAuth-sized initial response and LOGIN with 16 KiB literals get an
//   authentication answer, not [TOOBIG].
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { preAuthLimits, SASL_RESPONSE_BYTES } from '../../src/imap/limits.js';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { connectLineClient, type LineClient } from '../helpers/line-client.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { imapConfig, quoted, rawTls, sleep } from './support.js';

const ALICE = { name: 'alice', password: 'alice-real-Secret-1' };
const AUTH_FAILED = 'NO [AUTHENTICATIONFAILED] Authentication failed.';
const HANDLED_BY_POSTERN = /^(AUTH=|STARTTLS$|LOGINDISABLED$|SASL-IR$|COMPRESS=)/i;

let dovecot: DovecotServer;
let postern: PosternHarness;
/** Pre-connecting off: every client's only source of the provider's list is what postern learnt. */
let noEarly: PosternHarness;

beforeAll(async () => {
  dovecot = await startDovecot({ users: [ALICE] });
  postern = await startPostern({ config: { imap: imapConfig(dovecot, 'tls') }, secrets: [ALICE.password] });
  await postern.addUser('alice', ALICE.password);
  noEarly = await startPostern({ config: { imap: imapConfig(dovecot, 'tls', { limits: { preConnectPerAddress: 0, preConnectTotal: 0 } }) }, secrets: [ALICE.password] });
});

afterAll(async () => {
  await postern?.stop();
  await noEarly?.stop();
  await dovecot?.stop();
});

const capsOf = (line: string) => /CAPABILITY ([^\]]+)/.exec(line)?.[1]?.split(' ') ?? [];

async function dovecotPreLogin(): Promise<string[]> {
  const c = await connectLineClient({ host: dovecot.host, port: dovecot.imapsPort, tls: { ca: dovecot.caPem, servername: 'localhost' } });
  try {
    await c.readLine();
    c.write('d1 CAPABILITY\r\n');
    const [caps] = await c.readUntil((l) => l.startsWith('d1 '));
    return capsOf(caps!);
  } finally {
    c.close();
  }
}

/** The greeting's list and CAPABILITY's, once postern has learnt the provider's (at start-up, in the background). */
async function posternPreLogin(harness: PosternHarness): Promise<{ greeting: string[]; answer: string[] }> {
  for (let attempt = 0; ; attempt++) {
    const c = await connectLineClient({ host: '127.0.0.1', port: harness.port('imap.implicitTls'), tls: { ca: harness.caPem, servername: 'localhost' } });
    try {
      const greeting = capsOf(await c.readLine());
      c.write('p1 CAPABILITY\r\n');
      const [caps] = await c.readUntil((l) => l.startsWith('p1 '));
      if (greeting.includes('IDLE') || attempt >= 50) return { greeting, answer: capsOf(caps!) };
    } finally {
      c.close();
    }
    await sleep(100);
  }
}

const mirrored = (caps: string[]) => caps.filter((c) => !HANDLED_BY_POSTERN.test(c)).sort();

describe('capabilities before login', () => {
  it('are Dovecot\'s own, minus what postern handles itself, plus postern\'s own of those', async () => {
    const direct = await dovecotPreLogin();
    expect(direct).toContain('IDLE');
    const { greeting, answer } = await posternPreLogin(postern);
    expect(answer).toEqual(greeting);
    expect(mirrored(answer)).toEqual(mirrored(direct));
    expect(answer.filter((c) => HANDLED_BY_POSTERN.test(c)).sort()).toEqual(['AUTH=LOGIN', 'AUTH=PLAIN', 'SASL-IR']);
    for (const c of answer) if (!HANDLED_BY_POSTERN.test(c)) expect(direct).toContain(c); // never one Dovecot lacks
  });

  it('are the provider\'s too for a client without an early upstream connection', async () => {
    const { answer } = await posternPreLogin(noEarly);
    expect(mirrored(answer)).toEqual(mirrored(await dovecotPreLogin()));
  });
});

describe('ID at RFC 2971 maximum', () => {
  const pairs = Array.from({ length: 30 }, (_, i) => `${quoted(`field-${i}`.padEnd(30, 'x'))} ${quoted(`value ${i} `.padEnd(1024, 'v'))}`);

  it('is answered before login, and the session it is passed on to works', async () => {
    const { password } = await postern.newPassword('alice', ALICE.password, { label: 'big id' });
    const c = await rawTls(postern);
    try {
      c.write(`a ID (${pairs.join(' ')})\r\n`);
      expect(await c.readLine()).toBe('* ID ("name" "postern")');
      expect(await c.readLine()).toBe('a OK ID completed.');
      c.write(`b LOGIN alice ${quoted(password)}\r\n`);
      expect((await c.readUntil((l) => l.startsWith('b '))).at(-1)).toMatch(/^b OK /);
      c.write('c SELECT INBOX\r\n');
      expect((await c.readUntil((l) => l.startsWith('c '))).at(-1)).toMatch(/^c OK /);
    } finally {
      c.close();
    }
  });

  it('is refused at once when its line is longer than the largest one the RFC allows', async () => {
    const c = await rawTls(postern);
    try {
      c.write(`a ID ("x" "${'y'.repeat(preAuthLimits().idLineBytes)}`); // no end of line yet
      expect(await c.readLine()).toMatch(/^a BAD \[TOOBIG\] Command line too long/);
      c.write('")\r\nb NOOP\r\n');
      expect(await c.readLine()).toBe('b OK NOOP completed.');
    } finally {
      c.close();
    }
  });
});

describe('authentication commands of real sizes', () => {
  let c: LineClient;

  it('answers AUTHENTICATE with an OAuth-sized initial response and LOGIN with 16 KiB literals, without [TOOBIG]', async () => {
    c = await rawTls(postern);
    const token = 'ya29.'.padEnd(12 * 1024 - 16, 'T'); // a bearer token tried as a password
    const ir = Buffer.from(`\0alice\0${token}`).toString('base64');
    expect(ir.length).toBeLessThanOrEqual(SASL_RESPONSE_BYTES);
    c.write(`a AUTHENTICATE PLAIN ${ir}\r\n`);
    expect(await c.readLine(10_000)).toBe(`a ${AUTH_FAILED}`);
    const big = 'p'.repeat(16 * 1024);
    c.write(`b LOGIN {5+}\r\nalice {${big.length}+}\r\n${big}\r\n`);
    expect(await c.readLine(10_000)).toBe(`b ${AUTH_FAILED}`);
    c.close();
  });
});
