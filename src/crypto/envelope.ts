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
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, scryptSync } from 'node:crypto';
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
    const head = decipher.update(box.subarray(1 + IV_BYTES + TAG_BYTES));
    // GCM is a stream mode: final() only checks the tag, so its output is empty; skip the copy.
    const tail = decipher.final();
    return tail.length === 0 ? head : Buffer.concat([head, tail]);
  } catch (err) {
    throw new PosternError('ENVELOPE_UNWRAP_FAILED', undefined, { cause: err });
  }
}

const APP_PASSWORD_WRAP_INFO = 'postern/dek-wrap/app-password/v1';
/** HKDF-Expand's T(1) input: info | 0x01 (RFC 5869 §2.3). */
const APP_PASSWORD_WRAP_T1 = Buffer.concat([Buffer.from(APP_PASSWORD_WRAP_INFO, 'utf8'), Buffer.from([1])]);

/**
 * Key from an app-specific password: high entropy already, so a fast KDF is enough. HKDF-SHA256
 * (RFC 5869) written as its two HMACs: for one 32-byte block that is the whole algorithm
 * (extract, then T(1)), and it costs a third of `hkdfSync`, which wraps every call's key material
 * in KeyObjects (issue 15: ~19 µs of a ~70 µs login). Pinned against `hkdfSync` by envelope.test.ts.
 */
export function keyFromAppPassword(normalized: string, salt: Buffer): Buffer {
  const prk = createHmac('sha256', salt).update(normalized, 'utf8').digest();
  return createHmac('sha256', prk).update(APP_PASSWORD_WRAP_T1).digest();
}

/** Key from the primary password: chosen by a human, so a slow, memory-hard KDF. */
export function keyFromPrimaryPassword(password: string, salt: Buffer): Buffer {
  return scryptSync(password.normalize('NFC'), salt, 32, SCRYPT_PARAMS);
}

/**
 * Key from a bearer token only its holder has (a profile download's URL token, a page session's
 * cookie): 256 random bits, so HKDF-SHA256 (RFC 5869) with no salt (uniformly random already,
 * §3.1), one `info` per purpose, so that a lookup digest stored beside a box says nothing about
 * the key that opens it.
 */
export function keyFromToken(token: string, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(token, 'utf8'), Buffer.alloc(0), info, 32));
}

export const AAD = {
  secret: (accountId: number) => `postern/upstream-secret/account:${accountId}`,
  /** Mode `oauth2`: the token set, in the same column as a password but never mistakable for one. */
  oauth2Tokens: (accountId: number) => `postern/oauth2-tokens/account:${accountId}`,
  dekForPrimary: (accountId: number) => `postern/dek/primary/account:${accountId}`,
  dekForAppPassword: (accountId: number, publicId: string) => `postern/dek/app-password/account:${accountId}/${publicId}`,
} as const;
