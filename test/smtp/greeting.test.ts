// The SMTP greeting (issue 18, item 5; src/smtp/server.ts). Invariants pinned here:
// - the 220 is sent without waiting for any timer: with setTimeout frozen it still arrives, on the
//   plaintext (STARTTLS) and the implicit-TLS listener alike (smtp-server alone waits 100 ms);
// - a client whose first bytes travel with its connection (plaintext: written before the TCP
//   handshake completed; implicit TLS: written the moment its handshake did) is still an early
//   talker and gets 421, and never a 220;
// - every reply postern sends carries exactly one enhanced status code once ENHANCEDSTATUSCODES is
//   offered, smtp-server's own and postern's alike.
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectLineClient, type LineClient } from '../helpers/line-client.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { startFakeUpstream, type FakeUpstream } from './fake-upstream.js';
import { assertNoInternalErrors, say } from './fixture.js';

const realSetTimeout = globalThis.setTimeout;
let fake: FakeUpstream;
let postern: PosternHarness;

const EHLO = '250-fake.example\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE 1000000000';

beforeAll(async () => {
  fake = await startFakeUpstream({ onCommand: (command) => (/^EHLO /i.test(command) ? EHLO : undefined) });
  postern = await startPostern({
    config: { smtp: { implicitTls: { port: 0 }, starttls: { port: 0 }, upstream: { host: fake.host, port: fake.port, security: 'plain' } } },
  });
});
afterAll(async () => {
  await postern?.stop();
  await fake?.stop();
  assertNoInternalErrors(postern);
});
afterEach(() => {
  vi.useRealTimers();
});

function withRealDeadline<T>(work: Promise<T>, what: string, ms = 3_000): Promise<T> {
  return Promise.race([work, new Promise<never>((_, reject) => realSetTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms))]);
}

/** Every line of one raw connection until the server closes it. */
function linesOf(socket: net.Socket): Promise<string[]> {
  return new Promise((resolve) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(text.split('\r\n').filter(Boolean)));
  });
}

describe('greeting at once', () => {
  it('sends the 220 with timers frozen, on both listeners', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const plain = await withRealDeadline(connectLineClient({ host: '127.0.0.1', port: postern.port('smtp.starttls') }), 'connection');
    const secure = await withRealDeadline(
      connectLineClient({ host: '127.0.0.1', port: postern.port('smtp.implicitTls'), tls: { ca: postern.caPem, servername: 'localhost' } }),
      'TLS connection',
    );
    try {
      expect(await withRealDeadline(plain.readLine(), 'greeting on the STARTTLS listener')).toMatch(/^220 /);
      expect(await withRealDeadline(secure.readLine(), 'greeting on the implicit-TLS listener')).toMatch(/^220 /);
    } finally {
      vi.useRealTimers();
      plain.close();
      secure.close();
    }
  });
});

describe('early talkers', () => {
  it('refuses a plaintext client that wrote before its connection was even set up', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: postern.port('smtp.starttls') });
    socket.write('EHLO too.early\r\n'); // queued by Node, sent the instant the handshake completes
    const lines = await withRealDeadline(linesOf(socket), 'close');
    expect(lines[0]).toMatch(/^421 .*talk too soon/i);
    expect(lines.some((l) => l.startsWith('220'))).toBe(false);
  });

  it('refuses an implicit-TLS client that writes the moment its handshake completes', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port: postern.port('smtp.implicitTls'), ca: postern.caPem, servername: 'localhost' });
    socket.once('secureConnect', () => socket.write('EHLO too.early\r\n'));
    const lines = await withRealDeadline(linesOf(socket), 'close');
    expect(lines[0]).toMatch(/^421 .*talk too soon/i);
  });
});

describe('enhanced status codes', () => {
  let client: LineClient;
  afterEach(() => client?.close());

  it('offers ENHANCEDSTATUSCODES as the upstream does, and then every reply carries exactly one code', async () => {
    // The extensions are learnt by a probe in the background at start-up; it ends with QUIT.
    while (!fake.commands.includes('QUIT')) await new Promise((r) => setTimeout(r, 20));
    client = await connectLineClient({ host: '127.0.0.1', port: postern.port('smtp.implicitTls'), tls: { ca: postern.caPem, servername: 'localhost' } });
    expect(await client.readLine()).toMatch(/^220 /);
    client.write('EHLO client.example\r\n');
    const ehlo = await client.readUntil((l) => l.startsWith('250 '));
    expect(ehlo).toContain('250-ENHANCEDSTATUSCODES');
    // smtp-server's own reply (no AUTH yet) and postern's own (a refused login).
    const mail = await say(client, 'MAIL FROM:<a@example.org>');
    const auth = await say(client, `AUTH PLAIN ${Buffer.from('\0nobody\0wrong-password-x').toString('base64')}`);
    const unknown = await say(client, 'XYZZY');
    for (const reply of [mail, auth, unknown]) expect(reply).toMatch(/^\d{3} [245]\.\d{1,3}\.\d{1,3} (?![245]\.\d)/);
  });
});
