/**
 * Request lines through the DAV proxy, against a scripted upstream (test/dav/support/scripted-upstream.ts).
 * Pins:
 *  - every DAV method (RFC 4918, 4791, 3744 and plain HTTP) is relayed with its body and its
 *    end-to-end headers (Lock-Token, If, Timeout), and the upstream's answer comes back as sent;
 *  - dot segments and encoded slashes are refused with 400 before authentication, never forwarded;
 *  - the query string and the exact percent-encoding of the path reach the upstream unchanged.
 */
import { describe, expect, it } from 'vitest';
import { useScriptedUpstream } from './support/scripted-upstream.js';

const rig = useScriptedUpstream();

describe('methods', () => {
  it('relays every DAV method with its body and headers', async () => {
    rig.handler = rig.recordAnd((req, res) => {
      res.writeHead(req.method === 'LOCK' ? 200 : 207, { 'content-type': 'text/plain', 'lock-token': '<urn:uuid:1>' });
      res.end(req.method === 'HEAD' ? undefined : `${req.method} done`);
    });
    const methods = ['OPTIONS', 'GET', 'HEAD', 'PUT', 'DELETE', 'PROPFIND', 'PROPPATCH', 'REPORT', 'MKCOL', 'MKCALENDAR', 'MOVE', 'COPY', 'LOCK', 'UNLOCK', 'POST', 'ACL'];
    for (const method of methods) {
      const body = ['PUT', 'PROPFIND', 'PROPPATCH', 'REPORT', 'LOCK', 'POST'].includes(method) ? `<x:body xmlns:x="DAV:">${method}</x:body>` : undefined;
      const headers: Record<string, string> = { authorization: rig.auth, 'lock-token': '<urn:uuid:1>', if: '(<urn:uuid:1>)', timeout: 'Second-60' };
      if (body) headers['content-type'] = 'application/xml';
      if (method === 'MOVE' || method === 'COPY') headers.destination = '/alice/other/';
      const res = await rig.client.request({ method, path: '/alice/work/', headers, body });
      expect(res.status, method).toBe(method === 'LOCK' ? 200 : 207);
      expect(res.headers['lock-token'], method).toBe('<urn:uuid:1>');
      expect(res.text, method).toBe(method === 'HEAD' ? '' : `${method} done`);
      const sent = rig.seen.at(-1)!;
      expect(sent.method).toBe(method);
      expect(sent.body.toString()).toBe(body ?? '');
      expect(sent.headers).toMatchObject({ 'lock-token': '<urn:uuid:1>', if: '(<urn:uuid:1>)', timeout: 'Second-60' });
    }
    expect(rig.seen).toHaveLength(methods.length);
  });
});

describe('paths', () => {
  it('refuses dot segments and encoded slashes with 400 before authenticating', async () => {
    for (const path of ['/alice/../bob/', '/alice/%2e%2e/bob/', '/alice%2Fbob/']) {
      const res = await rig.client.request({ method: 'PROPFIND', path, headers: { authorization: rig.auth } });
      expect(res.status, path).toBe(400);
    }
    expect(rig.seen).toHaveLength(0);
  });

  it('passes the query string and the exact path encoding upstream', async () => {
    await rig.client.request({ method: 'GET', path: '/alice/work/%C3%A9v%C3%A9nement%201.ics?export', headers: { authorization: rig.auth } });
    expect(rig.seen[0]!.url).toBe('/alice/work/%C3%A9v%C3%A9nement%201.ics?export');
  });
});
