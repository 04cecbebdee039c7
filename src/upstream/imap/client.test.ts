// The upstream pre-auth client on its own, against a scripted upstream that assembles commands
// the way a server must. Pins the login encodings: quoted strings when possible, literals
// (non-synchronising with LITERAL+, else synchronising, waiting for `+`) for values a quoted
// string cannot carry, SASL PLAIN with an authorization identity with and without SASL-IR, and
// PLAIN instead of LOGIN when the upstream says LOGINDISABLED.
import { afterEach, describe, expect, it } from 'vitest';
import type { UpstreamCredential } from '../../auth/types.js';
import type { MailUpstreamConfig } from '../../config/schema.js';
import { UpstreamRefusal } from '../refusal.js';
import { connectImapUpstream } from './client.js';
import { startFakeUpstream, type FakeUpstream } from '../../../test/imap/fake-upstream.js';

let fake: FakeUpstream | null = null;
afterEach(async () => {
  await fake?.stop();
  fake = null;
});

function settings(port: number): MailUpstreamConfig {
  return { host: '127.0.0.1', port, security: 'plain', rejectUnauthorized: true, connectTimeoutMs: 1_000, greetingTimeoutMs: 1_000, trusted: false };
}

async function loginWith(greetingCaps: string, credential: { username: string; password: string; authzid?: string }) {
  fake = await startFakeUpstream({ greetingCaps });
  const upstream = await connectImapUpstream(settings(fake.port));
  const { authzid } = credential;
  const typed: UpstreamCredential = authzid === undefined ? { kind: 'password', ...credential } : { kind: 'master', ...credential, authzid };
  const loggedIn = await upstream.login({ credential: typed, id: null, clientAddress: '127.0.0.1' });
  loggedIn.socket.destroy();
  return { loggedIn, received: fake.received[0]! };
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

describe('upstream login encodings', () => {
  it('LOGIN with quoted strings, escapes included', async () => {
    const { received, loggedIn } = await loginWith('IMAP4rev1', { username: 'erin', password: 'p"w\\d' });
    expect(received).toEqual(['P1 LOGIN "erin" "p\\"w\\\\d"']);
    expect(loggedIn.capabilities).toContain('FAKE-EXTENSION');
  });

  it('LOGIN with a synchronising literal for 8-bit values when there is no LITERAL+', async () => {
    const { received } = await loginWith('IMAP4rev1', { username: 'erin', password: 'pässwörd' });
    expect(received).toEqual([`P1 LOGIN "erin" {${Buffer.byteLength('pässwörd')}}\r\npässwörd`]);
  });

  it('LOGIN with a non-synchronising literal when the upstream has LITERAL+', async () => {
    const { received } = await loginWith('IMAP4rev1 LITERAL+', { username: 'jürgen', password: 'pw' });
    expect(received).toEqual([`P1 LOGIN {${Buffer.byteLength('jürgen')}+}\r\njürgen "pw"`]);
  });

  it('SASL PLAIN with authzid, with SASL-IR and by continuation', async () => {
    const credential = { username: 'master', password: 'mpw', authzid: 'erin' };
    const ir = await loginWith('IMAP4rev1 SASL-IR', credential);
    expect(ir.received).toEqual([`P1 AUTHENTICATE PLAIN ${b64('erin\0master\0mpw')}`]);
    await fake!.stop();
    const cont = await loginWith('IMAP4rev1', credential);
    expect(cont.received).toEqual(['P1 AUTHENTICATE PLAIN', b64('erin\0master\0mpw')]);
  });

  it('SASL PLAIN instead of LOGIN when the upstream says LOGINDISABLED', async () => {
    const { received } = await loginWith('IMAP4rev1 SASL-IR LOGINDISABLED', { username: 'erin', password: 'pw' });
    expect(received).toEqual([`P1 AUTHENTICATE PLAIN ${b64('\0erin\0pw')}`]);
  });

  it('asks for capabilities first when the greeting carries none', async () => {
    const { received } = await loginWith('', { username: 'erin', password: 'pässwörd' });
    // The fake's CAPABILITY answer has LITERAL+, so the literal is non-synchronising.
    expect(received).toEqual(['P1 CAPABILITY', `P2 LOGIN "erin" {${Buffer.byteLength('pässwörd')}+}\r\npässwörd`]);
  });

  it('a used or closed upstream connection is not usable again', async () => {
    fake = await startFakeUpstream();
    const upstream = await connectImapUpstream(settings(fake.port));
    expect(upstream.usable()).toBe(true);
    const loggedIn = await upstream.login({ credential: { kind: 'password', username: 'erin', password: 'pw' }, id: [['name', 'Mail']], clientAddress: '127.0.0.1' });
    expect(upstream.usable()).toBe(false);
    expect(fake.received[0]).toEqual(['P1 ID ("name" "Mail")', 'P2 LOGIN "erin" "pw"']);
    loggedIn.socket.destroy();
    const second = await connectImapUpstream(settings(fake.port));
    second.close();
    expect(second.usable()).toBe(false);
  });
});

// RFC 5530: which tagged answers to the login say the stored credentials are wrong (the account is
// flagged), which are the provider's other refusals (passed on with their code), which are faults.
describe('upstream login refusals', () => {
  async function refusalOf(answer: string): Promise<unknown> {
    fake = await startFakeUpstream();
    fake.login = { answer };
    const upstream = await connectImapUpstream(settings(fake.port));
    const credential: UpstreamCredential = { kind: 'password', username: 'erin', password: 'erin-upstream-Secret' };
    return upstream.login({ credential, id: null, clientAddress: '127.0.0.1' }).then(() => 'logged in', (err: unknown) => err);
  }

  it.each(['NO [AUTHENTICATIONFAILED] Authentication failed.', 'NO [AUTHORIZATIONFAILED] No such authorization-ID', 'NO Login failed', 'NO [ALERT] Application-specific password required'])('%s: the stored credentials refused', async (answer) => {
    expect(await refusalOf(answer)).toMatchObject({ code: 'UPSTREAM_AUTH_REJECTED' });
  });

  it.each([
    ['LIMIT', true], ['INUSE', true], ['UNAVAILABLE', true], ['SERVERBUG', true],
    ['OVERQUOTA', false], ['CONTACTADMIN', false], ['EXPIRED', false], ['PRIVACYREQUIRED', false],
  ])('NO [%s]: the provider\'s refusal, its code and text kept (temporary: %s)', async (code, temporary) => {
    const err = await refusalOf(`NO [${code}] Said by the provider.`);
    expect(err).toBeInstanceOf(UpstreamRefusal);
    expect((err as UpstreamRefusal).refusal).toEqual({ code, text: 'Said by the provider.', temporary });
  });

  it('drops a refusal text that echoes the password', async () => {
    const err = await refusalOf('NO [LIMIT] too many logins with password erin-upstream-Secret');
    expect((err as UpstreamRefusal).refusal).toEqual({ code: 'LIMIT', text: null, temporary: true });
  });

  it('BAD to the login is a fault, not a refusal', async () => {
    expect(await refusalOf('BAD Syntax error')).toMatchObject({ code: 'UPSTREAM_PROTOCOL' });
  });
});
