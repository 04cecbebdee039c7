/**
 * Pipelined DAV requests used to be unbounded: every request a client pipelined was served at
 * once (20 000 on a few connections grew RSS 81 → 239 MiB). Pins: a connection that pipelines far
 * more than dav.limits.maxQueuedRequestsPerConnection gets at most that many served, one 503 with
 * `Connection: close` behind them, and is closed; the upstream sees no more than the cap; the
 * refusal is logged once; a keep-alive connection is told `Connection: close` on its
 * dav.limits.maxRequestsPerConnection-th request.
 */
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPLY_TEXT } from '../../src/dav/replies.js';
import { startCountingRig, type CountingRig } from './support/counting-upstream.js';

const QUEUED = 8;
const PER_CONNECTION = 5;
let rig: CountingRig;
let perConnectionRig: CountingRig;

beforeAll(async () => {
  rig = await startCountingRig({ limits: { maxQueuedRequestsPerConnection: QUEUED } });
  perConnectionRig = await startCountingRig({ limits: { maxRequestsPerConnection: PER_CONNECTION } });
});

afterAll(async () => {
  await rig?.stop();
  await perConnectionRig?.stop();
});

/** Writes `requests` in one go and collects everything until the server closes (or 10 s). */
function pipeline(requests: string): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port: rig.postern.port('dav'), ca: rig.postern.caPem, servername: 'localhost' });
    let text = '';
    const timer = setTimeout(() => (socket.destroy(), resolve({ text, closed: false })), 10_000);
    socket.on('error', () => undefined);
    socket.on('secureConnect', () => socket.write(requests));
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    socket.on('close', () => (clearTimeout(timer), resolve({ text, closed: true })));
  });
}

const get = (n: number, extra = '') => `GET /alice/item-${n} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${rig.auth}${extra}\r\n\r\n`;

describe('a flood of pipelined requests on one connection', () => {
  it('serves at most the queue cap, answers the next 503 with Connection: close, and closes', async () => {
    const before = rig.requests();
    const flood = Array.from({ length: 2000 }, (_, i) => get(i)).join('');
    const { text, closed } = await pipeline(flood);
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
    expect(closed).toBe(true);
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(QUEUED);
    expect(statuses.at(-1)).toBe(503);
    expect(statuses.filter((s) => s === 503)).toHaveLength(1);
    expect(text).toContain(REPLY_TEXT.tooManyRequests);
    expect(text.slice(text.lastIndexOf('HTTP/1.1 503'))).toMatch(/connection: close/i);
    expect(rig.requests() - before).toBeLessThanOrEqual(QUEUED);
    expect(rig.postern.logs.events('dav.pipeline_limit')).toHaveLength(1);
  });

  it('lets a client pipeline up to the cap', async () => {
    const { text } = await pipeline(Array.from({ length: QUEUED - 1 }, (_, i) => get(i)).join('') + get(99, '\r\nConnection: close'));
    expect([...text.matchAll(/HTTP\/1\.1 200/g)]).toHaveLength(QUEUED);
  });
});

describe('requests per connection', () => {
  it('closes a keep-alive connection after dav.limits.maxRequestsPerConnection requests', async () => {
    const { postern, auth } = perConnectionRig;
    const socket = tls.connect({ host: '127.0.0.1', port: postern.port('dav'), ca: postern.caPem, servername: 'localhost' });
    socket.on('error', () => undefined);
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
    const answers: string[] = [];
    for (let i = 0; i < PER_CONNECTION; i++) {
      const from = text.length;
      socket.write(`GET /alice/item-${i} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${auth}\r\n\r\n`);
      for (let t = 0; t < 200 && !/\r\n\r\nok/.test(text.slice(from)); t++) await new Promise((r) => setTimeout(r, 10));
      answers.push(text.slice(from));
    }
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('connection not closed after its last allowed request')), 5000))]);
    expect(answers.slice(0, -1).every((a) => a.startsWith('HTTP/1.1 200') && !/connection: close/i.test(a))).toBe(true);
    expect(answers.at(-1)).toMatch(/^HTTP\/1\.1 200[\s\S]*connection: close/i);
  });
});
