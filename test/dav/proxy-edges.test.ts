/**
 * Proxy behaviour a real Radicale cannot be made to show, against a scriptable in-process upstream
 * on its own origin (http://127.0.0.1:<port>) behind a real postern.
 *
 * Pins: hop-by-hop headers dropped both ways, end-to-end ones (ETag, If-*, Depth…) unchanged,
 * client-sent X-Forwarded-* never believed, X-Forwarded-For only toward a trusted upstream;
 * absolute hrefs, Location and Content-Location naming the upstream (or an alias) come back with
 * postern's public origin — also from a gzip-compressed body; hrefs in REPORT bodies and the
 * Destination of MOVE/COPY go the other way; bodies stream both ways (the upstream sees the first
 * bytes of an upload before the client has sent the rest, and the client the first bytes of a
 * download before the upstream has finished); upstream silent → 504, down or garbled → 502,
 * hanging up mid-body → the client's connection is cut; postern stays up through all of it.
 */
import { createHash, randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MAX_XML_REQUEST_BYTES } from '../../src/dav/forward.js';
import { REPLY_TEXT } from '../../src/dav/replies.js';
import { freePort } from '../helpers/free-port.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { basic, davClient, type DavTestClient } from './support/client.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

let upstream: http.Server;
let upstreamOrigin: string;
let handler: Handler;
let seen: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer }>;
let postern: PosternHarness;
let client: DavTestClient;
let auth: string;
const ALIAS = 'https://p07-caldav.example.net';

beforeAll(async () => {
  upstream = http.createServer((req, res) => handler(req, res));
  upstream.keepAliveTimeout = 200;
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamOrigin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  postern = await startPostern({
    config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: `${upstreamOrigin}/`, carddavUpstream: `${upstreamOrigin}/`, upstreamAliases: [ALIAS], upstreamTimeoutMs: 1500 } },
    secrets: ['upstream-secret-for-alice'],
  });
  postern.addUser('alice', 'alice primary passphrase', { mode: 'password', secret: 'upstream-secret-for-alice' });
  auth = basic('alice', postern.newPassword('alice', 'alice primary passphrase').password);
  client = davClient(postern.port('dav'), postern.caPem);
});

afterAll(async () => {
  client?.close();
  await postern?.stop();
  upstream?.closeAllConnections();
  await new Promise((resolve) => upstream?.close(resolve));
});

beforeEach(() => {
  seen = [];
  handler = recordAnd((_req, res) => res.end('ok'));
});

/** Records each request (fully read) and then runs `next`. */
function recordAnd(next: Handler): Handler {
  return (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) });
      next(req, res);
    });
  };
}

/** The raw client connects to 127.0.0.1, so that is the Host postern derives its public origin from. */
const publicOrigin = () => `https://127.0.0.1:${postern.port('dav')}`;

describe('headers', () => {
  it('drops hop-by-hop headers both ways and passes end-to-end ones unchanged', async () => {
    handler = recordAnd((_req, res) => {
      res.writeHead(207, {
        connection: 'keep-alive, x-upstream-hop', 'x-upstream-hop': 'secret-ish', 'keep-alive': 'timeout=5',
        'proxy-authenticate': 'Basic realm="up"', etag: '"v1"', dav: '1, 2, calendar-access', 'content-type': 'text/plain',
      });
      res.end('body');
    });
    const res = await client.request({
      method: 'PROPFIND', path: '/alice/',
      headers: {
        authorization: auth, depth: '1', 'if-none-match': '"v0"', 'if-match': '"v1"', prefer: 'return=minimal', brief: 't',
        connection: 'x-client-hop', 'x-client-hop': '1', te: 'trailers', 'proxy-authorization': 'Basic eHg6eXk=', upgrade: 'h2c',
        'x-forwarded-for': '203.0.113.9', 'x-forwarded-host': 'evil.example', forwarded: 'for=203.0.113.9', 'x-real-ip': '203.0.113.9',
      },
    });
    expect(res.status).toBe(207);
    const sent = seen[0]!.headers;
    for (const name of ['x-client-hop', 'te', 'proxy-authorization', 'upgrade', 'x-forwarded-for', 'x-forwarded-host', 'forwarded', 'x-real-ip', 'expect']) {
      expect(sent[name], name).toBeUndefined();
    }
    expect(sent).toMatchObject({ depth: '1', 'if-none-match': '"v0"', 'if-match': '"v1"', prefer: 'return=minimal', brief: 't', 'x-forwarded-proto': 'https' });
    expect(sent.authorization).toBe(`Basic ${Buffer.from('alice:upstream-secret-for-alice').toString('base64')}`);
    expect(sent.host).toBe(upstreamOrigin.slice('http://'.length));
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
        host: '127.0.0.1', port: postern.port('dav'), method: 'PUT', path: '/alice/cal/e.ics', agent: client.agent, servername: 'localhost',
        headers: { authorization: auth, expect: '100-continue', 'content-type': 'text/calendar', 'content-length': String(body.length) },
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
    expect(seen[0]!.body.toString()).toBe(body);
  });
});

