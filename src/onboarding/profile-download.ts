/**
 * The one-time download of an Apple profile right after Generate (issue 16). The profile carries
 * the new app-specific password in clear, which postern otherwise never keeps, so:
 *  - the download token (256 random bits) is the only key: the row holds the profile's inputs
 *    sealed (AES-256-GCM, src/crypto/envelope.ts) under HKDF(token) (keyFromToken), and is found
 *    by another HKDF output of it. The token is only in the URL (the page, the QR code, the phone's request),
 *    never in the database or a log, so the database and the key file together reveal nothing;
 *  - it is taken once: DELETE … RETURNING, one statement, so two requests racing with the token
 *    (two workers, two instances) cannot both get it;
 *  - it dies after `validMs`, and with its password: revoked, expired, or removed with the account
 *    (a primary-password change revokes every password), checked at download.
 * Held in the database, not in memory, because the phone's request may reach another worker or
 * instance than the page's. The URL is a bearer capability for these few minutes: whoever reads it
 * off the screen can take the profile, exactly as they could read the password shown beside it.
 */
import { randomBytes } from 'node:crypto';
import { keyFromToken, open, seal } from '../crypto/envelope.js';
import { isPosternError } from '../errors.js';
import { isActive, type Store } from '../store/index.js';
import type { ProfileAccount } from './apple-profile.js';

/** 32 bytes, base64url without padding. */
const TOKEN_FORM = /^[A-Za-z0-9_-]{43}$/;
const SEAL_INFO = 'postern/profile-download/seal/v1';
const LOOKUP_INFO = 'postern/profile-download/lookup/v1';

export interface ProfileOffer {
  accountId: number;
  /** app_passwords.id of the password inside. */
  passwordId: number;
  /** The password's public id, for the download's log line. */
  publicId: string;
  profile: ProfileAccount;
}

export type TakenProfile =
  | { kind: 'ok'; accountId: number; publicId: string; profile: ProfileAccount }
  /** Never offered, already taken, or pruned after expiry: one answer, nothing to tell them apart. */
  | { kind: 'gone' }
  | { kind: 'expired' }
  | { kind: 'revoked' };

export function isDownloadToken(value: string): boolean {
  return TOKEN_FORM.test(value);
}

export class ProfileDownloads {
  constructor(private readonly store: Store, readonly validMs: number, private readonly clock: () => number = Date.now) {}

  /** Stores the sealed offer and returns its token (the caller puts it in the URL, nowhere else). */
  async offer(offer: ProfileOffer): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    const sealed = seal(keyFromToken(token, SEAL_INFO), Buffer.from(JSON.stringify({ ...offer.profile, publicId: offer.publicId }), 'utf8'), aad(offer.accountId, offer.passwordId));
    await this.store.profileDownloads.insert({ tokenDigest: keyFromToken(token, LOOKUP_INFO), accountId: offer.accountId, passwordId: offer.passwordId, sealed, expiresAt: this.clock() + this.validMs });
    return token;
  }

  /** The offer behind a token, at most once, whichever process asks. */
  async take(token: string): Promise<TakenProfile> {
    if (!isDownloadToken(token)) return { kind: 'gone' };
    const row = await this.store.profileDownloads.take(keyFromToken(token, LOOKUP_INFO));
    if (!row) return { kind: 'gone' };
    const now = this.clock();
    if (row.expiresAt <= now) return { kind: 'expired' };
    const [state] = await this.store.passwords.states([row.passwordId]);
    if (!state || !isActive(state, now)) return { kind: 'revoked' };
    try {
      const json = open(keyFromToken(token, SEAL_INFO), row.sealed, aad(row.accountId, row.passwordId)).toString('utf8');
      const { publicId, ...profile } = JSON.parse(json) as ProfileAccount & { publicId: string };
      return { kind: 'ok', accountId: row.accountId, publicId, profile };
    } catch (err) {
      // A box that does not open under its own token was not written by offer(): treat as gone.
      if (isPosternError(err, 'ENVELOPE_UNWRAP_FAILED')) return { kind: 'gone' };
      throw err;
    }
  }
}

/** Binds a box to its row: moved to another account's or password's row, it does not open. */
function aad(accountId: number, passwordId: number): string {
  return `postern/profile-download/account:${accountId}/password:${passwordId}`;
}
