/**
 * The bcrypt hash of an account's primary password, used only to recognise (and refuse) it.
 *
 * bcrypt reads at most 72 bytes of its input, so two passphrases sharing their first 72 bytes
 * would hash alike. Longer passwords are pre-hashed (SHA-256, base64) before bcrypt; passwords
 * of 72 bytes or fewer go in unchanged, so their hashes are plain bcrypt. The pre-hash also
 * bounds what a worker is sent, whatever length a client claims its password has.
 */
import { createHash } from 'node:crypto';
import bcrypt from 'bcryptjs';

export const BCRYPT_COST = 10;
const BCRYPT_MAX_BYTES = 72;

/** What bcrypt is given for `password`: the password itself, or its SHA-256 when it is longer than bcrypt reads. */
export function bcryptInput(password: string): string {
  if (Buffer.byteLength(password, 'utf8') <= BCRYPT_MAX_BYTES) return password;
  return `sha256:${createHash('sha256').update(password, 'utf8').digest('base64')}`;
}

export function hashPrimaryPassword(password: string): string {
  return bcrypt.hashSync(bcryptInput(password), BCRYPT_COST);
}

/** Synchronous: for the admin CLI. The login path uses a PrimaryChecker (worker pool) instead. */
export function primaryPasswordMatches(password: string, hash: string): boolean {
  return bcrypt.compareSync(bcryptInput(password), hash);
}
