/**
 * Self-signed TLS material for a first start (node-forge builds the X.509 certificate; the RSA
 * key comes from Node's native crypto, which is far faster than forge's JavaScript keygen).
 * Postern never falls back to a bundled certificate: without files it refuses to start TLS.
 */
import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import forge from 'node-forge';
import { PosternError } from '../errors.js';

export interface GeneratedCert {
  certPem: string;
  keyPem: string;
}

export function generateSelfSigned(hostnames: readonly string[], validDays = 825): GeneratedCert {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  cert.serialNumber = '01' + forge.util.bytesToHex(forge.random.getBytesSync(15));
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + validDays * 86_400_000);
  const subject = [{ name: 'commonName', value: hostnames[0] ?? 'localhost' }, { name: 'organizationName', value: 'postern self-signed' }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: hostnames.map((h) => (isIP(h) ? { type: 7, ip: h } : { type: 2, value: h })) },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keyPem), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}

export function writeCertFiles(certFile: string, keyFile: string, material: GeneratedCert): void {
  mkdirSync(path.dirname(certFile), { recursive: true });
  mkdirSync(path.dirname(keyFile), { recursive: true });
  writeFileSync(keyFile, material.keyPem, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  writeFileSync(certFile, material.certPem, { mode: 0o644 });
}

export interface CertSummary {
  subject: string;
  issuer: string;
  subjectAltNames: string[];
  validFrom: string;
  validTo: string;
  fingerprintSha256: string;
  selfSigned: boolean;
}

export function describeCertificate(certFile: string): CertSummary {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(readFileSync(certFile));
  } catch (err) {
    throw new PosternError('TLS_MATERIAL_INVALID', `cannot read certificate ${certFile}: ${(err as Error).message}`, { cause: err });
  }
  return {
    subject: x509.subject.replace(/\n/g, ', '),
    issuer: x509.issuer.replace(/\n/g, ', '),
    subjectAltNames: (x509.subjectAltName ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    validFrom: new Date(x509.validFrom).toISOString(),
    validTo: new Date(x509.validTo).toISOString(),
    fingerprintSha256: createHash('sha256').update(x509.raw).digest('hex').toUpperCase().match(/../g)!.join(':'),
    selfSigned: x509.subject === x509.issuer,
  };
}
