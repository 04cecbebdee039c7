// Authentication at postern's submission listeners, against a real Dovecot upstream.
// Invariants pinned here:
// - an app password with the smtp scope authenticates (PLAIN and LOGIN); the primary password gets
//   535 5.7.8 with the sentence; wrong, unknown-user, revoked and out-of-scope passwords all get the
//   same `535 5.7.8 Authentication failed`;
// - before TLS, AUTH is neither offered nor accepted and no transaction can start (RFC 3207, 4954);
// - the configured number of failed AUTHs ends the connection with 421; bad base64 gets 501 and
//   an overlong command line 421 and a close;
// - upstream down → 454 4.7.0; upstream refuses the stored credentials → 454 4.7.0 and the account
//   is flagged;
// - revoking the password in use ends a live session with 421 within a second;
// - no secret reaches the logs (checked by the harness at stop).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PRIMARY_PASSWORD_REFUSED_TEXT } from '../../src/auth/types.js';
import type { DovecotServer } from '../helpers/dovecot.js';
import { freePort } from '../helpers/free-port.js';
import { connectLineClient } from '../helpers/line-client.js';
import type { PosternHarness } from '../helpers/postern.js';
import { addressOf } from '../helpers/relay-sink.js';
import { assertNoInternalErrors, ALICE, BOB, PRIMARY, compose, inbox, plainToken, rawSession, say, startMailServer, startSmtpPostern, transport } from './fixture.js';

let dovecot: DovecotServer;
let postern: PosternHarness;

beforeAll(async () => {
  dovecot = await startMailServer();
  postern = await startSmtpPostern(dovecot);
});
afterAll(async () => {
  await postern?.stop();
  await dovecot?.stop();
  assertNoInternalErrors(postern);
});

const FAILED = '535 5.7.8 Authentication failed';

/** The server's answer to a nodemailer login attempt ('' if it succeeded). */
async function loginAnswer(user: string, pass: string, extra: Record<string, unknown> = {}): Promise<string> {
  const t = transport({ port: postern.port('smtp.implicitTls'), secure: true, user, pass, ca: postern.caPem }, extra);
  try {
    await t.verify();
    return '';
  } catch (err) {
    return (err as { response?: string }).response ?? String(err);
  } finally {
    t.close();
  }
}

describe('answers to AUTH', () => {
  it('accepts an app password with PLAIN and with LOGIN', async () => {
    const { password } = await postern.newPassword('alice', PRIMARY);
    expect(await loginAnswer('alice', password)).toBe('');
    expect(await loginAnswer('alice', password, { authMethod: 'LOGIN' })).toBe('');
    // Typed with spaces and upper case, as users copy it.
    expect(await loginAnswer('Alice', password.toUpperCase().replace(/-/g, ' '))).toBe('');
  });

  it('refuses the primary password with the sentence', async () => {
    expect(await loginAnswer('alice', PRIMARY)).toBe(`535 5.7.8 ${PRIMARY_PASSWORD_REFUSED_TEXT}`);
    await postern.logs.waitForEvent('auth.primary_refused');
  });

  it('answers wrong, unknown-user, revoked and out-of-scope passwords identically', async () => {
    const revoked = await postern.newPassword('alice', PRIMARY);
    await postern.accounts.revokePassword('alice', revoked.publicId);
    const imapOnly = await postern.newPassword('alice', PRIMARY, { scopes: ['imap'] });
    const answers = [
      await loginAnswer('alice', 'abcd-efgh-ijkl-mnop'),
      await loginAnswer('nobody', 'abcd-efgh-ijkl-mnop'),
      await loginAnswer('alice', revoked.password),
      await loginAnswer('alice', imapOnly.password),
      await loginAnswer('alice', ALICE.password), // the real upstream password is not a postern password
    ];
    expect(answers).toEqual([FAILED, FAILED, FAILED, FAILED, FAILED]);
  });

  it('refuses PLAIN acting for another identity', async () => {
    const { password } = await postern.newPassword('alice', PRIMARY);
    const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    expect(await say(client, `AUTH PLAIN ${plainToken('alice', password, 'bob')}`)).toMatch(/^535 5\.7\.8 /);
    expect(await say(client, `AUTH PLAIN ${plainToken('alice', password, 'alice')}`)).toMatch(/^235 /);
    client.close();
  });

  it('ends the connection with 421 after the configured number of failures', async () => {
    const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    for (let i = 0; i < postern.config.smtp!.limits.maxAuthFailures - 1; i++) {
      expect(await say(client, `AUTH PLAIN ${plainToken('alice', 'wrong-wrong-wrong')}`)).toBe(FAILED);
    }
    expect(await say(client, `AUTH PLAIN ${plainToken('alice', 'wrong-wrong-wrong')}`)).toBe(FAILED);
    expect(await client.readLine()).toMatch(/^421 4\.7\.0 /);
    await client.closed;
  });
});

