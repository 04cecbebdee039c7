// The listeners themselves: TLS material, shutdown, and pre-authentication defences. A scripted fake
// upstream stands in for the provider (nothing here is about the upstream).
// Invariants pinned here:
// - a TLS reload (SIGHUP) serves the new certificate to new connections on both listeners, and an
//   authenticated session made before it carries on;
// - shutting down answers 421 to live sessions;
// - connections over the per-address cap (counted across both listeners) are answered 421, and a
//   closed connection frees its slot;
// - pre-auth abuse ends with 421: a client talking before the greeting, an HTTP request sent to the
//   mail port, a stream of unknown commands.
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSelfSigned, writeCertFiles } from '../../src/net/certs.js';
import { connectLineClient } from '../helpers/line-client.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { startFakeUpstream, type FakeUpstream } from './fake-upstream.js';
import { assertNoInternalErrors, plainToken, say } from './fixture.js';

const PRIMARY = 'Erin-primary-passw0rd';
let fake: FakeUpstream;
let postern: PosternHarness;

async function start(limits?: Record<string, number>): Promise<PosternHarness> {
  const harness = await startPostern({
    config: { smtp: { implicitTls: { port: 0 }, starttls: { port: 0 }, upstream: { host: fake.host, port: fake.port, security: 'plain' }, ...(limits ? { limits } : {}) } },
    secrets: ['erin-upstream-Secret'],
  });
  await harness.addUser('erin', PRIMARY, { mode: 'password', secret: 'erin-upstream-Secret' });
  return harness;
}

beforeAll(async () => {
  fake = await startFakeUpstream();
  postern = await start();
});
afterAll(async () => {
  await postern?.stop();
  await fake?.stop();
  assertNoInternalErrors(postern);
});

async function session(harness: PosternHarness, ca: string) {
  const { password } = await harness.newPassword('erin', PRIMARY);
  const client = await connectLineClient({ host: '127.0.0.1', port: harness.port('smtp.implicitTls'), tls: { ca, servername: 'localhost' } });
  expect(await client.readLine()).toMatch(/^220 /);
  await say(client, 'EHLO client.example');
  expect(await say(client, `AUTH PLAIN ${plainToken('erin', password)}`)).toMatch(/^235 /);
  return client;
}

function fingerprintOf(socket: unknown): string {
  return (socket as tls.TLSSocket).getPeerCertificate().fingerprint256;
}

describe('TLS reload', () => {
  it('serves the new certificate to new connections; sessions made before carry on', async () => {
    const before = await session(postern, postern.caPem);
    const oldFingerprint = fingerprintOf(before.socket());
    const renewed = generateSelfSigned(['localhost', '127.0.0.1']);
    writeCertFiles(path.join(postern.dir, 'postern.crt'), path.join(postern.dir, 'postern-key.pem'), renewed);
    postern.app.reloadTls();

    const implicit = await connectLineClient({ host: '127.0.0.1', port: postern.port('smtp.implicitTls'), tls: { ca: renewed.certPem, servername: 'localhost' } });
    expect(fingerprintOf(implicit.socket())).not.toBe(oldFingerprint);
    implicit.close();
    const plain = await connectLineClient({ host: '127.0.0.1', port: postern.port('smtp.starttls') });
    await plain.readLine();
    await say(plain, 'EHLO client.example');
    expect(await say(plain, 'STARTTLS')).toMatch(/^220 /);
    await plain.startTls({ ca: renewed.certPem, servername: 'localhost' });
    expect(fingerprintOf(plain.socket())).not.toBe(oldFingerprint);
    plain.close();

    expect(await say(before, 'MAIL FROM:<erin@example.org>')).toMatch(/^250 /);
    expect(await say(before, 'RCPT TO:<someone@example.org>')).toMatch(/^250 /);
    expect(await say(before, 'DATA')).toMatch(/^354 /);
    expect(await say(before, 'Subject: after reload\r\n\r\nstill here\r\n.')).toMatch(/^250 /);
    before.close();
  });
});

describe('pre-authentication defences', () => {
  it('refuses a client that talks before the greeting', async () => {
    const client = await connectLineClient({ host: '127.0.0.1', port: postern.port('smtp.starttls') });
    client.write('EHLO too.early\r\n');
    const lines = await client.readUntil((l) => l.startsWith('421'));
    expect(lines.at(-1)).toMatch(/^421 /);
    await client.closed;
  });

  it('refuses an HTTP request sent to the mail port', async () => {
    const client = await connectLineClient({ host: '127.0.0.1', port: postern.port('smtp.starttls') });
    expect(await client.readLine()).toMatch(/^220 /);
    expect(await say(client, 'POST / HTTP/1.1')).toMatch(/^421 /);
    await client.closed;
  });

  it('ends a session that sends nothing but unknown commands', async () => {
    const client = await connectLineClient({ host: '127.0.0.1', port: postern.port('smtp.starttls') });
    expect(await client.readLine()).toMatch(/^220 /);
    let last = '';
    for (let i = 0; i < 10 && !last.startsWith('421'); i++) last = await say(client, `XYZZY${i}`);
    expect(last).toMatch(/^421 /);
    await client.closed;
  });
});

describe('connection caps', () => {
  it('answers 421 beyond maxConnectionsPerAddress, across both listeners, and frees slots on close', async () => {
    const harness = await start({ maxConnectionsPerAddress: 2 });
    try {
      const greeted = async (port: number) => {
        const client = await connectLineClient({ host: '127.0.0.1', port });
        return { client, greeting: await client.readLine() };
      };
      const first = await greeted(harness.port('smtp.starttls'));
      const second = await connectLineClient({ host: '127.0.0.1', port: harness.port('smtp.implicitTls'), tls: { ca: harness.caPem, servername: 'localhost' } });
      expect(first.greeting).toMatch(/^220 /);
      expect(await second.readLine()).toMatch(/^220 /);
      const third = await greeted(harness.port('smtp.starttls'));
      expect(third.greeting).toBe('421 4.7.0 Too many connections; try again later.');
      await third.client.closed;
      await harness.logs.waitForEvent('connection.limit');
      first.client.close();
      await new Promise((r) => setTimeout(r, 200));
      const fourth = await greeted(harness.port('smtp.starttls'));
      expect(fourth.greeting).toMatch(/^220 /);
      fourth.client.close();
      second.close();
    } finally {
      await harness.stop();
    }
  });
});

describe('shutdown', () => {
  it('answers 421 to live sessions and stops listening', async () => {
    const harness = await start();
    try {
      const client = await session(harness, harness.caPem);
      const port = harness.port('smtp.implicitTls');
      const closing = harness.app.close();
      expect(await client.readLine(3_000)).toMatch(/^421 4\.3\.2 /);
      await client.closed;
      await closing;
      await expect(connectLineClient({ host: '127.0.0.1', port, timeoutMs: 1_000 })).rejects.toThrow();
    } finally {
      await harness.stop();
    }
  });
});
