// Relaying through postern to a real Dovecot submission server, read back over IMAP.
// Invariants pinned here:
// - a message sent with nodemailer through postern arrives byte for byte (Dovecot's own trace
//   fields aside), over implicit TLS and STARTTLS on both sides, and in master-user mode;
// - transactions are relayed in step: the client sees the upstream's code and text for a refused
//   recipient, and the upstream's verdict on DATA;
// - several transactions per session, RSET in between, leave no trace of the reset one;
// - 8-bit bodies pass with BODY=8BITMIME; SMTPUTF8 is offered only if the upstream offers it;
// - the DATA encoder cannot be used to smuggle commands into postern's upstream session.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DovecotServer } from '../helpers/dovecot.js';
import { connectLineClient } from '../helpers/line-client.js';
import type { PosternHarness } from '../helpers/postern.js';
import { addressOf, stripDeliveryTrace } from '../helpers/relay-sink.js';
import { assertNoInternalErrors, ALICE, BOB, PRIMARY, compose, inbox, plainToken, rawSession, say, startMailServer, startSmtpPostern, transport, waitForNew } from './fixture.js';

let dovecot: DovecotServer;
let postern: PosternHarness;
let starttlsPostern: PosternHarness;

beforeAll(async () => {
  dovecot = await startMailServer();
  postern = await startSmtpPostern(dovecot, { security: 'tls' });
  starttlsPostern = await startSmtpPostern(dovecot, { security: 'starttls' });
});
afterAll(async () => {
  await postern?.stop();
  await starttlsPostern?.stop();
  await dovecot?.stop();
  assertNoInternalErrors(postern);
  assertNoInternalErrors(starttlsPostern);
});

async function deliveredOnce(send: () => Promise<unknown>): Promise<Buffer> {
  const before = (await inbox(dovecot, BOB)).length;
  await send();
  const fresh = await waitForNew(dovecot, BOB, before);
  expect(fresh).toHaveLength(1);
  return fresh[0]!;
}

const envelope = { from: addressOf('alice'), to: [addressOf('bob')] };

describe('delivery, byte for byte', () => {
  it('implicit TLS to postern, implicit TLS upstream', async () => {
    const { password } = await postern.newPassword('alice', PRIMARY);
    const raw = await compose({
      from: addressOf('alice'), to: addressOf('bob'), subject: 'implicit TLS both ways',
      text: 'first line\r\n.a line starting with a dot\r\n..two dots\r\n.\r\nlast line',
      html: '<p>hello</p>',
      attachments: [{ filename: 'blob.bin', content: Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 256)) }],
    });
    let response = '';
    const got = await deliveredOnce(async () => {
      const info = await transport({ port: postern.port('smtp.implicitTls'), secure: true, user: 'alice', pass: password, ca: postern.caPem }).sendMail({ envelope, raw });
      response = info.response;
    });
    expect(stripDeliveryTrace(got).equals(raw)).toBe(true);
    // The final reply is the upstream's own (Dovecot relays the LMTP "Saved" text).
    expect(response).toMatch(/^250 2\.\d\.\d <bob@example\.test> \S+ Saved$/);
  });

  it('STARTTLS to postern, STARTTLS upstream', async () => {
    const { password } = await starttlsPostern.newPassword('alice', PRIMARY);
    const raw = await compose({ from: addressOf('alice'), to: addressOf('bob'), subject: 'STARTTLS both ways', text: 'hello over STARTTLS\r\n' });
    const got = await deliveredOnce(() =>
      transport({ port: starttlsPostern.port('smtp.starttls'), secure: false, user: 'alice', pass: password, ca: starttlsPostern.caPem }).sendMail({ envelope, raw }));
    expect(stripDeliveryTrace(got).equals(raw)).toBe(true);
  });

  it('an 8-bit body with UTF-8 headers passes with BODY=8BITMIME', async () => {
    const { password } = await postern.newPassword('alice', PRIMARY);
    const raw = Buffer.from(
      'From: =?UTF-8?Q?J=C3=B6rg?= <alice@example.test>\r\nTo: Bøb <bob@example.test>\r\nSubject: Grüße, 日本語\r\n' +
      'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n' +
      'Ünïcödé body — ½ € 日本語\r\n.leading dot\r\n', 'utf8');
    const sink = dovecot.relaySink.received.length;
    const got = await deliveredOnce(() =>
      transport({ port: postern.port('smtp.implicitTls'), secure: true, user: 'alice', pass: password, ca: postern.caPem })
        .sendMail({ envelope: { ...envelope, use8BitMime: true }, raw }));
    expect(stripDeliveryTrace(got).equals(raw)).toBe(true);
    expect(dovecot.relaySink.received[sink]?.bodyType).toBe('8bitmime');
  });

  it('master-user mode: PLAIN with an authorization identity upstream', async () => {
    const master = await startSmtpPostern(dovecot, { master: true });
    try {
      await master.addUser('carol@example.org', 'Carol-primary-passw0rd', { mode: 'master', user: ALICE.name });
      const { password } = await master.newPassword('carol@example.org', 'Carol-primary-passw0rd');
      const raw = await compose({ from: addressOf('alice'), to: addressOf('bob'), subject: 'via the master user', text: 'sent as alice by the master user\r\n' });
      const got = await deliveredOnce(() =>
        transport({ port: master.port('smtp.implicitTls'), secure: true, user: 'carol@example.org', pass: password, ca: master.caPem }).sendMail({ envelope, raw }));
      expect(stripDeliveryTrace(got).equals(raw)).toBe(true);
    } finally {
      await master.stop();
    }
  });
});