describe('before authentication', () => {
  it('offers and accepts no AUTH before STARTTLS, and no transaction', async () => {
    const { password } = await postern.newPassword('alice', PRIMARY);
    const client = await connectLineClient({ host: '127.0.0.1', port: postern.port('smtp.starttls') });
    expect(await client.readLine()).toMatch(/^220 /);
    client.write('EHLO client.example\r\n');
    const plainEhlo = (await client.readUntil((l) => l.startsWith('250 '))).join('\n');
    expect(plainEhlo).toMatch(/STARTTLS/);
    expect(plainEhlo).not.toMatch(/AUTH/);
    expect(await say(client, `AUTH PLAIN ${plainToken('alice', password)}`)).toMatch(/^5\d\d /);
    expect(await say(client, `MAIL FROM:<${addressOf('alice')}>`)).toBe('530 5.7.0 Must issue a STARTTLS command first');
    expect(await say(client, 'NOOP')).toMatch(/^250 /);
    expect(await say(client, 'VRFY alice')).toMatch(/^5\d\d /);
    expect(await say(client, 'STARTTLS')).toMatch(/^220 /);
    await client.startTls({ ca: postern.caPem, servername: 'localhost' });
    client.write('EHLO client.example\r\n');
    const tlsEhlo = (await client.readUntil((l) => l.startsWith('250 '))).join('\n');
    expect(tlsEhlo).toMatch(/AUTH PLAIN LOGIN/);
    expect(await say(client, `MAIL FROM:<${addressOf('alice')}>`)).toBe('530 5.7.0 Authentication required');
    expect(await say(client, `AUTH PLAIN ${plainToken('alice', password)}`)).toMatch(/^235 /);
    expect(await say(client, `MAIL FROM:<${addressOf('alice')}>`)).toMatch(/^250 /);
    client.close();
  });
});

describe('malformed input', () => {
  it('answers bad base64 and broken SASL exchanges with 501, and an overlong line with 421 and a close; postern stays up', async () => {
    const c = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    // Dovecot offers ENHANCEDSTATUSCODES, so postern does, and smtp-server's own replies carry one.
    expect(await say(c, 'AUTH PLAIN !!!not-base64***')).toBe('501 5.5.4 Error: invalid userdata');
    expect(await say(c, 'AUTH PLAIN AGFsaWNl')).toBe('501 5.5.4 Error: invalid userdata'); // "\0alice": no password part
    c.write('AUTH LOGIN\r\n');
    expect(await c.readLine()).toBe('334 VXNlcm5hbWU6');
    expect(await say(c, '%%%')).toBe('501 5.5.4 Error: missing username');
    expect(await say(c, `NOOP ${'x'.repeat(20_000)}`)).toBe('421 4.4.2 Error: Command line too long');
    await c.closed;
    const next = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    expect(await say(next, 'NOOP')).toMatch(/^250 /);
    next.close();
  });
});

