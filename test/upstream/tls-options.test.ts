/**
 * TLS options toward the real provider. Pins: verification on, TLS 1.2+, no IP in SNI, and an
 * upstream `caFile` is trusted *in addition to* the public roots (Node's `ca` alone would replace
 * them, and a private CA for one upstream would break every publicly signed one); an unreadable
 * CA file is a config error naming the file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import { afterAll, expect, it } from 'vitest';
import { generateSelfSigned } from '../../src/net/certs.js';
import { upstreamTlsOptions } from '../../src/upstream/tls-options.js';

const dir = mkdtempSync(path.join(tmpdir(), 'postern-tls-options-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('verifies by default with TLS 1.2+, and sends SNI only for host names', () => {
  expect(upstreamTlsOptions({ host: 'imap.example.com', rejectUnauthorized: true })).toEqual({ minVersion: 'TLSv1.2', rejectUnauthorized: true, servername: 'imap.example.com' });
  expect(upstreamTlsOptions({ host: '127.0.0.2', rejectUnauthorized: true })).toEqual({ minVersion: 'TLSv1.2', rejectUnauthorized: true });
});

it('trusts a configured CA file in addition to the public roots', () => {
  const { certPem } = generateSelfSigned(['private-ca.example']);
  const caFile = path.join(dir, 'ca.pem');
  writeFileSync(caFile, certPem);
  const { ca } = upstreamTlsOptions({ host: 'imap.example.com', caFile, rejectUnauthorized: true });
  expect(Array.isArray(ca)).toBe(true);
  expect(ca).toContain(certPem);
  expect((ca as string[]).length).toBe(rootCertificates.length + 1);
  expect(ca).toEqual(expect.arrayContaining([...rootCertificates]));
});

it('refuses an unreadable CA file with a message naming it', () => {
  expect(() => upstreamTlsOptions({ host: 'x', caFile: path.join(dir, 'missing.pem'), rejectUnauthorized: true })).toThrow(/cannot read upstream CA file .*missing\.pem/);
});
