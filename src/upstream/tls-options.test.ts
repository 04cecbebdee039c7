/**
 * TLS options toward the real provider. Pins: verification on, TLS 1.2+, no IP in SNI, and an
 * upstream `caFile` is trusted *in addition to* the public roots (Node's `ca` alone would replace
 * them, and a private CA for one upstream would break every publicly signed one), through one
 * secure context per file (building one from all the roots per connection cost ~25 ms a login);
 * an unreadable CA file is a config error naming the file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import tls, { rootCertificates } from 'node:tls';
import { afterAll, expect, it } from 'vitest';
import { generateSelfSigned } from '../net/certs.js';
import { extraCaBundle, upstreamTlsOptions } from './tls-options.js';

const dir = mkdtempSync(path.join(tmpdir(), 'postern-tls-options-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('verifies by default with TLS 1.2+, and sends SNI only for host names', () => {
  expect(upstreamTlsOptions({ host: 'imap.example.com', rejectUnauthorized: true })).toEqual({ minVersion: 'TLSv1.2', rejectUnauthorized: true, servername: 'imap.example.com' });
  expect(upstreamTlsOptions({ host: '127.0.0.2', rejectUnauthorized: true })).toEqual({ minVersion: 'TLSv1.2', rejectUnauthorized: true });
});

it('trusts a configured CA file in addition to the public roots, with one secure context built per file', async () => {
  const cert = generateSelfSigned(['localhost', '127.0.0.1']);
  const caFile = path.join(dir, 'ca.pem');
  writeFileSync(caFile, cert.certPem);
  expect(extraCaBundle(caFile)).toEqual([...rootCertificates, cert.certPem]);
  const first = upstreamTlsOptions({ host: '127.0.0.1', caFile, rejectUnauthorized: true });
  const second = upstreamTlsOptions({ host: '127.0.0.1', caFile, rejectUnauthorized: true });
  expect(first.secureContext).toBeDefined();
  expect(second.secureContext).toBe(first.secureContext); // not rebuilt per connection

  // And it really verifies with it: a server with that certificate is trusted, the default
  // (public roots only) refuses it.
  const server = tls.createServer({ key: cert.keyPem, cert: cert.certPem }, (socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const handshake = (options: tls.ConnectionOptions) => new Promise<string>((resolve) => {
    const socket = tls.connect({ ...options, host: '127.0.0.1', port }, () => {
      resolve('verified');
      socket.destroy();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
  try {
    expect(await handshake(first)).toBe('verified');
    expect(await handshake(upstreamTlsOptions({ host: '127.0.0.1', rejectUnauthorized: true }))).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
  } finally {
    server.close();
  }
});

it('refuses an unreadable CA file with a message naming it', () => {
  expect(() => upstreamTlsOptions({ host: 'x', caFile: path.join(dir, 'missing.pem'), rejectUnauthorized: true })).toThrow(/cannot read upstream CA file .*missing\.pem/);
});