describe('methods', () => {
  it('relays every DAV method with its body and headers', async () => {
    handler = recordAnd((req, res) => {
      res.writeHead(req.method === 'LOCK' ? 200 : 207, { 'content-type': 'text/plain', 'lock-token': '<urn:uuid:1>' });
      res.end(req.method === 'HEAD' ? undefined : `${req.method} done`);
    });
    const methods = ['OPTIONS', 'GET', 'HEAD', 'PUT', 'DELETE', 'PROPFIND', 'PROPPATCH', 'REPORT', 'MKCOL', 'MKCALENDAR', 'MOVE', 'COPY', 'LOCK', 'UNLOCK', 'POST', 'ACL'];
    for (const method of methods) {
      const body = ['PUT', 'PROPFIND', 'PROPPATCH', 'REPORT', 'LOCK', 'POST'].includes(method) ? `<x:body xmlns:x="DAV:">${method}</x:body>` : undefined;
      const headers: Record<string, string> = { authorization: auth, 'lock-token': '<urn:uuid:1>', if: '(<urn:uuid:1>)', timeout: 'Second-60' };
      if (body) headers['content-type'] = 'application/xml';
      if (method === 'MOVE' || method === 'COPY') headers.destination = '/alice/other/';
      const res = await client.request({ method, path: '/alice/work/', headers, body });
      expect(res.status, method).toBe(method === 'LOCK' ? 200 : 207);
      expect(res.headers['lock-token'], method).toBe('<urn:uuid:1>');
      expect(res.text, method).toBe(method === 'HEAD' ? '' : `${method} done`);
      const sent = seen.at(-1)!;
      expect(sent.method).toBe(method);
      expect(sent.body.toString()).toBe(body ?? '');
      expect(sent.headers).toMatchObject({ 'lock-token': '<urn:uuid:1>', if: '(<urn:uuid:1>)', timeout: 'Second-60' });
    }
    expect(seen).toHaveLength(methods.length);
  });
});

describe('X-Forwarded-For toward a trusted upstream', () => {
  it('sends the client address only when dav.trusted is on', async () => {
    const trusted = await startPostern({ config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: `${upstreamOrigin}/`, trusted: true } }, secrets: ['upstream-secret-for-alice'] });
    const trustedClient = davClient(trusted.port('dav'), trusted.caPem);
    try {
      trusted.addUser('alice', 'alice primary passphrase', { mode: 'password', secret: 'upstream-secret-for-alice' });
      const pw = trusted.newPassword('alice', 'alice primary passphrase').password;
      const res = await trustedClient.request({ method: 'GET', path: '/alice/x', headers: { authorization: basic('alice', pw), 'x-forwarded-for': '203.0.113.9' } });
      expect(res.status).toBe(200);
      expect(seen[0]!.headers['x-forwarded-for']).toBe('127.0.0.1');
    } finally {
      trustedClient.close();
      await trusted.stop();
    }
  });
});

