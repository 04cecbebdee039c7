/**
 * The server key file: 32 random bytes, hex, mode 0600. It keys the HMAC digests of app-specific
 * passwords so that a copied database alone cannot be used to test guesses offline. It does not
 * protect upstream secrets: those are wrapped under keys only the passwords themselves yield.
 */
import { createHmac, randomBytes, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PosternError } from '../errors.js';

export function createKeyFile(file: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
}

export function ensureKeyFile(file: string): boolean {
  if (existsSync(file)) return false;
  try {
    createKeyFile(file);
  } catch (err) {
    // Another `postern init` won the race between the check and the exclusive create: keep its key.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  return true;
}

export function readKeyFile(file: string): Buffer {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new PosternError('KEY_FILE_INVALID', `cannot read key file ${file} (run "postern init")`, { cause: err });
  }
  if (!/^[0-9a-f]{64}$/i.test(text)) throw new PosternError('KEY_FILE_INVALID', `key file ${file} is malformed`);
  return Buffer.from(text, 'hex');
}

/**
 * Keyed digest of a normalised app-specific password: the value the store indexes. The login path
 * passes the server key as a KeyObject made once (createSecretKey), which spares each HMAC the
 * copy of the key into a new one (issue 15).
 */
export function digestAppPassword(key: Buffer | KeyObject, normalized: string): Buffer {
  return createHmac('sha256', key).update(`postern/app-password/v1\0${normalized}`).digest();
}
