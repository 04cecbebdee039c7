// Autoconfig and Autodiscover as mail clients fetch them from the account page's listener
// (src/portal/routes/onboarding.ts), over real HTTPS. Invariants pinned here:
// - Thunderbird's two URLs answer for a configured domain, named by the `emailaddress` parameter
//   or by the `autoconfig.<domain>` host, with the listeners' real ports; other domains get 404;
// - Autodiscover answers a POSTed Outlook request without a page session or CSRF token, the same
//   for an address postern knows and one it does not (no mailbox enumeration), 404 for other
//   domains, Autodiscover's own error for a request that is not one, 413 for an oversized body;
// - nothing in either answer is a password, and the page's own forms still need their token.
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostern, type PosternHarness } from '../helpers/postern.js';

const PRIMARY = 'Alice-primary-passw0rd';
let postern: PosternHarness;

beforeAll(async () => {
  postern = await startPostern({
    config: {
      hostnames: ['localhost'],
      // The upstream is never reached here: these documents need no login.
      imap: { implicitTls: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: 9, connectTimeoutMs: 200 } },
      smtp: { implicitTls: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: 9, connectTimeoutMs: 200 } },
      portal: { listener: { host: '127.0.0.1', port: 0 } },
      onboarding: { domains: ['example.org'], displayName: 'Example Mail' },
    },
    secrets: [],
  });
  await postern.addUser('alice@example.org', PRIMARY, { mode: 'password', secret: 'alice-upstream-Secret' });
  await postern.newPassword('alice@example.org', PRIMARY);
}, 60_000);
afterAll(async () => {
  await postern?.stop();
});

function request(method: 'GET' | 'POST', path: string, options: { host?: string; body?: string; contentType?: string } = {}): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port: postern.port('portal'), method, path, ca: postern.caPem, servername: 'localhost',
      headers: { host: options.host ?? 'localhost', ...(options.body !== undefined ? { 'content-type': options.contentType ?? 'text/xml', 'content-length': Buffer.byteLength(options.body) } : {}) },
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

const OUTLOOK = (address: string) => `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>${address}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>`;

describe('Thunderbird autoconfig', () => {
  it('answers at the well-known URL for an address of a configured domain, with the real ports and no password', async () => {
    const res = await request('GET', '/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.org');
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^application\/xml/);
    expect(res.body).toContain('<domain>example.org</domain>');
    expect(res.body).toContain(`<port>${postern.port('imap.implicitTls')}</port>`);
    expect(res.body).toContain(`<port>${postern.port('smtp.implicitTls')}</port>`);
    expect(res.body).toContain('<username>%EMAILADDRESS%</username>');
    expect(res.body).not.toMatch(/password>|<password/i);
  });

  it('answers at /mail/config-v1.1.xml on the autoconfig.<domain> host, the same for every address', async () => {
    const byHost = await request('GET', '/mail/config-v1.1.xml', { host: 'autoconfig.example.org' });
    const known = await request('GET', '/mail/config-v1.1.xml?emailaddress=alice%40example.org', { host: 'autoconfig.example.org' });
    const unknown = await request('GET', '/mail/config-v1.1.xml?emailaddress=nobody%40example.org', { host: 'autoconfig.example.org' });
    expect(byHost.status).toBe(200);
    expect(known.body).toBe(byHost.body);
    expect(unknown.body).toBe(byHost.body);
  });

  it('is 404 for a domain that is not configured', async () => {
    expect((await request('GET', '/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.net')).status).toBe(404);
    expect((await request('GET', '/mail/config-v1.1.xml', { host: 'autoconfig.example.net' })).status).toBe(404);
  });
});

describe('Microsoft Autodiscover', () => {
  it('answers a POSTed Outlook request without a session or CSRF token', async () => {
    const res = await request('POST', '/autodiscover/autodiscover.xml', { body: OUTLOOK('alice@example.org') });
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^text\/xml/);
    expect(res.body).toContain(`<Port>${postern.port('imap.implicitTls')}</Port>`);
    expect(res.body).toContain('<LoginName>alice@example.org</LoginName>');
    expect(res.body).not.toMatch(/password/i);
    const capitalised = await request('POST', '/Autodiscover/Autodiscover.xml', { body: OUTLOOK('alice@example.org'), contentType: 'application/xml' });
    expect(capitalised.body).toBe(res.body);
  });

  it('attack: mailbox enumeration — a known and an unknown address get the same answer but for the echoed login', async () => {
    const known = await request('POST', '/autodiscover/autodiscover.xml', { body: OUTLOOK('alice@example.org') });
    const unknown = await request('POST', '/autodiscover/autodiscover.xml', { body: OUTLOOK('nobody@example.org') });
    expect(unknown.status).toBe(known.status);
    expect(unknown.body.replaceAll('nobody@example.org', 'X')).toBe(known.body.replaceAll('alice@example.org', 'X'));
  });

  it('other domains get 404, a request that is not one Autodiscover’s error 600, an oversized body 413', async () => {
    expect((await request('POST', '/autodiscover/autodiscover.xml', { body: OUTLOOK('alice@example.net') })).status).toBe(404);
    const entity = await request('POST', '/autodiscover/autodiscover.xml', { body: `<!DOCTYPE a [<!ENTITY x "y">]>${OUTLOOK('&x;')}` });
    expect(entity.status).toBe(200);
    expect(entity.body).toContain('<ErrorCode>600</ErrorCode>');
    expect((await request('POST', '/autodiscover/autodiscover.xml', { body: OUTLOOK('alice@example.org') + ' '.repeat(20_000) })).status).toBe(413);
  });

  it('the page’s own forms still need their CSRF token', async () => {
    const res = await request('POST', '/sign-in', { body: 'login=alice%40example.org&password=x', contentType: 'application/x-www-form-urlencoded' });
    expect(res.status).toBe(403);
  });
});
