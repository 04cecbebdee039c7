/**
 * Slow clients on the DAV listener, over raw TLS so that bytes can be trickled. The listener has
 * no total request time (requestTimeout 0, for long authenticated uploads), so these deadlines are
 * all that stop a client from holding a connection by sending a byte now and then.
 *
 * Pins: when postern answers (401) before a small body has arrived, a client that trickles the rest
 * is cut BODY_AFTER_ANSWER_MS after the answer, while one that sends it promptly keeps its
 * keep-alive connection; a connection that never authenticates is told `Connection: close` once
 * it has been answered for UNAUTHENTICATED_CONNECTION_MS; an authenticated XML body that stalls
 * for the upstream timeout gets 408 and a closed connection, and never reaches the upstream.
 */
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BODY_AFTER_ANSWER_MS, markAuthenticated, UNAUTHENTICATED_CONNECTION_MS, unauthenticatedTooLong } from '../../src/dav/slow-clients.js';
import type { PosternHarness } from '../helpers/postern.js';
import { startCountingRig, type CountingRig } from './support/counting-upstream.js';

const UPSTREAM_TIMEOUT_MS = 1500;
let rig: CountingRig;
let postern: PosternHarness;
let auth: string;

beforeAll(async () => {
  rig = await startCountingRig({ upstreamTimeoutMs: UPSTREAM_TIMEOUT_MS });
  ({ postern, auth } = rig);
});

afterAll(async () => {
  await rig?.stop();
});

interface RawConnection {
  socket: tls.TLSSocket;
  /** Everything received so far. */
  received(): string;
  /** Resolves when `text` has been received (after `from`), rejects on close or after `ms`. */
  waitFor(text: string, ms: number, from?: number): Promise<void>;
  closedAt: Promise<number>;
}

async function connect(): Promise<RawConnection> {
  const socket = tls.connect({ host: '127.0.0.1', port: postern.port('dav'), ca: postern.caPem, servername: 'localhost' });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  let text = '';
  const listeners = new Set<() => void>();
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
    for (const l of listeners) l();
  });
  const closedAt = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now())));
  const waitFor = (needle: string, ms: number, from = 0) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!text.includes(needle, from)) return;
        cleanup();
        resolve();
      };
      const timer = setTimeout(() => (cleanup(), reject(new Error(`no ${JSON.stringify(needle)} within ${ms} ms; got ${JSON.stringify(text)}`))), ms);
      const onClose = () => (cleanup(), reject(new Error(`closed before ${JSON.stringify(needle)}; got ${JSON.stringify(text)}`)));
      const cleanup = () => {
        clearTimeout(timer);
        listeners.delete(check);
        socket.off('close', onClose);
      };
      listeners.add(check);
      socket.once('close', onClose);
      check();
    });
  return { socket, received: () => text, waitFor, closedAt };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const BODY = '<propfind xmlns="DAV:"><allprop/></propfind>';

describe('a body still arriving after postern answered', () => {
  it('cuts a client that trickles it, and keeps one that sends it promptly', { timeout: BODY_AFTER_ANSWER_MS + 15_000 }, async () => {
    const head = `PROPFIND /alice/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/xml\r\nContent-Length: ${BODY.length}\r\n\r\n`;
    const trickler = await connect();
    const prompt = await connect();
    trickler.socket.write(head);
    prompt.socket.write(head);
    await Promise.all([trickler.waitFor('HTTP/1.1 401', 5000), prompt.waitFor('HTTP/1.1 401', 5000)]);
    const answeredAt = performance.now();
    expect(trickler.received()).not.toMatch(/connection: close/i);
    prompt.socket.write(BODY);

    // One byte every second: never idle long enough for any idle timeout to fire.
    let sent = 0;
    const drip = setInterval(() => {
      if (!trickler.socket.destroyed && sent < BODY.length - 1) trickler.socket.write(BODY[sent++]!);
    }, 1000);
    try {
      const closedAt = await Promise.race([trickler.closedAt, sleep(BODY_AFTER_ANSWER_MS + 5000).then(() => Infinity)]);
      expect(closedAt).not.toBe(Infinity); // cut, although bytes kept coming
      expect(closedAt - answeredAt).toBeGreaterThanOrEqual(BODY_AFTER_ANSWER_MS - 500); // and not before its deadline
    } finally {
      clearInterval(drip);
    }

    // The prompt client's connection outlived the deadline and still serves its retry.
    expect(prompt.socket.destroyed).toBe(false);
    const before = prompt.received().length;
    prompt.socket.write(`PROPFIND /alice/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nDepth: 0\r\n\r\n`);
    await prompt.waitFor('HTTP/1.1 200', 5000, before);
    prompt.socket.destroy();
  });
});

describe('a connection that never authenticates', () => {
  it('is closed with the first answer given UNAUTHENTICATED_CONNECTION_MS after its first', () => {
    const socket = {};
    const t0 = 1_000_000;
    expect(unauthenticatedTooLong(socket, t0)).toBe(false);
    expect(unauthenticatedTooLong(socket, t0 + UNAUTHENTICATED_CONNECTION_MS - 1)).toBe(false);
    expect(unauthenticatedTooLong(socket, t0 + UNAUTHENTICATED_CONNECTION_MS)).toBe(true);
    const authenticated = {};
    expect(unauthenticatedTooLong(authenticated, t0)).toBe(false);
    markAuthenticated(authenticated);
    expect(unauthenticatedTooLong(authenticated, t0 + 10 * UNAUTHENTICATED_CONNECTION_MS)).toBe(false);
  });
});

describe('an authenticated XML body that stalls', () => {
  it('gets 408 and a closed connection after the upstream timeout, without reaching the upstream', async () => {
    const before = rig.requests();
    const c = await connect();
    c.socket.write(`REPORT /alice/cal/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\nContent-Type: application/xml\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY.slice(0, 10)}`);
    const started = performance.now();
    await c.waitFor('HTTP/1.1 408', UPSTREAM_TIMEOUT_MS + 3000);
    expect(performance.now() - started).toBeGreaterThanOrEqual(UPSTREAM_TIMEOUT_MS - 100);
    expect(c.received()).toMatch(/connection: close/i);
    const closedAt = await Promise.race([c.closedAt, sleep(2000).then(() => Infinity)]);
    expect(closedAt).not.toBe(Infinity);
    expect(rig.requests()).toBe(before);
  });
});
