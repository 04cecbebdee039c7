/** The accounts table on PostgreSQL: the statements of src/store/accounts.ts, one for one. */
import type { AccountRepo, NewAccount, PrimaryUpdate } from '../accounts.js';
import type { Async } from '../api.js';
import type { AccountRow, UpstreamMode, UpstreamStatus } from '../types.js';
import type { Queryable } from './queryable.js';

// Quoted aliases: PostgreSQL folds unquoted identifiers to lower case.
const COLUMNS = `id, login, upstream_mode AS "upstreamMode", upstream_user AS "upstreamUser",
  primary_hash AS "primaryHash", primary_salt AS "primarySalt", dek_primary AS "dekPrimary",
  secret_box AS "secretBox", upstream_status AS "upstreamStatus", upstream_status_at AS "upstreamStatusAt",
  created_at AS "createdAt", primary_changed_at AS "primaryChangedAt", oauth2_provider AS "oauth2Provider"`;

export type UpstreamUpdate = Parameters<AccountRepo['setUpstream']>[1];

export class PgAccountRepo implements Async<AccountRepo> {
  constructor(private readonly db: Queryable) {}

  async findByLogin(login: string): Promise<AccountRow | undefined> {
    return (await this.db.query<AccountRow>(`SELECT ${COLUMNS} FROM accounts WHERE login = $1`, [login])).rows[0];
  }

  async get(id: number): Promise<AccountRow | undefined> {
    return (await this.db.query<AccountRow>(`SELECT ${COLUMNS} FROM accounts WHERE id = $1`, [id])).rows[0];
  }

  async list(): Promise<AccountRow[]> {
    // COLLATE "C": the order SQLite's BINARY collation gives, whatever the database's locale.
    return (await this.db.query<AccountRow>(`SELECT ${COLUMNS} FROM accounts ORDER BY login COLLATE "C"`)).rows;
  }

  async insert(a: NewAccount): Promise<number> {
    const { rows } = await this.db.query<{ id: number }>(
      `INSERT INTO accounts (login, upstream_mode, upstream_user, primary_hash, primary_salt, dek_primary, created_at, primary_changed_at, oauth2_provider)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) RETURNING id`,
      [a.login, a.upstreamMode, a.upstreamUser, a.primaryHash, a.primarySalt, a.dekPrimary, a.now, a.oauth2Provider ?? null],
    );
    return rows[0]!.id;
  }

  async secretBox(id: number): Promise<Buffer | null | undefined> {
    return (await this.db.query<{ box: Buffer | null }>('SELECT secret_box AS box FROM accounts WHERE id = $1', [id])).rows[0]?.box;
  }

  async swapSecretBox(id: number, expected: Buffer, replacement: Buffer): Promise<boolean> {
    const r = await this.db.query('UPDATE accounts SET secret_box = $1 WHERE id = $2 AND secret_box = $3', [replacement, id, expected]);
    return (r.rowCount ?? 0) > 0;
  }

  async takeRefreshLease(id: number, now: number, until: number): Promise<boolean> {
    const r = await this.db.query('UPDATE accounts SET refresh_lease_until = $1 WHERE id = $2 AND (refresh_lease_until IS NULL OR refresh_lease_until <= $3)', [until, id, now]);
    return (r.rowCount ?? 0) > 0;
  }

  async releaseRefreshLease(id: number, until: number): Promise<void> {
    await this.db.query('UPDATE accounts SET refresh_lease_until = NULL WHERE id = $1 AND refresh_lease_until = $2', [id, until]);
  }

  async setSecretBox(id: number, box: Buffer | null): Promise<void> {
    await this.db.query('UPDATE accounts SET secret_box = $1 WHERE id = $2', [box, id]);
  }

  async setPrimary(id: number, u: PrimaryUpdate): Promise<void> {
    await this.db.query(
      `UPDATE accounts SET primary_hash = $1, primary_salt = $2, dek_primary = $3, secret_box = $4, primary_changed_at = $5 WHERE id = $6`,
      [u.primaryHash, u.primarySalt, u.dekPrimary, u.secretBox, u.now, id],
    );
  }

  async replacePrimaryHash(id: number, expected: string, replacement: string): Promise<boolean> {
    const r = await this.db.query('UPDATE accounts SET primary_hash = $1 WHERE id = $2 AND primary_hash = $3', [replacement, id, expected]);
    return (r.rowCount ?? 0) > 0;
  }

  async setUpstream(id: number, u: UpstreamUpdate): Promise<void> {
    await this.db.query(
      `UPDATE accounts SET upstream_mode = $1, upstream_user = $2, primary_salt = $3, dek_primary = $4, secret_box = $5,
         oauth2_provider = $6, upstream_status = 'unknown', upstream_status_at = $7 WHERE id = $8`,
      [u.upstreamMode satisfies UpstreamMode, u.upstreamUser, u.primarySalt, u.dekPrimary, u.secretBox, u.oauth2Provider ?? null, u.now, id],
    );
  }

  /**
   * One conditional UPDATE: unlike SQLite, an UPDATE that matches no row takes no table-wide lock
   * here, so the read SQLite does first would only add a round trip.
   */
  async setUpstreamStatus(id: number, status: UpstreamStatus, now: number): Promise<boolean> {
    const r = await this.db.query('UPDATE accounts SET upstream_status = $1, upstream_status_at = $2 WHERE id = $3 AND upstream_status <> $1', [status, now, id]);
    return (r.rowCount ?? 0) > 0;
  }

  async upstreamStatus(id: number): Promise<UpstreamStatus | undefined> {
    return (await this.db.query<{ status: UpstreamStatus }>('SELECT upstream_status AS status FROM accounts WHERE id = $1', [id])).rows[0]?.status;
  }

  async remove(id: number): Promise<boolean> {
    return ((await this.db.query('DELETE FROM accounts WHERE id = $1', [id])).rowCount ?? 0) > 0;
  }
}
