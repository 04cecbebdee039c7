/**
 * The secrets an account-page session keeps in its database row (migration 11), so that whichever
 * instance the browser's next request reaches has them: the primary password typed within the
 * recent-auth window, and the pending "Connect your account" request (PKCE verifier, state).
 *
 * Sealed with src/crypto/envelope.ts (AES-256-GCM, random nonce) under HKDF-SHA256 of the session's
 * cookie value, one `info` per purpose. Only the browser holds that value; the row holds its
 * SHA-256 (sessions.ts tokenDigest), which does not give the key, so a copy of the database and the
 * key file opens nothing. The associated data names the purpose and the session id: a box moved to
 * another row or column does not open. A new cookie value (the rotation at the second factor)
 * makes every box sealed under the old one unreadable; sessions.ts re-seals what it keeps.
 *
 * Must not: log or return a box's contents anywhere but to its caller; hold a key beyond one call.
 */
import { keyFromToken, open, seal } from '../crypto/envelope.js';
import { isPosternError } from '../errors.js';

export type SessionBoxPurpose = 'recent-auth' | 'connect';

const INFO: Record<SessionBoxPurpose, string> = {
  'recent-auth': 'postern/portal-session/recent-auth/v1',
  connect: 'postern/portal-session/connect/v1',
};

function aad(purpose: SessionBoxPurpose, sessionId: number): string {
  return `postern/portal-session/${purpose}/session:${sessionId}`;
}

/** `value` as JSON, sealed for this session's cookie and purpose. */
export function sealForSession(token: string, sessionId: number, purpose: SessionBoxPurpose, value: unknown): Buffer {
  return seal(keyFromToken(token, INFO[purpose]), Buffer.from(JSON.stringify(value), 'utf8'), aad(purpose, sessionId));
}

/**
 * The value inside a box sealed for this cookie, session and purpose; null when it does not open
 * (another cookie value — one rotated away —, another row or purpose, a tampered box).
 */
export function openForSession(token: string, sessionId: number, purpose: SessionBoxPurpose, box: Buffer): unknown {
  try {
    return JSON.parse(open(keyFromToken(token, INFO[purpose]), box, aad(purpose, sessionId)).toString('utf8')) as unknown;
  } catch (err) {
    if (isPosternError(err, 'ENVELOPE_UNWRAP_FAILED')) return null;
    throw err;
  }
}
