// BDAT (RFC 3030 CHUNKING) and BODY=BINARYMIME through postern, which smtp-server lacks and
// postern adds (src/smtp/chunking.ts). Against the real Dovecot submission service (it offers
// CHUNKING, not BINARYMIME), and a scripted upstream for BINARYMIME, which no Debian server offers
// (Postfix and Dovecot 2.3 implement BDAT without it). Invariants pinned here:
// - CHUNKING and BINARYMIME are offered exactly when the upstream offers them;
// - a message sent in pipelined chunks arrives byte for byte, chunk replies in order;
// - a chunk is read by its count, never as commands: a refused BDAT (not signed in, no RCPT)
//   swallows its chunk, and a BDAT whose count cannot be read ends the connection;
// - RFC 3030 §3: DATA or RCPT between chunks refused, RSET drops the unfinished message, nothing
//   of it is delivered; a BINARYMIME message cannot use DATA;
// - the size limit counts every chunk; binary content goes up as BDAT, byte for byte.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DovecotServer } from '../helpers/dovecot.js';
import type { LineClient } from '../helpers/line-client.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { addressOf, stripDeliveryTrace } from '../helpers/relay-sink.js';
import { startFakeUpstream, type FakeUpstream } from './fake-upstream.js';
import { BOB, PRIMARY, assertNoInternalErrors, inbox, plainToken, rawSession, say, startMailServer, startSmtpPostern, waitForNew } from './fixture.js';

const FAKE_EHLO = '250-fake.example\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250 SIZE 1000000000';
const FAKE_LIMIT = 4_000;

let dovecot: DovecotServer;
let postern: PosternHarness;
let fake: FakeUpstream;
let binaryPostern: PosternHarness;

beforeAll(async () => {
  dovecot = await startMailServer();
  postern = await startSmtpPostern(dovecot, { security: 'tls' });
  fake = await startFakeUpstream({ ehlo: FAKE_EHLO });
  binaryPostern = await startPostern({
    config: { smtp: { implicitTls: { port: 0 }, upstream: { host: fake.host, port: fake.port, security: 'plain' }, limits: { maxMessageBytes: FAKE_LIMIT } } },
    secrets: ['erin-upstream-Secret'],
  });
  await binaryPostern.addUser('erin', PRIMARY, { mode: 'password', secret: 'erin-upstream-Secret' });
}, 60_000);

afterAll(async () => {
  await postern?.stop();
  await binaryPostern?.stop();
  await fake?.stop();
  await dovecot?.stop();
  assertNoInternalErrors(postern);
  assertNoInternalErrors(binaryPostern);
});

