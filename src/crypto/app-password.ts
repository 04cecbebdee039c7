/**
 * App-specific passwords in Apple's shape: 16 lowercase letters from a CSPRNG, shown as
 * xxxx-xxxx-xxxx-xxxx (26^16 ≈ 2^75). Users retype or paste them in odd ways, so input is
 * normalised (hyphens and spaces dropped, case folded) before it is digested.
 */
import { randomInt } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz';
export const APP_PASSWORD_LETTERS = 16;

export function generateAppPassword(): string {
  let letters = '';
  for (let i = 0; i < APP_PASSWORD_LETTERS; i++) letters += ALPHABET[randomInt(ALPHABET.length)];
  return formatAppPassword(letters);
}

export function formatAppPassword(letters: string): string {
  return letters.match(/.{1,4}/g)!.join('-');
}

/**
 * Returns the 16 canonical letters, or null if the input cannot be an app-specific password
 * (then it is certainly not one, and the caller can go straight to the failure path).
 */
export function normalizeAppPassword(input: string): string | null {
  const compact = input.trim().replace(/[-\s]/g, '').toLowerCase();
  return /^[a-z]{16}$/.test(compact) ? compact : null;
}

/** Four groups of four letters, as postern shows a password and apps keep it. */
const GROUPED = /[a-z]{4}[-\s][a-z]{4}[-\s][a-z]{4}[-\s][a-z]{4}/i;

/**
 * Whether a login a client typed may carry an app-specific password: the whole of it, one part of
 * it around `@` or `%` (a password pasted into the user-name field, then a domain added), or the
 * grouped form anywhere. Such a login is never logged as it is.
 */
export function mayCarryAppPassword(login: string): boolean {
  return GROUPED.test(login) || login.split(/[@%]/).some((part) => normalizeAppPassword(part) !== null);
}