describe('origin rewriting', () => {
  const multistatus = (origin: string) =>
    `<?xml version="1.0"?><d:multistatus xmlns:d="DAV:"><d:response><d:href>${origin}/alice/work/</d:href>` +
    `<d:propstat><d:prop><d:displayname>${origin}/kept-as-text</d:displayname><d:owner><d:href>${ALIAS}/123/principal/</d:href></d:owner></d:prop>` +
    `<d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response></d:multistatus>`;

  it('rewrites hrefs of a gzip multistatus to the Host the client used, and sends it decoded', async () => {
    handler = recordAnd((_req, res) => {
      const body = gzipSync(multistatus(upstreamOrigin));
      res.writeHead(207, { 'content-type': 'application/xml; charset=utf-8', 'content-encoding': 'gzip', 'content-length': String(body.length) });
      res.end(body);
    });
    const res = await client.request({ method: 'PROPFIND', path: '/alice/', headers: { authorization: auth, depth: '1', 'accept-encoding': 'gzip', host: 'dav.example.org:8443' } });
    expect(res.status).toBe(207);
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.text).toBe(
      multistatus(upstreamOrigin)
        .replace(`<d:href>${upstreamOrigin}/alice/work/`, '<d:href>https://dav.example.org:8443/alice/work/')
        .replace(`<d:href>${ALIAS}/123/`, '<d:href>https://dav.example.org:8443/123/'),
    );
  });

  it('rewrites Location and Content-Location, leaving trailing slashes as the upstream has them', async () => {
    handler = recordAnd((_req, res) => {
      res.writeHead(301, { location: `${upstreamOrigin}/alice/moved`, 'content-location': `${upstreamOrigin}/alice/x/`, 'content-length': '0' });
      res.end();
    });
    const res = await client.request({ method: 'GET', path: '/alice/old', headers: { authorization: auth } });
    expect(res.status).toBe(301);
    expect(res.headers.location).toBe(`${publicOrigin()}/alice/moved`);
    expect(res.headers['content-location']).toBe(`${publicOrigin()}/alice/x/`);
  });

  it('rewrites public hrefs in a REPORT body to the upstream origin, with an exact Content-Length', async () => {
    const body = `<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/></d:prop><d:href>${publicOrigin()}/alice/work/a.ics</d:href><d:href>/alice/work/b.ics</d:href></c:calendar-multiget>`;
    const res = await client.request({ method: 'REPORT', path: '/alice/work/', headers: { authorization: auth, depth: '1', 'content-type': 'application/xml' }, body });
    expect(res.status).toBe(200);
    const forwarded = seen[0]!;
    expect(forwarded.body.toString()).toBe(body.replace(publicOrigin(), upstreamOrigin));
    expect(forwarded.headers['content-length']).toBe(String(forwarded.body.length));
  });

  it('rewrites the Destination of MOVE and COPY to the upstream, and refuses one on another server', async () => {
    const move = await client.request({ method: 'MOVE', path: '/alice/work/a.ics', headers: { authorization: auth, destination: `${publicOrigin()}/alice/home/a.ics`, overwrite: 'F' } });
    expect(move.status).toBe(200);
    expect(seen[0]!.headers).toMatchObject({ destination: `${upstreamOrigin}/alice/home/a.ics`, overwrite: 'F' });
    const copy = await client.request({ method: 'COPY', path: '/alice/work/a.ics', headers: { authorization: auth, destination: '/alice/home/b.ics' } });
    expect(copy.status).toBe(200);
    expect(seen[1]!.headers.destination).toBe(`${upstreamOrigin}/alice/home/b.ics`);
    const away = await client.request({ method: 'MOVE', path: '/alice/work/a.ics', headers: { authorization: auth, destination: 'https://elsewhere.example/alice/a.ics' } });
    expect(away.status).toBe(502);
    expect(away.text).toBe(`${REPLY_TEXT.destinationElsewhere}\n`);
    expect(seen).toHaveLength(2);
  });
});

describe('streaming', () => {
  it('streams a large upload: the upstream has the first bytes before the client sent the rest', async () => {
    const first = randomBytes(256 * 1024);
    const rest = randomBytes(24 * 1024 * 1024);
    let firstArrived!: () => void;
    const arrived = new Promise<void>((resolve) => (firstArrived = resolve));
    const received = createHash('sha256');
    let count = 0;
    handler = (req, res) => {
      req.on('data', (c: Buffer) => {
        received.update(c);
        count += c.length;
        if (count >= first.length) firstArrived();
      });
      req.on('end', () => res.end(String(count)));
    };
    const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = https.request({
        host: '127.0.0.1', port: postern.port('dav'), method: 'PUT', path: '/alice/work/big.ics', agent: client.agent, servername: 'localhost',
        headers: { authorization: auth, 'content-type': 'text/calendar', 'content-length': String(first.length + rest.length) },
      }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
      });
      req.on('error', reject);
      req.write(first);
      void arrived.then(() => req.end(rest));
    });
    const { status, text } = await response;
    expect(status).toBe(200);
    expect(Number(text)).toBe(first.length + rest.length);
    expect(received.digest('hex')).toBe(createHash('sha256').update(first).update(rest).digest('hex'));
  });

  it('streams a large download: the client has the first bytes before the upstream wrote the rest', async () => {
    const first = randomBytes(256 * 1024);
    const rest = randomBytes(24 * 1024 * 1024);
    let clientGotFirst!: () => void;
    const gotFirst = new Promise<void>((resolve) => (clientGotFirst = resolve));
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/calendar', 'content-length': String(first.length + rest.length) });
      res.write(first);
      void gotFirst.then(() => res.end(rest));
    };
    const digest = await new Promise<string>((resolve, reject) => {
      const hash = createHash('sha256');
      let count = 0;
      https.get({ host: '127.0.0.1', port: postern.port('dav'), path: '/alice/work/big.ics', agent: client.agent, servername: 'localhost', headers: { authorization: auth } }, (res) => {
        res.on('data', (c: Buffer) => {
          hash.update(c);
          count += c.length;
          if (count >= first.length) clientGotFirst();
        });
        res.on('end', () => resolve(hash.digest('hex')));
        res.on('error', reject);
      }).on('error', reject);
    });
    expect(digest).toBe(createHash('sha256').update(first).update(rest).digest('hex'));
  });
});