describe('in-step transactions', () => {
  it('a recipient the upstream refuses is refused at RCPT with the upstream code and text', async () => {
    const { password } = await postern.newPassword('alice', PRIMARY);
    const direct = await connectLineClient({ host: dovecot.host, port: dovecot.submissionsPort, tls: { ca: dovecot.caPem } });
    await direct.readLine();
    await say(direct, 'EHLO client.example');
    expect(await say(direct, `AUTH PLAIN ${plainToken(ALICE.name, ALICE.password)}`)).toMatch(/^235 /);
    await say(direct, `MAIL FROM:<${addressOf('alice')}>`);
    const directRefusal = await say(direct, 'RCPT TO:<nobody@example.test>');
    direct.close();

    const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    expect(await say(client, `AUTH PLAIN ${plainToken('alice', password)}`)).toMatch(/^235 /);
    expect(await say(client, `MAIL FROM:<${addressOf('alice')}>`)).toMatch(/^250 /);
    const refusal = await say(client, 'RCPT TO:<nobody@example.test>');
    expect(refusal).toMatch(/^550 /);
    expect(refusal).toBe(directRefusal);
    // The transaction goes on with the accepted recipient.
    expect(await say(client, `RCPT TO:<${addressOf('bob')}>`)).toMatch(/^250 /);
    const before = (await inbox(dovecot, BOB)).length;
    expect(await say(client, 'DATA')).toMatch(/^354 /);
    expect(await say(client, 'Subject: partial refusal\r\n\r\nbody\r\n.')).toMatch(/^250 /);
    expect(await waitForNew(dovecot, BOB, before)).toHaveLength(1);
    expect(await say(client, 'QUIT')).toMatch(/^221 /);
  });

  it('several messages per session; a RSET transaction leaves no trace', async () => {
    const { password } = await postern.newPassword('alice', PRIMARY);
    const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    expect(await say(client, `AUTH PLAIN ${plainToken('alice', password)}`)).toMatch(/^235 /);
    const sink = dovecot.relaySink.received.length;
    const before = (await inbox(dovecot, BOB)).length;
    // A transaction that is reset before DATA.
    expect(await say(client, `MAIL FROM:<reset-me@example.test>`)).toMatch(/^250 /);
    expect(await say(client, `RCPT TO:<${addressOf('bob')}>`)).toMatch(/^250 /);
    expect(await say(client, 'RSET')).toMatch(/^250 /);
    for (const n of [1, 2, 3]) {
      expect(await say(client, `MAIL FROM:<${addressOf('alice')}>`)).toMatch(/^250 /);
      expect(await say(client, `RCPT TO:<${addressOf('bob')}>`)).toMatch(/^250 /);
      expect(await say(client, 'DATA')).toMatch(/^354 /);
      expect(await say(client, `Subject: message ${n}\r\n\r\nbody ${n}\r\n.`)).toMatch(/^250 .*Saved/);
    }
    expect(await say(client, 'QUIT')).toMatch(/^221 /);
    const fresh = await waitForNew(dovecot, BOB, before, 3);
    expect(fresh.map((m) => /Subject: (.*)\r\n/.exec(m.toString())?.[1])).toEqual(['message 1', 'message 2', 'message 3']);
    const relayed = dovecot.relaySink.received.slice(sink);
    expect(relayed.map((m) => m.from)).toEqual([addressOf('alice'), addressOf('alice'), addressOf('alice')]);
  });

  it('bare line ends cannot end the message early (no SMTP smuggling upstream)', async () => {
    const { password } = await postern.newPassword('alice', PRIMARY);
    const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    expect(await say(client, `AUTH PLAIN ${plainToken('alice', password)}`)).toMatch(/^235 /);
    const sink = dovecot.relaySink.received.length;
    expect(await say(client, `MAIL FROM:<${addressOf('alice')}>`)).toMatch(/^250 /);
    expect(await say(client, `RCPT TO:<${addressOf('bob')}>`)).toMatch(/^250 /);
    expect(await say(client, 'DATA')).toMatch(/^354 /);
    const smuggled = `MAIL FROM:<smuggled@example.test>\r\nRCPT TO:<${addressOf('bob')}>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n`;
    for (const end of ['\n.\r\n', '\r.\r\n', '\n.\n', '\r\n.\n']) {
      client.write(`Subject: carrier\r\n\r\nbefore${end}${smuggled}`);
    }
    expect(await say(client, '.')).toMatch(/^250 /);
    expect(await say(client, 'QUIT')).toMatch(/^221 /);
    await new Promise((r) => setTimeout(r, 500));
    const relayed = dovecot.relaySink.received.slice(sink);
    expect(relayed).toHaveLength(1);
    expect(relayed[0]!.from).toBe(addressOf('alice'));
    expect(relayed[0]!.raw.toString()).toContain('MAIL FROM:<smuggled@example.test>');
  });
});

describe('extensions', () => {
  it('SMTPUTF8 is not offered because Dovecot submission does not offer it; asking for it is refused clearly', async () => {
    const { password } = await postern.newPassword('alice', PRIMARY);
    const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    expect(await say(client, `AUTH PLAIN ${plainToken('alice', password)}`)).toMatch(/^235 /);
    client.write('EHLO client.example\r\n');
    const ehlo = await client.readUntil((l) => l.startsWith('250 '));
    expect(ehlo.join('\n')).not.toMatch(/SMTPUTF8/);
    expect(ehlo.join('\n')).toMatch(/8BITMIME/);
    expect(await say(client, 'MAIL FROM:<jörg@example.test> SMTPUTF8')).toBe('555 5.5.4 SMTPUTF8 is not supported by the mail provider');
    // Without the parameter the upstream judges the address itself, and its answer is relayed.
    expect(await say(client, 'MAIL FROM:<jörg@example.test>')).toMatch(/^501 5\.5\.4 Invalid FROM/);
    client.close();
  });
});
