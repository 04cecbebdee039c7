/**
 * `postern cert generate | show`: the self-signed certificate for a first start, and what a user
 * compares when their mail client warns about it (the SHA-256 fingerprint). Real certificates
 * (an ACME client's) are used by pointing tls.cert / tls.key at their files; a running postern
 * picks renewed files up on SIGHUP.
 */
import { existsSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import type { ResolvedConfig } from '../../config/load.js';
import { describeCertificate, generateSelfSigned, writeCertFiles, type CertSummary } from '../../net/certs.js';
import { globals, loadConfig } from '../context.js';
import { refused } from '../errors.js';
import { fields, json } from '../format.js';
import type { CliIo } from '../io.js';

export function registerCertCommands(program: Command, io: CliIo): void {
  const cert = program.command('cert').description('TLS certificate');

  cert.command('generate').description('write a self-signed certificate and key for the configured hostnames')
    .option('--force', 'replace existing files')
    .option('--days <n>', 'validity in days', parseDays, 825)
    .action(async (opts: { force?: boolean; days: number }, cmd: Command) => {
      const config = loadConfig(globals(cmd), io);
      if (!opts.force && (existsSync(config.tls.cert) || existsSync(config.tls.key))) {
        throw refused(`${config.tls.cert} or ${config.tls.key} exists already: use --force to replace them`);
      }
      const summary = generateCertificate(config, opts.days);
      io.stdout.write(`wrote ${config.tls.cert} and ${config.tls.key} (key mode 0600)\n`);
      io.stdout.write(describe(summary));
      io.stdout.write('a running postern loads new files on SIGHUP (kill -HUP <pid>) without dropping sessions\n');
    });

  cert.command('show').description('show subject, names, expiry and SHA-256 fingerprint of the certificate')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const config = loadConfig(globals(cmd), io);
      const summary = describeCertificate(config.tls.cert);
      io.stdout.write(opts.json ? json({ file: config.tls.cert, ...summary }) : describe(summary, config.tls.cert));
    });
}

/** SANs: the configured hostnames plus 127.0.0.1, so local clients can verify too. */
export function generateCertificate(config: ResolvedConfig, days = 825): CertSummary {
  const names = [...new Set([...config.hostnames, '127.0.0.1'])];
  writeCertFiles(config.tls.cert, config.tls.key, generateSelfSigned(names, days));
  return describeCertificate(config.tls.cert);
}

function describe(s: CertSummary, file?: string): string {
  const expired = Date.parse(s.validTo) < Date.now();
  return fields([
    ...(file ? [['file', file] as const] : []),
    ['subject', s.subject],
    ['issuer', s.selfSigned ? `${s.issuer} (self-signed)` : s.issuer],
    ['names', s.subjectAltNames.join(', ')],
    ['valid from', s.validFrom],
    ['valid until', expired ? `${s.validTo} (EXPIRED)` : s.validTo],
    ['SHA-256', s.fingerprintSha256],
  ]);
}

function parseDays(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 3650) throw new InvalidArgumentError('must be a whole number of days from 1 to 3650');
  return n;
}
