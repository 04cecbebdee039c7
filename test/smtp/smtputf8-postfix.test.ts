// SMTPUTF8 (RFC 6531) end to end, through postern to a real Postfix: the one thing Dovecot 2.3's
// submission service cannot be the upstream for. Postfix authenticates through the test Dovecot's
// auth service and delivers into its Maildirs; the message is read back over IMAP.
// Invariants pinned here:
// - postern offers SMTPUTF8 because (and only because) its upstream does (the Dovecot-upstream
//   case, where it is not offered, is in relay.test.ts);
// - nodemailer sends a UTF-8 envelope (sender and recipient with non-ASCII local parts and domain)
//   with UTF-8 addresses in the header fields; it is delivered byte for byte, upstream used
//   SMTPUTF8 (Postfix records "UTF8SMTPSA"), and the envelope arrived unchanged;
// - a UTF-8 recipient the upstream does not know is refused with the upstream's own reply.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { DOVECOT_AUTH_FOR_POSTFIX, startPostfix, stripPostfixTrace, type PostfixServer } from '../helpers/postfix.js';
import { ALICE, BOB, PRIMARY, assertNoInternalErrors, inbox, plainToken, rawSession, say, transport, waitForNew } from './fixture.js';

const SENDER = 'jörg@exämple.test';
const RECIPIENT = 'bøb@example.test';

let dovecot: DovecotServer;
let postfix: PostfixServer;
let postern: PosternHarness;

beforeAll(async () => {
  dovecot = await startDovecot({ users: [ALICE, BOB], extraConfig: DOVECOT_AUTH_FOR_POSTFIX });
  postfix = await startPostfix({ dovecot, mailboxes: { [RECIPIENT]: BOB.name, 'bob@example.test': BOB.name } });
  postern = await startPostern({
    config: { smtp: { implicitTls: { port: 0 }, upstream: { host: postfix.host, port: postfix.port, security: 'starttls', caFile: postfix.caFile } } },
    secrets: [ALICE.password, BOB.password],
  });
  await postern.addUser('alice', PRIMARY, { mode: 'password', user: ALICE.name, secret: ALICE.password });
}, 60_000);

afterAll(async () => {
  await postern?.stop();
  await postfix?.stop();
  await dovecot?.stop();
  assertNoInternalErrors(postern);
});

it('offers SMTPUTF8 because the upstream does', async () => {
  const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
  try {
    client.write('EHLO client.example\r\n');
    const ehlo = await client.readUntil((l) => l.startsWith('250 '));
    expect(ehlo.join('\n')).toMatch(/^250[- ]SMTPUTF8$/m);
  } finally {
    client.close();
  }
});

it('delivers a message with a UTF-8 envelope and UTF-8 addresses in its header, byte for byte', async () => {
  const { password } = await postern.newPassword('alice', PRIMARY);
  // As a client with SMTPUTF8 writes it (RFC 6532): UTF-8 addresses and text in the header as they
  // are, no encoded words; an 8-bit body.
  const raw = Buffer.from(
    `From: Jörg Müller <${SENDER}>\r\nTo: Bøb <${RECIPIENT}>\r\nCc: 日本 <日本@example.test>\r\n` +
    'Subject: Grüße aus Zürich, 日本語\r\nMessage-ID: <grüße-1@exämple.test>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n' +
    'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n' +
    'Ünïcödé body — ½ € 日本語\r\n.leading dot\r\n', 'utf8');
  const before = (await inbox(dovecot, BOB)).length;
  const info = await transport({ port: postern.port('smtp.implicitTls'), secure: true, user: 'alice', pass: password, ca: postern.caPem })
    .sendMail({ envelope: { from: SENDER, to: [RECIPIENT] }, raw });
  expect(info.accepted).toEqual([RECIPIENT]);
  expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as /); // Postfix's own verdict

  const [got] = await waitForNew(dovecot, BOB, before);
  expect(stripPostfixTrace(got!).equals(raw)).toBe(true);
  const trace = got!.subarray(0, got!.length - raw.length).toString('utf8');
  expect(trace).toContain(`Return-Path: <${SENDER}>`);
  expect(trace).toContain(`Delivered-To: ${RECIPIENT}`);
  expect(trace).toMatch(/ with UTF8SMTPSA /); // RFC 6531 §3.7.4: Postfix saw SMTPUTF8, TLS and AUTH on postern's session
});

it('refuses a UTF-8 recipient the upstream does not know with the upstream\'s own reply', async () => {
  const { password } = await postern.newPassword('alice', PRIMARY);
  const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
  try {
    expect(await say(client, `AUTH PLAIN ${plainToken('alice', password)}`)).toMatch(/^235 /);
    expect(await say(client, `MAIL FROM:<${SENDER}> SMTPUTF8`)).toMatch(/^250 /);
    const refusal = await say(client, 'RCPT TO:<nöbody@example.test>');
    expect(refusal).toMatch(/^550 5\.1\.1 <nöbody@example\.test>: Recipient address rejected: User unknown in virtual mailbox table$/);
    expect(await say(client, `RCPT TO:<${RECIPIENT}>`)).toMatch(/^250 /);
    expect(await say(client, 'RSET')).toMatch(/^250 /);
  } finally {
    client.close();
  }
});