describe('revocation mid-download', () => {
  it('cuts a download in progress within 1 s of the password being revoked', async () => {
    const { password, publicId } = postern.newPassword('alice', 'alice primary passphrase', { label: 'downloader' });
    let revokedAt = 0;
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/calendar', 'content-length': String(10 * 1024 * 1024) });
      res.write(Buffer.alloc(64 * 1024, 'a')); // and then nothing more for now
    };
    const ended = new Promise<{ at: number; complete: boolean }>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: postern.port('dav'), path: '/alice/work/slow.ics', agent: false, ca: postern.caPem, servername: 'localhost', headers: { authorization: basic('alice', password) } }, (res) => {
        res.once('data', () => {
          revokedAt = performance.now();
          postern.accounts.revokePassword('alice', publicId);
        });
        res.on('data', () => undefined);
        res.on('close', () => resolve({ at: performance.now(), complete: res.complete }));
      }).on('error', () => undefined);
      setTimeout(() => reject(new Error('download not cut within 3 s')), 3000);
    });
    const { at, complete } = await ended;
    expect(complete).toBe(false);
    expect(at - revokedAt).toBeLessThan(1000);
  });
});

describe('upstream faults', () => {
  it('answers 504 when the upstream does not answer in time', async () => {
    handler = () => undefined; // never answers
    const started = performance.now();
    const res = await client.request({ method: 'PROPFIND', path: '/alice/', headers: { authorization: auth } });
    expect(res.status).toBe(504);
    expect(res.text).toBe(`${REPLY_TEXT.gatewayTimeout}\n`);
    expect(performance.now() - started).toBeGreaterThanOrEqual(1400);
    expect(postern.logs.events('upstream.fault').some((e) => e.code === 'UPSTREAM_TIMEOUT')).toBe(true);
  });

  it('cuts the client connection when the upstream hangs up mid-body, and keeps serving', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/calendar', 'content-length': '100000' });
      res.write('BEGIN:VCALENDAR\r\n');
      setTimeout(() => res.socket?.destroy(), 50);
    };
    const outcome = await client.request({ method: 'GET', path: '/alice/work/e.ics', headers: { authorization: auth } }).then(
      () => 'completed',
      (err: NodeJS.ErrnoException) => err.code,
    );
    expect(outcome).toMatch(/ECONNRESET|ERR_STREAM_PREMATURE_CLOSE|aborted/i);
    handler = recordAnd((_req, res) => res.end('fine'));
    expect((await client.request({ method: 'GET', path: '/alice/x', headers: { authorization: auth } })).text).toBe('fine');
  });

  it('abandons the upstream request when the client leaves while waiting for the answer', async () => {
    let upstreamClosed!: () => void;
    const closed = new Promise<void>((resolve) => (upstreamClosed = resolve));
    handler = (req) => req.socket.once('close', () => upstreamClosed()); // never answers
    const req = https.request({ host: '127.0.0.1', port: postern.port('dav'), method: 'PROPFIND', path: '/alice/', agent: false, ca: postern.caPem, servername: 'localhost', headers: { authorization: auth } });
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
    handler = (req) => req.socket.end('SSH-2.0-OpenSSH_9.2\r\n\r\n');
    const res = await client.request({ method: 'GET', path: '/alice/x', headers: { authorization: auth } });
    expect(res.status).toBe(502);
    expect(res.text).toBe(`${REPLY_TEXT.badGateway}\n`);
  });

  it('answers 502 when the upstream is down, and stays up', async () => {
    const closedPort = await freePort();
    const down = await startPostern({ config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: `http://127.0.0.1:${closedPort}/` } } });
    const downClient = davClient(down.port('dav'), down.caPem);
    try {
      down.addUser('alice', 'alice primary passphrase', { mode: 'password', secret: 'upstream-secret-for-alice' });
      const pw = basic('alice', down.newPassword('alice', 'alice primary passphrase').password);
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

describe('shutdown', () => {
  it('lets a request in flight finish, closes idle connections and refuses new ones', async () => {
    const draining = await startPostern({ config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: `${upstreamOrigin}/` } }, secrets: ['upstream-secret-for-alice'] });
    const drainingClient = davClient(draining.port('dav'), draining.caPem);
    draining.addUser('alice', 'alice primary passphrase', { mode: 'password', secret: 'upstream-secret-for-alice' });
    const pw = basic('alice', draining.newPassword('alice', 'alice primary passphrase').password);
    try {
      const idle = await drainingClient.request({ method: 'GET', path: '/alice/a', headers: { authorization: pw } });
      expect(idle.status).toBe(200);
      const idleClosed = new Promise<void>((resolve) => idle.socket.once('close', () => resolve()));
      handler = recordAnd((_req, res) => setTimeout(() => res.end('finished late'), 400));
      const inFlight = new Promise<{ status: number; text: string }>((resolve, reject) => {
        https.get({ host: '127.0.0.1', port: draining.port('dav'), path: '/alice/slow', agent: false, ca: draining.caPem, servername: 'localhost', headers: { authorization: pw } }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, text }));
        }).on('error', reject);
      });
      while (seen.length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
      const closed = draining.app.close();
      await idleClosed;
      expect(await inFlight).toEqual({ status: 200, text: 'finished late' });
      await closed;
      await expect(drainingClient.request({ method: 'GET', path: '/alice/b', headers: { authorization: pw } })).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      drainingClient.close();
      await draining.stop();
    }
  });
});

