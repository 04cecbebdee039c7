// The SMTP greeting (issue 18, item 5; src/smtp/server.ts). Invariants pinned here:
// - the 220 is sent without waiting for any timer: with setTimeout frozen it still arrives, on the
//   plaintext (STARTTLS) and the implicit-TLS listener alike (smtp-server alone waits 100 ms);
// - a client whose first bytes travel with its connection (plaintext: written before the TCP
//   handshake completed; implicit TLS: written the moment its handshake did) is still an early
//   talker and gets 421, and never a 220;
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectLineClient } from '../helpers/line-client.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { startFakeUpstream, type FakeUpstream } from './fake-upstream.js';
import { assertNoInternalErrors } from './fixture.js';

const realSetTimeout = globalThis.setTimeout;
let fake: FakeUpstream;
let postern: PosternHarness;

beforeAll(async () => {
  fake = await startFakeUpstream();
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
