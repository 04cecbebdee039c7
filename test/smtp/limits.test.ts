// Configured limits at postern's submission listener, with a real Dovecot behind it.
// Invariants pinned here:
// - the size limit is advertised (SIZE) and enforced: declared too big → refused at MAIL; sent too
//   big → 552 after DATA and the upstream never delivers the partial message; the session goes on;
// - the recipient limit answers 452 at RCPT, before the upstream is asked;
// - an idle client is disconnected with 421.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DovecotServer } from '../helpers/dovecot.js';
import type { PosternHarness } from '../helpers/postern.js';
import { addressOf } from '../helpers/relay-sink.js';
import { assertNoInternalErrors, BOB, PRIMARY, inbox, plainToken, rawSession, say, startMailServer, startSmtpPostern, transport, waitForNew } from './fixture.js';

const LIMIT = 100_000;
let dovecot: DovecotServer;
let postern: PosternHarness;

beforeAll(async () => {
  dovecot = await startMailServer();
  postern = await startSmtpPostern(dovecot, { limits: { maxMessageBytes: LIMIT, maxRecipients: 2, idleTimeoutMs: 1_500 } });
});
afterAll(async () => {
  await postern?.stop();
  await dovecot?.stop();
  assertNoInternalErrors(postern);
});

async function authenticated() {
  const { password } = await postern.newPassword('alice', PRIMARY);
  const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
  expect(await say(client, `AUTH PLAIN ${plainToken('alice', password)}`)).toMatch(/^235 /);
  return client;
}

describe('message size', () => {
  it('is advertised and a declared size over it is refused at MAIL', async () => {
    const { password } = await postern.newPassword('alice', PRIMARY);
    const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    client.write('EHLO client.example\r\n');
    expect((await client.readUntil((l) => l.startsWith('250 '))).join('\n')).toMatch(new RegExp(`SIZE ${LIMIT}`));
    expect(await say(client, `AUTH PLAIN ${plainToken('alice', password)}`)).toMatch(/^235 /);
    expect(await say(client, `MAIL FROM:<${addressOf('alice')}> SIZE=${LIMIT + 1}`)).toMatch(/^552 /);
    client.close();
  });

  it('a message over the limit is refused after DATA, never delivered, and the session goes on', async () => {
    const client = await authenticated();
    const sink = dovecot.relaySink.received.length;
    const before = (await inbox(dovecot, BOB)).length;
    expect(await say(client, `MAIL FROM:<${addressOf('alice')}>`)).toMatch(/^250 /);
    expect(await say(client, `RCPT TO:<${addressOf('bob')}>`)).toMatch(/^250 /);
    expect(await say(client, 'DATA')).toMatch(/^354 /);
    const line = `${'x'.repeat(998)}\r\n`;
    client.write(`Subject: too big\r\n\r\n${line.repeat(Math.ceil((LIMIT * 2) / line.length))}`);
    expect(await say(client, '.')).toMatch(/^552 /);
    // Same session, next message: postern reconnects upstream (it dropped the connection holding the partial message).
    expect(await say(client, `MAIL FROM:<${addressOf('alice')}>`)).toMatch(/^250 /);
    expect(await say(client, `RCPT TO:<${addressOf('bob')}>`)).toMatch(/^250 /);
    expect(await say(client, 'DATA')).toMatch(/^354 /);
    expect(await say(client, 'Subject: small one\r\n\r\nfits\r\n.')).toMatch(/^250 /);
    const fresh = await waitForNew(dovecot, BOB, before);
    await new Promise((r) => setTimeout(r, 300));
    expect(fresh.map((m) => /Subject: (.*)\r\n/.exec(m.toString())?.[1])).toEqual(['small one']);
    expect(dovecot.relaySink.received.slice(sink).map((m) => m.size)).toHaveLength(1);
    await postern.logs.waitForEvent('smtp.message_oversized');
    client.close();
  });

  it('nodemailer sees 552 for an oversized message', async () => {
    const { password } = await postern.newPassword('alice', PRIMARY);
    const t = transport({ port: postern.port('smtp.implicitTls'), secure: true, user: 'alice', pass: password, ca: postern.caPem });
    const err = await t
      .sendMail({ from: addressOf('alice'), to: addressOf('bob'), subject: 'big', text: 'y'.repeat(LIMIT * 2) })
      .then(() => null, (e: { responseCode?: number }) => e);
    expect(err?.responseCode).toBe(552);
  });
});

describe('recipients and idleness', () => {
  it('refuses recipients over the limit with 452, before asking the upstream', async () => {
    const client = await authenticated();
    expect(await say(client, `MAIL FROM:<${addressOf('alice')}>`)).toMatch(/^250 /);
    expect(await say(client, `RCPT TO:<${addressOf('alice')}>`)).toMatch(/^250 /);
    expect(await say(client, `RCPT TO:<${addressOf('bob')}>`)).toMatch(/^250 /);
    // An unknown address would get the upstream's 550; over the limit it never gets that far.
    expect(await say(client, 'RCPT TO:<nobody@example.test>')).toMatch(/^452 /);
    client.close();
  });

  it('disconnects an idle client with 421', async () => {
    const client = await authenticated();
    const started = Date.now();
    expect(await client.readLine(5_000)).toMatch(/^421 /);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    await client.closed;
  });
});
