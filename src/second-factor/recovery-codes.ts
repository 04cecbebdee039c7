/**
 * Recovery codes: ten per enrolment, shown once, stored as keyed digests (src/second-factor/keys.ts).
 * Ten characters of a 31-character alphabet without look-alikes (no 0/o, 1/l/i) are 49 bits each, so
 * a fast keyed hash is enough (as for app passwords), and guesses are bounded by the session's
 * code-failure limit anyway.
 */
import { randomInt } from 'node:crypto';

export const RECOVERY_CODE_COUNT = 10;
const ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';
const LENGTH = 10;

export function newRecoveryCodes(): string[] {
  return Array.from({ length: RECOVERY_CODE_COUNT }, () => {
    const chars = Array.from({ length: LENGTH }, () => ALPHABET[randomInt(ALPHABET.length)]).join('');
    return `${chars.slice(0, 5)}-${chars.slice(5)}`;
  });
}

/** The canonical form, or null when the input cannot be a recovery code. */
export function normalizeRecoveryCode(input: string): string | null {
  const bare = input.toLowerCase().replace(/[\s-]+/g, '');
  if (bare.length !== LENGTH || [...bare].some((c) => !ALPHABET.includes(c))) return null;
  return bare;
}
