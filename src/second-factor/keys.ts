/**
 * Keys for second factors, derived from the server key file (HKDF, one label per purpose) rather
 * than stored: a copied database without the key file yields neither a TOTP key nor anything to
 * test recovery-code guesses against. Not from the primary password: the second factor must be
 * checkable after the password step and survive a primary-password change.
 */
import { createHmac, hkdfSync } from 'node:crypto';

function derive(serverKey: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', serverKey, Buffer.alloc(0), info, 32));
}

export interface SecondFactorKeys {
  /** AES-256-GCM key for TOTP keys (src/crypto/envelope.ts seal/open). */
  totpSeal: Buffer;
  /** HMAC key for recovery-code digests. */
  recoveryDigest(code: string): Buffer;
}

export function secondFactorKeys(serverKey: Buffer): SecondFactorKeys {
  const totpSeal = derive(serverKey, 'postern/second-factor/totp-seal/v1');
  const recovery = derive(serverKey, 'postern/second-factor/recovery-digest/v1');
  return {
    totpSeal,
    recoveryDigest: (code) => createHmac('sha256', recovery).update(code, 'utf8').digest(),
  };
}

export const TOTP_AAD = {
  enrolled: (accountId: number) => `postern/second-factor/totp/account:${accountId}`,
  pending: (accountId: number, sessionId: number) => `postern/second-factor/totp-pending/account:${accountId}/session:${sessionId}`,
} as const;
