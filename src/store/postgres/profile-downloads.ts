/**
 * The one-time profile downloads on PostgreSQL (migration 9's table, in MIGRATION_SET
 * in src/store/migrations.ts), with the SQLite repository's contract (src/store/profile-downloads.ts).
 * take() is one DELETE … RETURNING: under READ COMMITTED a second DELETE of the same row waits for
 * the first to commit, then finds the row gone and returns nothing, so of requests racing on any
 * connections of any instances exactly one gets it.
 */
import type { Async } from '../api.js';
import type { NewProfileDownload, ProfileDownloadRepo, TakenProfileDownload } from '../profile-downloads.js';
import type { Queryable } from './queryable.js';

/** BIGINT comes back from node-postgres as a string (it may exceed 2^53); ids and ms times do not. */
interface RawTaken { account_id: string; password_id: string; sealed: Buffer; expires_at: string }

export class PgProfileDownloadRepo implements Async<ProfileDownloadRepo> {
  constructor(private readonly db: Queryable) {}

  async insert(d: NewProfileDownload): Promise<void> {
    await this.db.query(
      'INSERT INTO profile_downloads (token_digest, account_id, password_id, sealed, expires_at) VALUES ($1, $2, $3, $4, $5)',
      [d.tokenDigest, d.accountId, d.passwordId, d.sealed, d.expiresAt],
    );
  }

  async take(tokenDigest: Buffer): Promise<TakenProfileDownload | undefined> {
    const { rows } = await this.db.query<RawTaken>(
      'DELETE FROM profile_downloads WHERE token_digest = $1 RETURNING account_id, password_id, sealed, expires_at',
      [tokenDigest],
    );
    const row = rows[0];
    return row && { accountId: Number(row.account_id), passwordId: Number(row.password_id), sealed: row.sealed, expiresAt: Number(row.expires_at) };
  }

  async pruneExpired(now: number): Promise<number> {
    return (await this.db.query('DELETE FROM profile_downloads WHERE expires_at <= $1', [now])).rowCount ?? 0;
  }
}
