// SMTP extensions through postern to a real Postfix, which offers DSN and ENHANCEDSTATUSCODES
// (Dovecot 2.3's submission service, the other upstream, offers neither). Postfix authenticates
// through the test Dovecot's auth service and delivers into its Maildirs, delivery notifications
// included; they are read back over IMAP. Invariants pinned here:
// - postern offers DSN and ENHANCEDSTATUSCODES because its upstream does;
// - RET, ENVID (xtext), NOTIFY and ORCPT a client sends arrive at Postfix: its success
//   notification (sent only for NOTIFY=SUCCESS) names the envelope id and the original
//   recipient, and returns the headers only (RET=HDRS);
// - a MAIL FROM or RCPT TO parameter postern does not understand is refused with 555 5.5.4
//   (RFC 5321 §4.1.1.11) by postern itself, not dropped.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { DOVECOT_AUTH_FOR_POSTFIX, startPostfix, type PostfixServer } from '../helpers/postfix.js';
import { ALICE, BOB, PRIMARY, assertNoInternalErrors, inbox, plainToken, rawSession, say, transport, waitForNew } from './fixture.js';

const SENDER = 'alice@example.test';
const RECIPIENT = 'bob@example.test';
/** `+` and `=` must travel as xtext (+2B, +3D). */
const ENVID = 'postern-dsn+42=x';

let dovecot: DovecotServer;
let postfix: PostfixServer;
let postern: PosternHarness;

