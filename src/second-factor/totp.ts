/**
 * TOTP (RFC 6238) through otpauth: SHA-1, 6 digits, 30 s, what every authenticator app reads from
 * an otpauth:// QR code. A code is valid in its own step and one either side (clock drift, RFC
 * 6238 §5.2), and the caller accepts a step at most once (the store's conditional update), so a
 * code seen over a shoulder or replayed from a log cannot be used again.
 */
import { Secret, TOTP } from 'otpauth';

export const TOTP_PERIOD_S = 30;
const DIGITS = 6;
const WINDOW = 1;

export interface NewTotpKey {
  /** Base32, what the user may type instead of scanning. */
  base32: string;
  uri: string;
}

export function newTotpKey(issuer: string, login: string): NewTotpKey {
  const secret = new Secret({ size: 20 });
  return { base32: secret.base32, uri: totpUri(secret.base32, issuer, login) };
}

export function totpUri(base32: string, issuer: string, login: string): string {
  return totpFor(base32, issuer, login).toString();
}

function totpFor(base32: string, issuer = 'postern', label = 'account'): TOTP {
  return new TOTP({ issuer, label, algorithm: 'SHA1', digits: DIGITS, period: TOTP_PERIOD_S, secret: Secret.fromBase32(base32) });
}

/** The time step a code belongs to, or null when it is not a current code for this key. */
export function matchingStep(base32: string, code: string, now: number): number | null {
  const token = code.replace(/\s+/g, '');
  if (!/^\d{6}$/.test(token)) return null;
  const delta = totpFor(base32).validate({ token, timestamp: now, window: WINDOW });
  if (delta === null) return null;
  return Math.floor(now / 1000 / TOTP_PERIOD_S) + delta;
}

/** Formats the key in groups of four, as authenticator apps ask for it. */
export function groupedKey(base32: string): string {
  return base32.replace(/(.{4})/g, '$1 ').trim();
}