describe('upstream faults at login', () => {
  it('answers 454 4.7.0 when the upstream is down', async () => {
    const down = await startSmtpPostern(dovecot, { upstream: { port: await freePort(dovecot.host) } });
    try {
      const { password } = await down.newPassword('alice', PRIMARY);
      const t = transport({ port: down.port('smtp.implicitTls'), secure: true, user: 'alice', pass: password, ca: down.caPem });
      const err = await t.verify().then(() => null, (e: { response?: string }) => e);
      expect(err?.response).toMatch(/^454 4\.7\.0 Temporary authentication failure: the mail provider cannot be reached/);
      await down.logs.waitForEvent('upstream.fault');
    } finally {
      await down.stop();
    }
  });

  it('verifies the upstream certificate by default: an untrusted one is a fault (454), not a login', async () => {
    const untrusted = await startSmtpPostern(dovecot, { upstream: { caFile: undefined } });
    try {
      const { password } = await untrusted.newPassword('alice', PRIMARY);
      const t = transport({ port: untrusted.port('smtp.implicitTls'), secure: true, user: 'alice', pass: password, ca: untrusted.caPem });
      const err = await t.verify().then(() => null, (e: { response?: string }) => e);
      expect(err?.response).toMatch(/^454 4\.7\.0 /);
      const faults = untrusted.logs.events('upstream.fault').filter((e) => e.stage === 'connect');
      expect(faults.map((e) => e.code)).toContain('UPSTREAM_TLS_FAILED');
      expect((await untrusted.app.store.accounts.findByLogin('alice'))?.upstreamStatus).not.toBe('rejected');
    } finally {
      await untrusted.stop();
    }
  });

  it('answers 454 4.7.0 and flags the account when the upstream refuses the stored credentials', async () => {
    await postern.addUser('dave@example.org', 'Dave-primary-passw0rd', { mode: 'password', user: BOB.name, secret: 'not-bobs-password' });
    const { password } = await postern.newPassword('dave@example.org', 'Dave-primary-passw0rd');
    expect(await loginAnswer('dave@example.org', password)).toMatch(/^454 4\.7\.0 .*refused the credentials stored for this account/);
    // The flag goes through the write queue after the answer: waited for, not read at once.
    await expect.poll(async () => (await postern.app.store.accounts.findByLogin('dave@example.org'))?.upstreamStatus, { timeout: 5_000 }).toBe('rejected');
  });
});

describe('revocation', () => {
  it('ends a live session with 421 within a second, mid-transaction, and nothing is delivered', async () => {
    const { password, publicId } = await postern.newPassword('alice', PRIMARY);
    const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    expect(await say(client, `AUTH PLAIN ${plainToken('alice', password)}`)).toMatch(/^235 /);
    expect(await say(client, `MAIL FROM:<${addressOf('alice')}>`)).toMatch(/^250 /);
    expect(await say(client, `RCPT TO:<${addressOf('bob')}>`)).toMatch(/^250 /);
    expect(await say(client, 'DATA')).toMatch(/^354 /);
    client.write('Subject: must not arrive\r\n\r\npartial');
    const before = (await inbox(dovecot, BOB)).length;
    const revokedAt = Date.now();
    await postern.accounts.revokePassword('alice', publicId);
    const line = await client.readLine(2_000);
    const elapsed = Date.now() - revokedAt;
    expect(line).toMatch(/^421 4\.7\.0 .*no longer valid/);
    expect(elapsed).toBeLessThan(1_000);
    await client.closed;
    await postern.logs.waitForEvent('session.revoked');
    await new Promise((r) => setTimeout(r, 300));
    expect((await inbox(dovecot, BOB)).length).toBe(before);
  });

  it('ends an idle authenticated nodemailer session too', async () => {
    const { password, publicId } = await postern.newPassword('alice', PRIMARY);
    const t = transport({ port: postern.port('smtp.implicitTls'), secure: true, user: 'alice', pass: password, ca: postern.caPem }, { pool: true, maxConnections: 1 });
    const raw = await compose({ from: addressOf('alice'), to: addressOf('bob'), subject: 'before revocation', text: 'ok\r\n' });
    await t.sendMail({ envelope: { from: addressOf('alice'), to: [addressOf('bob')] }, raw });
    await postern.accounts.revokePassword('alice', publicId);
    await new Promise((r) => setTimeout(r, 1_000));
    const err = await t.sendMail({ envelope: { from: addressOf('alice'), to: [addressOf('bob')] }, raw }).then(() => null, (e: { response?: string; responseCode?: number }) => e);
    t.close();
    // The pooled connection was closed by postern; the pool's fresh login is refused.
    expect(err?.response).toBe(FAILED);
  });
});
