/**
 * Envelope encryption of the upstream secret.
 *
 * Each account has a random data key (DEK). The upstream secret is sealed under the DEK; the DEK
 * is sealed once per app-specific password (key = HKDF of that password) and once under the
 * primary password (key = scrypt, slow, because a human chose it). Whoever copies the database
 * and the key file gets ciphertext only: the DEK needs a live app password or the primary password.
 * AES-256-GCM with associated data binds every box to its purpose and row, so boxes cannot be
 * swapped between accounts or passwords.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, scryptSync } from 'node:crypto';
import { PosternError } from '../errors.js';

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** scrypt cost for the primary password: ~50 ms, 32 MiB; parameters travel with the salt. */
export const SCRYPT_PARAMS = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;

export function newDataKey(): Buffer {
  return randomBytes(32);
}

export function newSalt(): Buffer {
  return randomBytes(16);
}

/** Box layout: version(1) | iv(12) | tag(16) | ciphertext. */
export function seal(key: Buffer, plaintext: Buffer, aad: string): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), body]);
}

export function open(key: Buffer, box: Buffer, aad: string): Buffer {
  if (box.length < 1 + IV_BYTES + TAG_BYTES || box[0] !== VERSION) {
    throw new PosternError('ENVELOPE_UNWRAP_FAILED', 'sealed box is malformed');
  }
  const iv = box.subarray(1, 1 + IV_BYTES);
  const tag = box.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv);
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(box.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]);
  } catch (err) {
    throw new PosternError('ENVELOPE_UNWRAP_FAILED', undefined, { cause: err });
  }
}

/** Key from an app-specific password: high entropy already, so a fast KDF is enough. */
export function keyFromAppPassword(normalized: string, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(normalized, 'utf8'), salt, 'postern/dek-wrap/app-password/v1', 32));
}

/** Key from the primary password: chosen by a human, so a slow, memory-hard KDF. */
export function keyFromPrimaryPassword(password: string, salt: Buffer): Buffer {
  return scryptSync(password.normalize('NFC'), salt, 32, SCRYPT_PARAMS);
}

export const AAD = {
  secret: (accountId: number) => `postern/upstream-secret/account:${accountId}`,
  /** Mode `oauth2`: the token set, in the same column as a password but never mistakable for one. */
  oauth2Tokens: (accountId: number) => `postern/oauth2-tokens/account:${accountId}`,
  dekForPrimary: (accountId: number) => `postern/dek/primary/account:${accountId}`,
  dekForAppPassword: (accountId: number, publicId: string) => `postern/dek/app-password/account:${accountId}/${publicId}`,
} as const;
