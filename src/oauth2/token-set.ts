/**
 * What an OAuth2 grant leaves postern with, and how it is kept: the refresh token, the current
 * access token and its expiry, as one JSON document sealed under the account's data key (like the
 * upstream password, src/crypto/envelope.ts) in accounts.secret_box. Whoever has the database and
 * the key file sees ciphertext only; the expiry is inside too, so not even the refresh schedule
 * shows. Every app password seals the same data key, so a token set re-sealed by one login (a
 * refresh) opens for all of them: nothing per password has to change when tokens rotate.
 */
import { AAD, open, seal } from '../crypto/envelope.js';
import { PosternError } from '../errors.js';

export interface TokenSet {
  refreshToken: string;
  accessToken: string | null;
  /** Milliseconds since the epoch; null when the provider gave no expires_in (treated as stale). */
  expiresAt: number | null;
}

export function sealTokenSet(dek: Buffer, accountId: number, tokens: TokenSet): Buffer {
  return seal(dek, Buffer.from(JSON.stringify(tokens), 'utf8'), AAD.oauth2Tokens(accountId));
}

export function openTokenSet(dek: Buffer, accountId: number, box: Buffer): TokenSet {
  const parsed: unknown = JSON.parse(open(dek, box, AAD.oauth2Tokens(accountId)).toString('utf8'));
  if (!isTokenSet(parsed)) throw new PosternError('ENVELOPE_UNWRAP_FAILED', 'sealed OAuth2 token set is malformed');
  return parsed;
}

/** Whether the access token is good for at least `marginMs` more. */
export function isFresh(tokens: TokenSet, now: number, marginMs: number): tokens is TokenSet & { accessToken: string; expiresAt: number } {
  return tokens.accessToken !== null && tokens.expiresAt !== null && tokens.expiresAt - now > marginMs;
}

function isTokenSet(v: unknown): v is TokenSet {
  if (typeof v !== 'object' || v === null) return false;
  const t = v as Record<string, unknown>;
  return typeof t.refreshToken === 'string' && (t.accessToken === null || typeof t.accessToken === 'string')
    && (t.expiresAt === null || typeof t.expiresAt === 'number');
}