/** The EHLO reply once the start-up probe of the upstream has been mirrored. */
async function ehloOnceMirrored(harness: PosternHarness, expected: RegExp): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const client = await rawSession(harness.port('smtp.implicitTls'), harness.caPem);
    try {
      client.write('EHLO client.example\r\n');
      const ehlo = (await client.readUntil((l) => l.startsWith('250 '))).join('\n');
      if (expected.test(ehlo) || attempt >= 50) return ehlo;
    } finally {
      client.close();
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function signedIn(harness: PosternHarness, login: string): Promise<LineClient> {
  await ehloOnceMirrored(harness, /^250[- ]CHUNKING$/m);
  const { password } = await harness.newPassword(login, PRIMARY);
  const client = await rawSession(harness.port('smtp.implicitTls'), harness.caPem);
  expect(await say(client, `AUTH PLAIN ${plainToken(login, password)}`)).toMatch(/^235 /);
  return client;
}

/** Reads `count` replies (multi-line ones collapsed to their last line). */
async function replies(client: LineClient, count: number): Promise<string[]> {
  const out: string[] = [];
  while (out.length < count) {
    const lines = await client.readUntil((l) => /^\d{3}( |$)/.test(l));
    out.push(lines[lines.length - 1]!);
  }
  return out;
}

function bdat(chunk: string | Buffer, last = false): Buffer {
  const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
  return Buffer.concat([Buffer.from(`BDAT ${bytes.length}${last ? ' LAST' : ''}\r\n`), bytes]);
}

const FROM = addressOf('alice');
const TO = addressOf('bob');

describe('CHUNKING through to Dovecot submission', () => {
  it('offers CHUNKING because Dovecot does, and not BINARYMIME, which it lacks', async () => {
    const ehlo = await ehloOnceMirrored(postern, /^250[- ]CHUNKING$/m);
    expect(ehlo).toMatch(/^250[- ]CHUNKING$/m);
    expect(ehlo).not.toMatch(/BINARYMIME/);
  });

  it('delivers a message sent in three pipelined chunks byte for byte, each chunk answered in order', async () => {
    const client = await signedIn(postern, 'alice');
    // Lines that would mean something to a dot-terminated or line-reading parser.
    const parts = [
      `From: <${FROM}>\r\nTo: <${TO}>\r\nSubject: in chunks\r\nMessage-ID: <chunks-1@example.test>\r\n\r\nfirst\r\n`,
      '.\r\nQUIT\r\nRSET\r\n..two dots\r\n',
      'MAIL FROM:<evil@example.test>\r\nlast line\r\n',
    ];
    const before = (await inbox(dovecot, BOB)).length;
    client.write(Buffer.concat([
      Buffer.from(`MAIL FROM:<${FROM}>\r\nRCPT TO:<${TO}>\r\n`),
      bdat(parts[0]!), bdat(parts[1]!), bdat(parts[2]!, true),
    ]));
    const answers = await replies(client, 5);
    expect(answers.slice(0, 2)).toEqual([expect.stringMatching(/^250 /), expect.stringMatching(/^250 /)]);
    expect(answers[2]).toBe(`250 2.0.0 ${Buffer.byteLength(parts[0]!)} octets received`);
    expect(answers[3]).toBe(`250 2.0.0 ${Buffer.byteLength(parts[1]!)} octets received`);
    expect(answers[4]).toMatch(/^250 2\.\d\.\d <bob@example\.test> \S+ Saved$/); // Dovecot's own verdict
    const [got] = await waitForNew(dovecot, BOB, before);
    expect(stripDeliveryTrace(got!).toString()).toBe(parts.join(''));
    // The session goes on: a second transaction by DATA.
    expect(await say(client, `MAIL FROM:<${FROM}>`)).toMatch(/^250 /);
    client.close();
  });

  it('attack: chunk smuggling before RCPT — the refused BDAT swallows its chunk, whose lines never run as commands', async () => {
    const client = await signedIn(postern, 'alice');
    const chunk = `MAIL FROM:<${FROM}>\r\nRCPT TO:<${TO}>\r\n`;
    client.write(Buffer.concat([bdat(chunk), Buffer.from('NOOP\r\n')]));
    const [refusal, noop] = await replies(client, 2);
    expect(refusal).toMatch(/^503 5\.5\.1 /);
    expect(noop).toMatch(/^250 /);
    // Had the chunk's MAIL FROM run, this one would be a nested MAIL (503).
    expect(await say(client, `MAIL FROM:<${FROM}>`)).toMatch(/^250 /);
    client.close();
  });

  it('attack: chunk smuggling before sign-in — 530, the chunk (a QUIT) is discarded and the session stays', async () => {
    await ehloOnceMirrored(postern, /^250[- ]CHUNKING$/m);
    const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    client.write(Buffer.concat([bdat('QUIT\r\n'), Buffer.from('NOOP\r\n')]));
    const [refusal, noop] = await replies(client, 2);
    expect(refusal).toMatch(/^530 5\.7\.0 /);
    expect(noop).toMatch(/^250 /);
    client.close();
  });

  it('a BDAT whose size cannot be read: 501 and the connection ends, since its chunk cannot be skipped', async () => {
    const client = await signedIn(postern, 'alice');
    client.write(`MAIL FROM:<${FROM}>\r\nRCPT TO:<${TO}>\r\nBDAT lots\r\nNOOP\r\n`);
    const answers = await replies(client, 3);
    expect(answers[2]).toMatch(/^501 5\.5\.4 Syntax: BDAT/);
    // The NOOP after it is never answered: the connection ends with nothing more (readLine rejects at the close).
    await expect(client.readLine(5_000)).rejects.toThrow();
    await client.closed;
  });

  it('RFC 3030 §3: DATA and RCPT between chunks are refused; RSET drops the unfinished message and nothing of it is delivered', async () => {
    const client = await signedIn(postern, 'alice');
    const before = (await inbox(dovecot, BOB)).length;
    client.write(Buffer.concat([Buffer.from(`MAIL FROM:<${FROM}>\r\nRCPT TO:<${TO}>\r\n`), bdat('Subject: dropped\r\n\r\nnever delivered\r\n')]));
    expect((await replies(client, 3))[2]).toMatch(/^250 2\.0\.0 \d+ octets received$/);
    expect(await say(client, 'DATA')).toMatch(/^503 5\.5\.1 /);
    expect(await say(client, `RCPT TO:<${addressOf('alice')}>`)).toMatch(/^503 5\.5\.1 /);
    expect(await say(client, 'NOOP')).toMatch(/^250 /);
    expect(await say(client, 'RSET')).toMatch(/^250 /);
    // A new transaction after the reset goes through (postern logs in upstream again if need be).
    const message = `From: <${FROM}>\r\nTo: <${TO}>\r\nSubject: after reset\r\nMessage-ID: <chunks-2@example.test>\r\n\r\nkept\r\n`;
    client.write(Buffer.concat([Buffer.from(`MAIL FROM:<${FROM}>\r\nRCPT TO:<${TO}>\r\n`), bdat(message, true)]));
    const answers = await replies(client, 3);
    expect(answers).toEqual([expect.stringMatching(/^250 /), expect.stringMatching(/^250 /), expect.stringMatching(/^250 .*Saved$/)]);
    const fresh = await waitForNew(dovecot, BOB, before);
    expect(fresh).toHaveLength(1);
    expect(stripDeliveryTrace(fresh[0]!).toString()).toBe(message);
    client.close();
  });

  it('BODY=BINARYMIME is refused with 555 when the upstream lacks it', async () => {
    const client = await signedIn(postern, 'alice');
    expect(await say(client, `MAIL FROM:<${FROM}> BODY=BINARYMIME`)).toMatch(/^555 5\.5\.4 /);
    client.close();
  });
});

describe('BINARYMIME, to an upstream that offers it (scripted: no Debian server does)', () => {
  it('offers BINARYMIME beside CHUNKING when the upstream offers both', async () => {
    const ehlo = await ehloOnceMirrored(binaryPostern, /^250[- ]BINARYMIME$/m);
    expect(ehlo).toMatch(/^250[- ]CHUNKING$/m);
    expect(ehlo).toMatch(/^250[- ]BINARYMIME$/m);
  });

  it('relays a binary message as BDAT, byte for byte, with BODY=BINARYMIME', async () => {
    const client = await signedIn(binaryPostern, 'erin');
    const body = Buffer.from([0x00, 0x0d, 0x41, 0x0a, 0x2e, 0x0d, 0x0a, 0x2e, 0x0d, 0x0a, 0xff, 0x0d, 0x0d, 0x0a]);
    const message = Buffer.concat([Buffer.from('Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n'), body]);
    const messagesBefore = fake.messages.length;
    client.write(Buffer.concat([Buffer.from('MAIL FROM:<erin@example.org> BODY=BINARYMIME\r\nRCPT TO:<someone@example.org>\r\n'), bdat(message.subarray(0, 30)), bdat(message.subarray(30), true)]));
    const answers = await replies(client, 4);
    expect(answers[3]).toBe('250 2.0.0 Ok: queued as FAKE');
    expect(fake.messages.length).toBe(messagesBefore + 1);
    expect(fake.messages[fake.messages.length - 1]!.equals(message)).toBe(true);
    expect(fake.commands).toContain('MAIL FROM:<erin@example.org> BODY=BINARYMIME');
    expect(fake.commands[fake.commands.length - 1]).toMatch(/^BDAT \d+ LAST$/);
    client.close();
  });

  it('refuses DATA for a BODY=BINARYMIME message (RFC 3030 §3)', async () => {
    const client = await signedIn(binaryPostern, 'erin');
    expect(await say(client, 'MAIL FROM:<erin@example.org> BODY=BINARYMIME')).toMatch(/^250 /);
    expect(await say(client, 'RCPT TO:<someone@example.org>')).toMatch(/^250 /);
    expect(await say(client, 'DATA')).toMatch(/^503 5\.5\.1 .*BDAT/);
    client.close();
  });

  it('counts every chunk against the size limit: 552, nothing delivered, the chunks still read to their end', async () => {
    const client = await signedIn(binaryPostern, 'erin');
    const messagesBefore = fake.messages.length;
    const half = Buffer.alloc(FAKE_LIMIT / 2 + 100, 0x61);
    client.write(Buffer.concat([Buffer.from('MAIL FROM:<erin@example.org>\r\nRCPT TO:<someone@example.org>\r\n'), bdat(half), bdat(half, true), Buffer.from('NOOP\r\n')]));
    const answers = await replies(client, 5);
    expect(answers[3]).toMatch(/^552 5\.3\.4 /);
    expect(answers[4]).toMatch(/^250 /); // the NOOP after the chunks: they were read by count
    expect(fake.messages.length).toBe(messagesBefore);
    client.close();
  });
});
