/**
 * Upstream faults behind the DAV proxy, against a scripted upstream (test/dav/support/scripted-upstream.ts).
 * Pins:
 *  - an upstream silent past dav.upstreamTimeoutMs → 504 with the fixed text, logged as UPSTREAM_TIMEOUT;
 *  - an upstream down → 502, logged as UPSTREAM_UNAVAILABLE each time, and postern stays up;
 *  - an upstream speaking garbage → 502 with the fixed text;
 *  - an upstream hanging up mid-body → the client's connection is cut (never a truncated body passed
 *    off as complete), and the next request is served;
 *  - a client leaving while waiting for the answer abandons the upstream request at once.
 */
import https from 'node:https';
import { describe, expect, it } from 'vitest';
import { REPLY_TEXT } from '../../src/dav/replies.js';
import { freePort } from '../helpers/free-port.js';
import { startPostern } from '../helpers/postern.js';
import { basic, davClient } from './support/client.js';
import { useScriptedUpstream } from './support/scripted-upstream.js';

const rig = useScriptedUpstream();

describe('upstream faults', () => {
  it('answers 504 when the upstream does not answer in time', async () => {
    rig.handler = () => undefined; // never answers
    const started = performance.now();
    const res = await rig.client.request({ method: 'PROPFIND', path: '/alice/', headers: { authorization: rig.auth } });
    expect(res.status).toBe(504);
    expect(res.text).toBe(`${REPLY_TEXT.gatewayTimeout}\n`);
    expect(performance.now() - started).toBeGreaterThanOrEqual(1400);
    expect(rig.postern.logs.events('upstream.fault').some((e) => e.code === 'UPSTREAM_TIMEOUT')).toBe(true);
  });

  it('cuts the client connection when the upstream hangs up mid-body, and keeps serving', async () => {
    rig.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/calendar', 'content-length': '100000' });
      res.write('BEGIN:VCALENDAR\r\n');
      setTimeout(() => res.socket?.destroy(), 50);
    };
    const outcome = await rig.client.request({ method: 'GET', path: '/alice/work/e.ics', headers: { authorization: rig.auth } }).then(
      () => 'completed',
      (err: NodeJS.ErrnoException) => err.code,
    );
    expect(outcome).toMatch(/ECONNRESET|ERR_STREAM_PREMATURE_CLOSE|aborted/i);
    rig.handler = rig.recordAnd((_req, res) => res.end('fine'));
    expect((await rig.client.request({ method: 'GET', path: '/alice/x', headers: { authorization: rig.auth } })).text).toBe('fine');
  });

  it('abandons the upstream request when the client leaves while waiting for the answer', async () => {
    let upstreamClosed!: () => void;
    const closed = new Promise<void>((resolve) => (upstreamClosed = resolve));
    rig.handler = (req) => req.socket.once('close', () => upstreamClosed()); // never answers
    const req = https.request({ host: '127.0.0.1', port: rig.postern.port('dav'), method: 'PROPFIND', path: '/alice/', agent: false, ca: rig.postern.caPem, servername: 'localhost', headers: { authorization: rig.auth } });
    req.on('error', () => undefined);
    req.end();
    await new Promise((resolve) => setTimeout(resolve, 150));
    const left = performance.now();
    req.destroy();
    await closed;
    // Well before the 1.5 s upstream timeout: the client leaving is what ended it.
    expect(performance.now() - left).toBeLessThan(1000);
  });

  it('answers 502 when the upstream speaks garbage', async () => {
    rig.handler = (req) => req.socket.end('SSH-2.0-OpenSSH_9.2\r\n\r\n');
    const res = await rig.client.request({ method: 'GET', path: '/alice/x', headers: { authorization: rig.auth } });
    expect(res.status).toBe(502);
    expect(res.text).toBe(`${REPLY_TEXT.badGateway}\n`);
  });

  it('answers 502 when the upstream is down, and stays up', async () => {
    const closedPort = await freePort();
    const down = await startPostern({ config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: `http://127.0.0.1:${closedPort}/` } } });
    const downClient = davClient(down.port('dav'), down.caPem);
    try {
      await down.addUser('alice', 'alice primary passphrase', { mode: 'password', secret: 'upstream-secret-for-alice' });
      const pw = basic('alice', (await down.newPassword('alice', 'alice primary passphrase')).password);
      for (let i = 0; i < 2; i++) {
        const res = await downClient.request({ method: 'PROPFIND', path: '/alice/', headers: { authorization: pw } });
        expect(res.status).toBe(502);
        expect(res.text).toBe(`${REPLY_TEXT.badGateway}\n`);
      }
      expect(down.logs.events('upstream.fault').filter((e) => e.code === 'UPSTREAM_UNAVAILABLE')).toHaveLength(2);
    } finally {
      downClient.close();
      await down.stop();
    }
  });
});