describe('paths', () => {
  it('refuses dot segments and encoded slashes with 400 before authenticating', async () => {
    for (const path of ['/alice/../bob/', '/alice/%2e%2e/bob/', '/alice%2Fbob/']) {
      const res = await client.request({ method: 'PROPFIND', path, headers: { authorization: auth } });
      expect(res.status, path).toBe(400);
    }
    expect(seen).toHaveLength(0);
  });

  it('passes the query string and the exact path encoding upstream', async () => {
    await client.request({ method: 'GET', path: '/alice/work/%C3%A9v%C3%A9nement%201.ics?export', headers: { authorization: auth } });
    expect(seen[0]!.url).toBe('/alice/work/%C3%A9v%C3%A9nement%201.ics?export');
  });
});

describe('request bodies', () => {
  it('refuses an XML body over the cap with 413, declared or chunked, without forwarding it', async () => {
    const declared = await client.request({ method: 'REPORT', path: '/alice/work/', headers: { authorization: auth, 'content-type': 'application/xml', 'content-length': String(MAX_XML_REQUEST_BYTES + 1) } });
    expect(declared.status).toBe(413);
    expect(declared.headers.connection).toBe('close');
    const chunk = Buffer.alloc(256 * 1024, 'x');
    const chunks = Math.ceil(MAX_XML_REQUEST_BYTES / chunk.length) + 4;
    const chunked = await client.request({
      method: 'REPORT', path: '/alice/work/', headers: { authorization: auth, 'content-type': 'application/xml' },
      body: Readable.from((function* () { for (let i = 0; i < chunks; i++) yield chunk; })()),
    });
    expect(chunked.status).toBe(413);
    expect(chunked.text).toBe(`${REPLY_TEXT.tooLarge}\n`);
    expect(seen).toHaveLength(0);
  });

  it('survives a client that aborts an upload midway', async () => {
    let upstreamSawAbort!: () => void;
    const aborted = new Promise<void>((resolve) => (upstreamSawAbort = resolve));
    handler = (req, res) => {
      req.resume();
      req.on('aborted', () => upstreamSawAbort());
      req.on('end', () => res.end('complete?'));
    };
    const req = https.request({
      host: '127.0.0.1', port: postern.port('dav'), method: 'PUT', path: '/alice/work/partial.ics', agent: false, ca: postern.caPem, servername: 'localhost',
      headers: { authorization: auth, 'content-type': 'text/calendar', 'content-length': String(8 * 1024 * 1024) },
    });
    req.on('error', () => undefined);
    req.write(randomBytes(512 * 1024));
    await new Promise((resolve) => setTimeout(resolve, 100));
    req.destroy();
    await aborted;
    handler = recordAnd((_req, res) => res.end('still here'));
    expect((await client.request({ method: 'GET', path: '/alice/x', headers: { authorization: auth } })).text).toBe('still here');
    expect(postern.logs.events('dav.internal_error')).toEqual([]);
  });
});