beforeAll(async () => {
  dovecot = await startDovecot({ users: [ALICE, BOB], extraConfig: DOVECOT_AUTH_FOR_POSTFIX });
  postfix = await startPostfix({ dovecot, mailboxes: { [SENDER]: ALICE.name, [RECIPIENT]: BOB.name } });
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

async function ehloLines(): Promise<string> {
  // The extensions are learnt by a probe in the background at start-up: ask until it has landed.
  for (let attempt = 0; ; attempt++) {
    const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    try {
      client.write('EHLO client.example\r\n');
      const ehlo = (await client.readUntil((l) => l.startsWith('250 '))).join('\n');
      if (/^250[- ]DSN$/m.test(ehlo) || attempt >= 50) return ehlo;
    } finally {
      client.close();
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('extensions', () => {
  it('offers DSN and ENHANCEDSTATUSCODES because the upstream does', async () => {
    const ehlo = await ehloLines();
    expect(ehlo).toMatch(/^250[- ]DSN$/m);
    expect(ehlo).toMatch(/^250[- ]ENHANCEDSTATUSCODES$/m);
  });
});

describe('delivery status notifications (RFC 3461)', () => {
  it('passes NOTIFY=SUCCESS,FAILURE, RET=HDRS, ENVID and ORCPT to Postfix, which notifies the sender', async () => {
    await ehloLines();
    const { password } = await postern.newPassword('alice', PRIMARY);
    const before = (await inbox(dovecot, ALICE)).length;
    const raw = Buffer.from(`From: <${SENDER}>\r\nTo: <${RECIPIENT}>\r\nSubject: dsn please\r\nMessage-ID: <dsn-1@example.test>\r\n\r\nbody line that must not come back\r\n`);
    // nodemailer sends these parameters only to a server that offers DSN, as Thunderbird does.
    const info = await transport({ port: postern.port('smtp.implicitTls'), secure: true, user: 'alice', pass: password, ca: postern.caPem }).sendMail({
      envelope: { from: SENDER, to: [RECIPIENT] }, raw,
      dsn: { id: ENVID, return: 'headers', notify: ['success', 'failure'], recipient: RECIPIENT },
    });
    expect(info.accepted).toEqual([RECIPIENT]);

    const [notification] = await waitForNew(dovecot, ALICE, before, 1, 20_000);
    const text = notification!.toString('utf8');
    expect(text).toMatch(/^Content-Type: multipart\/report; report-type=delivery-status;/m);
    expect(text).toContain(`Original-Envelope-Id: ${ENVID}`); // ENVID arrived (RFC 3464 §2.2.1)
    expect(text).toMatch(/^Original-Recipient: rfc822; ?bob@example\.test$/m); // ORCPT arrived
    expect(text).toMatch(/^Action: delivered$/m); // a success notice: NOTIFY had SUCCESS
    expect(text).toMatch(/^Content-Type: text\/rfc822-headers$/m); // RET=HDRS: headers only
    expect(text).toContain('Subject: dsn please');
    expect(text).not.toContain('body line that must not come back');
    const log = await postfix.log();
    expect(log).toMatch(/sender delivery status notification/);
  });
});

describe('CHUNKING (RFC 3030) to Postfix', () => {
  it('offers CHUNKING because Postfix does, and relays a chunked message to it as BDAT', async () => {
    expect(await ehloLines()).toMatch(/^250[- ]CHUNKING$/m);
    const { password } = await postern.newPassword('alice', PRIMARY);
    const before = (await inbox(dovecot, BOB)).length;
    const parts = [`From: <${SENDER}>\r\nTo: <${RECIPIENT}>\r\nSubject: chunked to postfix\r\n\r\nfirst half\r\n`, '.\r\nsecond half\r\n'];
    const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    try {
      expect(await say(client, `AUTH PLAIN ${plainToken('alice', password)}`)).toMatch(/^235 /);
      expect(await say(client, `MAIL FROM:<${SENDER}>`)).toMatch(/^250 /);
      expect(await say(client, `RCPT TO:<${RECIPIENT}>`)).toMatch(/^250 /);
      client.write(`BDAT ${parts[0]!.length}\r\n${parts[0]}`);
      expect((await client.readUntil((l) => /^\d{3} /.test(l))).pop()).toMatch(/^250 2\.0\.0 \d+ octets received$/);
      client.write(`BDAT ${parts[1]!.length} LAST\r\n${parts[1]}`);
      expect((await client.readUntil((l) => /^\d{3} /.test(l))).pop()).toMatch(/^250 2\.0\.0 Ok: \d+ bytes queued as /); // Postfix's verdict on BDAT LAST
      expect(await say(client, 'QUIT')).toMatch(/^221 /);
    } finally {
      client.close();
    }
    const [delivered] = await waitForNew(dovecot, BOB, before, 1, 20_000);
    expect(delivered!.toString('utf8')).toContain('first half\r\n.\r\nsecond half\r\n');
    // Postfix counts the commands of each session at its end: postern's went up as BDAT, not DATA.
    await expect.poll(async () => (await postfix.log()).match(/disconnect from .* bdat=1 .*$/m)?.[0] ?? '', { timeout: 10_000 }).toMatch(/auth=1 mail=1 rcpt=1 bdat=1/);
  });
});

describe('parameters postern does not understand', () => {
  it('refuses them itself with 555 5.5.4 on MAIL FROM and RCPT TO, not dropped', async () => {
    const { password } = await postern.newPassword('alice', PRIMARY);
    const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    try {
      expect(await say(client, `AUTH PLAIN ${plainToken('alice', password)}`)).toMatch(/^235 /);
      expect(await say(client, `MAIL FROM:<${SENDER}> XPOSTERNTEST=1`)).toBe('555 5.5.4 MAIL FROM parameter XPOSTERNTEST not recognised');
      expect(await say(client, `MAIL FROM:<${SENDER}> REQUIRETLS`)).toMatch(/^555 5\.5\.4 /); // not offered
      expect(await say(client, `MAIL FROM:<${SENDER}> RET=FULL`)).toMatch(/^250 /);
      expect(await say(client, `RCPT TO:<${RECIPIENT}> XPOSTERNTEST`)).toBe('555 5.5.4 RCPT TO parameter XPOSTERNTEST not recognised');
      expect(await say(client, `RCPT TO:<${RECIPIENT}> NOTIFY=NEVER`)).toMatch(/^250 /);
      expect(await say(client, 'RSET')).toMatch(/^250 /);
    } finally {
      client.close();
    }
  });
});
