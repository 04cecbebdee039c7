/**
 * Headers through the DAV proxy, against a scripted upstream (test/dav/support/scripted-upstream.ts).
 * Pins:
 *  - hop-by-hop headers (Connection and what it names, Keep-Alive, TE, Upgrade, Proxy-*) are dropped
 *    both ways; end-to-end ones (ETag, DAV, Depth, If-*, Prefer, Brief) pass unchanged;
 *  - the upstream gets the stored credential as Basic auth and its own Host, never the client's;
 *  - client-sent X-Forwarded-*, Forwarded and X-Real-IP are never believed nor passed on;
 *    X-Forwarded-For carries the client address only toward an upstream marked `dav.trusted`;
 *  - Expect: 100-continue is answered only after authentication, then the body is relayed.
 */
import https from 'node:https';
import { describe, expect, it } from 'vitest';
import { startPostern } from '../helpers/postern.js';
import { basic, davClient } from './support/client.js';
import { useScriptedUpstream } from './support/scripted-upstream.js';

const rig = useScriptedUpstream();

describe('headers', () => {
  it('drops hop-by-hop headers both ways and passes end-to-end ones unchanged', async () => {
    rig.handler = rig.recordAnd((_req, res) => {
      res.writeHead(207, {
        connection: 'keep-alive, x-upstream-hop', 'x-upstream-hop': 'secret-ish', 'keep-alive': 'timeout=5',
        'proxy-authenticate': 'Basic realm="up"', etag: '"v1"', dav: '1, 2, calendar-access', 'content-type': 'text/plain',
      });
      res.end('body');
    });
    const res = await rig.client.request({
      method: 'PROPFIND', path: '/alice/',
      headers: {
        authorization: rig.auth, depth: '1', 'if-none-match': '"v0"', 'if-match': '"v1"', prefer: 'return=minimal', brief: 't',
        connection: 'x-client-hop', 'x-client-hop': '1', te: 'trailers', 'proxy-authorization': 'Basic eHg6eXk=', upgrade: 'h2c',
        'x-forwarded-for': '203.0.113.9', 'x-forwarded-host': 'evil.example', forwarded: 'for=203.0.113.9', 'x-real-ip': '203.0.113.9',
      },
    });
    expect(res.status).toBe(207);
    const sent = rig.seen[0]!.headers;
    for (const name of ['x-client-hop', 'te', 'proxy-authorization', 'upgrade', 'x-forwarded-for', 'x-forwarded-host', 'forwarded', 'x-real-ip', 'expect']) {
      expect(sent[name], name).toBeUndefined();
    }
    expect(sent).toMatchObject({ depth: '1', 'if-none-match': '"v0"', 'if-match': '"v1"', prefer: 'return=minimal', brief: 't', 'x-forwarded-proto': 'https' });
    expect(sent.authorization).toBe(`Basic ${Buffer.from('alice:upstream-secret-for-alice').toString('base64')}`);
    expect(sent.host).toBe(rig.upstreamOrigin.slice('http://'.length));
    for (const name of ['x-upstream-hop', 'proxy-authenticate']) expect(res.headers[name], name).toBeUndefined();
    // Keep-Alive, if any, is postern's own (its idle timeout), never the upstream's.
    expect(res.headers['keep-alive']).not.toBe('timeout=5');
    expect(res.headers).toMatchObject({ etag: '"v1"', dav: '1, 2, calendar-access' });
    expect(res.text).toBe('body');
  });

  it('answers Expect: 100-continue only after authentication, then relays the body', async () => {
    const body = 'BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n';
    const result = await new Promise<{ continued: boolean; status: number }>((resolve, reject) => {
      let continued = false;
      const req = https.request({
        host: '127.0.0.1', port: rig.postern.port('dav'), method: 'PUT', path: '/alice/cal/e.ics', agent: rig.client.agent, servername: 'localhost',
        headers: { authorization: rig.auth, expect: '100-continue', 'content-type': 'text/calendar', 'content-length': String(body.length) },
      }, (res) => {
        res.resume();
        res.on('end', () => resolve({ continued, status: res.statusCode! }));
      });
      req.on('continue', () => {
        continued = true;
        req.end(body);
      });
      req.on('error', reject);
    });
    expect(result).toEqual({ continued: true, status: 200 });
    expect(rig.seen[0]!.body.toString()).toBe(body);
  });
});

describe('X-Forwarded-For toward a trusted upstream', () => {
  it('sends the client address only when dav.trusted is on', async () => {
    const trusted = await startPostern({ config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: `${rig.upstreamOrigin}/`, trusted: true } }, secrets: ['upstream-secret-for-alice'] });
    const trustedClient = davClient(trusted.port('dav'), trusted.caPem);
    try {
      await trusted.addUser('alice', 'alice primary passphrase', { mode: 'password', secret: 'upstream-secret-for-alice' });
      const pw = (await trusted.newPassword('alice', 'alice primary passphrase')).password;
      const res = await trustedClient.request({ method: 'GET', path: '/alice/x', headers: { authorization: basic('alice', pw), 'x-forwarded-for': '203.0.113.9' } });
      expect(res.status).toBe(200);
      expect(rig.seen[0]!.headers['x-forwarded-for']).toBe('127.0.0.1');
    } finally {
      trustedClient.close();
      await trusted.stop();
    }
  });
});
