/**
 * The stored hash of an account's primary password, used only to recognise (and refuse) it.
 *
 * It is the one value in the database computed from the primary password alone, and by default the
 * primary password is also the provider password, so it must be no cheaper to attack than the
 * scrypt wrap of the data key (envelope.ts), and useless without the server key file:
 *
 *   digest = scrypt(HMAC-SHA256(pepperKey, NFC(password)), salt, SCRYPT_PARAMS)
 *   pepperKey = HKDF-SHA256(key file, info "postern/primary-hash/pepper/v1")
 *
 * The HMAC comes first, on the calling thread (microseconds), so worker threads are sent 32 bytes
 * that are not the password, and a copied database without the key file gives nothing to guess
 * against, however many GPUs. With the key file a guess costs one HMAC plus one scrypt, exactly as
 * much as a guess against the wrap. Stored as `$scrypt-hmac$v=1$n=…,r=…,p=…$salt$digest`
 * (unpadded base64), so the parameters travel with the hash.
 *
 * Legacy: hashes written before were bcrypt cost 10 (`$2…`, bcryptjs; passwords over 72 bytes
 * pre-hashed, see bcryptInput). They still verify, and AccountService replaces one with the new
 * kind at the next successful primary-password check (`password new`, `user set-upstream`) or
 * change (`user set-password`).
 */
import { createHash, createHmac, hkdfSync, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { SCRYPT_PARAMS } from './envelope.js';

const BCRYPT_MAX_BYTES = 72;
const SALT_BYTES = 16;
const DIGEST_BYTES = 32;
const PEPPER_INFO = 'postern/primary-hash/pepper/v1';
const SCRYPT_HASH = /^\$scrypt-hmac\$v=1\$n=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

/** What a worker thread is sent: everything it needs, nothing it could log as the password (scrypt). */
export type PrimaryCheckTask =
  | { scheme: 'scrypt'; peppered: Buffer; salt: Buffer; digest: Buffer; N: number; r: number; p: number; maxmem: number }
  | { scheme: 'bcrypt'; input: string; hash: string };

/** What bcrypt is given for `password`: the password itself, or its SHA-256 when it is longer than bcrypt reads. */
export function bcryptInput(password: string): string {
  if (Buffer.byteLength(password, 'utf8') <= BCRYPT_MAX_BYTES) return password;
  return `sha256:${createHash('sha256').update(password, 'utf8').digest('base64')}`;
}

function pepper(password: string, serverKey: Buffer): Buffer {
  const pepperKey = Buffer.from(hkdfSync('sha256', serverKey, Buffer.alloc(0), PEPPER_INFO, 32));
  return createHmac('sha256', pepperKey).update(password.normalize('NFC'), 'utf8').digest();
}

const b64 = (bytes: Buffer) => bytes.toString('base64').replace(/=+$/, '');

/** Synchronous (about as slow as the envelope's scrypt): for the admin CLI, never the login path. */
export function hashPrimaryPassword(password: string, serverKey: Buffer): string {
  const salt = randomBytes(SALT_BYTES);
  const { N, r, p } = SCRYPT_PARAMS;
  const digest = scryptSync(pepper(password, serverKey), salt, DIGEST_BYTES, SCRYPT_PARAMS);
  return `$scrypt-hmac$v=1$n=${N},r=${r},p=${p}$${b64(salt)}$${b64(digest)}`;
}

export function isLegacyHash(hash: string): boolean {
  return hash.startsWith('$2');
}

/** True when `hash` is not of the current kind with the current cost: replace it at the next successful check. */
export function needsRehash(hash: string): boolean {
  const m = SCRYPT_HASH.exec(hash);
  return !m || Number(m[1]) !== SCRYPT_PARAMS.N || Number(m[2]) !== SCRYPT_PARAMS.r || Number(m[3]) !== SCRYPT_PARAMS.p;
}

/** Turns (password, stored hash) into the work a checker runs. Throws on a hash of no known kind. */
export function primaryCheckTask(password: string, hash: string, serverKey: Buffer): PrimaryCheckTask {
  if (isLegacyHash(hash)) return { scheme: 'bcrypt', input: bcryptInput(password), hash };
  const m = SCRYPT_HASH.exec(hash);
  if (!m) throw new Error('unrecognised primary-password hash');
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // Parameters come from our own database, but a tampered row must not make a check allocate gigabytes.
  const maxmem = 128 * N * r * 2;
  if (maxmem > 2 * SCRYPT_PARAMS.maxmem) throw new Error('primary-password hash parameters out of range');
  const salt = Buffer.from(m[4]!, 'base64');
  const digest = Buffer.from(m[5]!, 'base64');
  // An empty or short digest would compare equal to anything shorter: only the exact sizes we write.
  if (salt.length !== SALT_BYTES || digest.length !== DIGEST_BYTES) throw new Error('malformed primary-password hash');
  return { scheme: 'scrypt', peppered: pepper(password, serverKey), salt, digest, N, r, p, maxmem };
}

/** The check itself, on the calling thread. primary-check-worker.mjs runs the same steps in a worker. */
export function runPrimaryCheck(task: PrimaryCheckTask): boolean {
  if (task.scheme === 'bcrypt') return bcrypt.compareSync(task.input, task.hash);
  const { N, r, p, maxmem } = task;
  const digest = scryptSync(task.peppered, task.salt, task.digest.length, { N, r, p, maxmem });
  return timingSafeEqual(digest, task.digest);
}

/** Synchronous: for the admin CLI. The login path uses a PrimaryChecker (worker pool) instead. */
export function primaryPasswordMatches(password: string, hash: string, serverKey: Buffer): boolean {
  return runPrimaryCheck(primaryCheckTask(password, hash, serverKey));
}
