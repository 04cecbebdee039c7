/**
 * TLS on both legs of the DAV proxy.
 *
 * Pins: an https upstream is verified against `dav.caFile` (trusted → relayed; an upstream whose
 * certificate is not trusted → 502 and an UPSTREAM_TLS_FAILED log, credentials never sent); two
 * upstreams on different origins route by base path; a certificate reload (SIGHUP) is served to new
 * connections while an existing keep-alive connection carries on.
 */
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSelfSigned, writeCertFiles } from '../../src/net/certs.js';
import { REPLY_TEXT } from '../../src/dav/replies.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { basic, davClient, type DavTestClient } from './support/client.js';

let dir: string;
let trustedUpstream: https.Server;
let untrustedUpstream: https.Server;
let sawCredentials: string[];
let trustedOrigin: string;
let untrustedOrigin: string;
let postern: PosternHarness;
let client: DavTestClient;
let auth: string;

async function httpsUpstream(name: string): Promise<{ server: https.Server; origin: string; certPem: string }> {
  const cert = generateSelfSigned(['127.0.0.1']);
  const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    sawCredentials.push(`${name}:${req.headers.authorization ?? ''}`);
    res.end(`${name} says hello`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, certPem: cert.certPem };
}

beforeAll(async () => {
  sawCredentials = [];
  dir = await makeTempDir('postern-dav-tls-');
  const trusted = await httpsUpstream('trusted');
  const untrusted = await httpsUpstream('untrusted');
  trustedUpstream = trusted.server;
  untrustedUpstream = untrusted.server;
  trustedOrigin = trusted.origin;
  untrustedOrigin = untrusted.origin;
  const caFile = path.join(dir, 'upstream-ca.pem');
  writeFileSync(caFile, trusted.certPem);
  postern = await startPostern({
    config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: `${trusted.origin}/cal/`, carddavUpstream: `${untrusted.origin}/card/`, caFile } },
    secrets: ['tls-upstream-secret'],
  });
  await postern.addUser('alice', 'alice primary passphrase', { mode: 'password', secret: 'tls-upstream-secret' });
  auth = basic('alice', (await postern.newPassword('alice', 'alice primary passphrase')).password);
  client = davClient(postern.port('dav'), postern.caPem);
});

afterAll(async () => {
  client?.close();
  await postern?.stop();
  for (const server of [trustedUpstream, untrustedUpstream]) {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  }
  if (dir) await removeTempDir(dir);
});

describe('https upstreams', () => {
  it('relays to an upstream whose certificate dav.caFile trusts', async () => {
    const res = await client.request({ method: 'GET', path: '/cal/alice/x.ics', headers: { authorization: auth } });
    expect(res.status).toBe(200);
    expect(res.text).toBe('trusted says hello');
  });

  it('answers 502 for an upstream with an untrusted certificate, without sending it credentials', async () => {
    const res = await client.request({ method: 'GET', path: '/card/alice/x.vcf', headers: { authorization: auth } });
    expect(res.status).toBe(502);
    expect(res.text).toBe(`${REPLY_TEXT.badGateway}\n`);
    expect(postern.logs.events('upstream.fault').some((e) => e.code === 'UPSTREAM_TLS_FAILED')).toBe(true);
    expect(sawCredentials.filter((s) => s.startsWith('untrusted:'))).toEqual([]);
  });

  it('does not route paths outside both bases when the upstreams are on different origins', async () => {
    const res = await client.request({ method: 'PROPFIND', path: '/principals/alice/', headers: { authorization: auth } });
    expect(res.status).toBe(404);
  });
});

describe('well-known with base paths', () => {
  it('redirects /.well-known/caldav and /carddav to their configured base paths, after authentication', async () => {
    expect((await client.request({ method: 'PROPFIND', path: '/.well-known/caldav' })).status).toBe(401);
    const cal = await client.request({ method: 'PROPFIND', path: '/.well-known/caldav', headers: { authorization: auth } });
    expect(cal.status).toBe(301);
    // Two upstream origins: each is mounted at /@host[:port]/ (src/dav/routes.ts).
    expect(cal.headers.location).toBe(`https://127.0.0.1:${postern.port('dav')}/@${new URL(trustedOrigin).host}/cal/`);
    const card = await client.request({ method: 'GET', path: '/.well-known/carddav', headers: { authorization: auth } });
    expect(card.headers.location).toBe(`https://127.0.0.1:${postern.port('dav')}/@${new URL(untrustedOrigin).host}/card/`);
  });
});

describe('certificate reload', () => {
  it('serves the new certificate to new connections and keeps existing ones', async () => {
    const before = await client.request({ method: 'GET', path: '/cal/alice/a.ics', headers: { authorization: auth } });
    expect(await servedFingerprint()).toBe(new X509Certificate(postern.caPem).fingerprint256);
    const renewed = generateSelfSigned(['localhost', '127.0.0.1']);
    writeCertFiles(postern.config.tls.cert, postern.config.tls.key, renewed);
    postern.app.reloadTls();

    expect(await servedFingerprint()).toBe(new X509Certificate(renewed.certPem).fingerprint256);
    const again = await client.request({ method: 'GET', path: '/cal/alice/b.ics', headers: { authorization: auth } });
    expect(again.socket).toBe(before.socket);
    expect(again.status).toBe(200);
    const fresh = davClient(postern.port('dav'), renewed.certPem);
    try {
      expect((await fresh.request({ method: 'GET', path: '/cal/alice/c.ics', headers: { authorization: auth } })).status).toBe(200);
    } finally {
      fresh.close();
    }
  });
});

/** The certificate a fresh handshake (no session resumption) is shown. */
function servedFingerprint(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: postern.port('dav'), servername: 'localhost', rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}
