/**
 * Prepared statements for the one-time Apple profile downloads (migration 9, src/onboarding/
 * profile-download.ts). A row holds the profile's inputs sealed under a key only the download
 * token yields, and is found by the token's SHA-256: the token itself is never stored, so a copy
 * of the database (and of the key file) opens nothing. Rows are never updated: taken once, or
 * pruned after they expire.
 */
import type { Db } from './database.js';

export interface NewProfileDownload {
  tokenDigest: Buffer;
  accountId: number;
  /** app_passwords.id of the password inside (a revoked one's download is refused). */
  passwordId: number;
  sealed: Buffer;
  expiresAt: number;
}

export interface TakenProfileDownload {
  accountId: number;
  passwordId: number;
  sealed: Buffer;
  expiresAt: number;
}

export class ProfileDownloadRepo {
  private readonly insertStmt;
  private readonly takeStmt;
  private readonly pruneStmt;

  constructor(db: Db) {
    this.insertStmt = db.prepare(
      `INSERT INTO profile_downloads (token_digest, account_id, password_id, sealed, expires_at)
       VALUES (@tokenDigest, @accountId, @passwordId, @sealed, @expiresAt)`,
    );
    this.takeStmt = db.prepare<[Buffer], TakenProfileDownload>(
      `DELETE FROM profile_downloads WHERE token_digest = ?
       RETURNING account_id AS accountId, password_id AS passwordId, sealed, expires_at AS expiresAt`,
    );
    this.pruneStmt = db.prepare(`DELETE FROM profile_downloads WHERE expires_at <= ?`);
  }

  insert(d: NewProfileDownload): void {
    this.insertStmt.run(d);
  }

  /**
   * Deletes the row and returns what it held, in one statement: of two requests racing with the
   * same token (two workers, two instances), exactly one gets the row. Expired rows are taken
   * too (the caller refuses them), so that they go at once rather than at the next prune.
   */
  take(tokenDigest: Buffer): TakenProfileDownload | undefined {
    return this.takeStmt.get(tokenDigest);
  }

  /** Deletes every row expired at `now`; returns how many. */
  pruneExpired(now: number): number {
    return this.pruneStmt.run(now).changes;
  }
}
