/** Prepared statements for the accounts table. No rules here: those live in src/accounts/. */
import type { Db } from './database.js';
import type { AccountRow, UpstreamMode, UpstreamStatus } from './types.js';

const COLUMNS = `id, login, upstream_mode AS upstreamMode, upstream_user AS upstreamUser,
  primary_hash AS primaryHash, primary_salt AS primarySalt, dek_primary AS dekPrimary,
  secret_box AS secretBox, upstream_status AS upstreamStatus, upstream_status_at AS upstreamStatusAt,
  created_at AS createdAt, primary_changed_at AS primaryChangedAt, oauth2_provider AS oauth2Provider`;

export type NewAccount = Pick<AccountRow, 'login' | 'upstreamMode' | 'upstreamUser' | 'primaryHash' | 'primarySalt' | 'dekPrimary'> & {
  now: number;
  oauth2Provider?: string | null;
};

export interface PrimaryUpdate {
  primaryHash: string;
  primarySalt: Buffer | null;
  dekPrimary: Buffer | null;
  secretBox: Buffer | null;
  now: number;
}

export class AccountRepo {
  private readonly byLogin;
  private readonly byId;
  private readonly all;
  private readonly insertStmt;
  private readonly secretStmt;
  private readonly swapSecretStmt;
  private readonly secretReadStmt;
  private readonly primaryStmt;
  private readonly rehashStmt;
  private readonly upstreamStmt;
  private readonly statusStmt;
  private readonly statusReadStmt;
  private readonly deleteStmt;
  private readonly leaseStmt;
  private readonly unleaseStmt;

  constructor(db: Db) {
    this.byLogin = db.prepare<[string], AccountRow>(`SELECT ${COLUMNS} FROM accounts WHERE login = ?`);
    this.byId = db.prepare<[number], AccountRow>(`SELECT ${COLUMNS} FROM accounts WHERE id = ?`);
    this.all = db.prepare<[], AccountRow>(`SELECT ${COLUMNS} FROM accounts ORDER BY login`);
    this.insertStmt = db.prepare(
      `INSERT INTO accounts (login, upstream_mode, upstream_user, primary_hash, primary_salt, dek_primary, created_at, primary_changed_at, oauth2_provider)
       VALUES (@login, @upstreamMode, @upstreamUser, @primaryHash, @primarySalt, @dekPrimary, @now, @now, @oauth2Provider)`,
    );
    this.secretStmt = db.prepare(`UPDATE accounts SET secret_box = ? WHERE id = ?`);
    this.swapSecretStmt = db.prepare(`UPDATE accounts SET secret_box = ? WHERE id = ? AND secret_box = ?`);
    this.secretReadStmt = db.prepare<[number], { box: Buffer | null }>(`SELECT secret_box AS box FROM accounts WHERE id = ?`);
    this.primaryStmt = db.prepare(
      `UPDATE accounts SET primary_hash = @primaryHash, primary_salt = @primarySalt, dek_primary = @dekPrimary,
         secret_box = @secretBox, primary_changed_at = @now WHERE id = @id`,
    );
    this.rehashStmt = db.prepare(`UPDATE accounts SET primary_hash = ? WHERE id = ? AND primary_hash = ?`);
    this.upstreamStmt = db.prepare(
      `UPDATE accounts SET upstream_mode = @upstreamMode, upstream_user = @upstreamUser, primary_salt = @primarySalt,
         dek_primary = @dekPrimary, secret_box = @secretBox, oauth2_provider = @oauth2Provider, upstream_status = 'unknown', upstream_status_at = @now WHERE id = @id`,
    );
    this.statusStmt = db.prepare(`UPDATE accounts SET upstream_status = ?, upstream_status_at = ? WHERE id = ? AND upstream_status != ?`);
    this.statusReadStmt = db.prepare<[number], { status: UpstreamStatus }>(`SELECT upstream_status AS status FROM accounts WHERE id = ?`);
    this.deleteStmt = db.prepare(`DELETE FROM accounts WHERE id = ?`);
    this.leaseStmt = db.prepare(`UPDATE accounts SET refresh_lease_until = @until WHERE id = @id AND (refresh_lease_until IS NULL OR refresh_lease_until <= @now)`);
    this.unleaseStmt = db.prepare(`UPDATE accounts SET refresh_lease_until = NULL WHERE id = ? AND refresh_lease_until = ?`);
  }

  findByLogin(login: string): AccountRow | undefined {
    return this.byLogin.get(login);
  }

  get(id: number): AccountRow | undefined {
    return this.byId.get(id);
  }

  list(): AccountRow[] {
    return this.all.all();
  }

  insert(account: NewAccount): number {
    return Number(this.insertStmt.run({ oauth2Provider: null, ...account }).lastInsertRowid);
  }

  /** The sealed upstream secret as it is now (another process may have replaced it since a row was read). */
  secretBox(id: number): Buffer | null | undefined {
    return this.secretReadStmt.get(id)?.box;
  }

  /**
   * Replaces the sealed secret only if it is still `expected`: a token refresh must not overwrite
   * one another process (or `postern user reauth`) committed meanwhile. Says whether it did.
   */
  swapSecretBox(id: number, expected: Buffer, replacement: Buffer): boolean {
    return this.swapSecretStmt.run(replacement, id, expected).changes > 0;
  }

  /**
   * The right to refresh this account's OAuth2 grant until `until`, for one process of all that
   * share the database: true when no other holds an unexpired lease (the UPDATE is the check).
   */
  takeRefreshLease(id: number, now: number, until: number): boolean {
    return this.leaseStmt.run({ id, now, until }).changes > 0;
  }

  /** Gives the lease back, if it is still the one taken (`until`): a lease that expired and was re-taken stays. */
  releaseRefreshLease(id: number, until: number): void {
    this.unleaseStmt.run(id, until);
  }

  setSecretBox(id: number, box: Buffer | null): void {
    this.secretStmt.run(box, id);
  }

  setPrimary(id: number, update: PrimaryUpdate): void {
    this.primaryStmt.run({ ...update, id });
  }

  /**
   * Replaces the primary-password hash by another of the same password (an upgrade of its kind or
   * cost), only if it is still `expected`: a primary-password change committed meanwhile wins.
   */
  replacePrimaryHash(id: number, expected: string, replacement: string): boolean {
    return this.rehashStmt.run(replacement, id, expected).changes > 0;
  }

  setUpstream(id: number, u: { upstreamMode: UpstreamMode; upstreamUser: string; primarySalt: Buffer | null; dekPrimary: Buffer | null; secretBox: Buffer | null; oauth2Provider?: string | null; now: number }): void {
    this.upstreamStmt.run({ oauth2Provider: null, ...u, id });
  }

  /**
   * Sets the upstream status if it differs, and says whether it changed (so callers record a flip
   * once, not per login). Reads first: an UPDATE that changes nothing still takes SQLite's write
   * lock, and this runs on every successful login.
   */
  setUpstreamStatus(id: number, status: UpstreamStatus, now: number): boolean {
    const current = this.upstreamStatus(id);
    if (current === undefined || current === status) return false;
    return this.statusStmt.run(status, now, id, status).changes > 0;
  }

  /** A read: what the proxy checks on each login before it queues a status write. */
  upstreamStatus(id: number): UpstreamStatus | undefined {
    return this.statusReadStmt.get(id)?.status;
  }

  remove(id: number): boolean {
    return this.deleteStmt.run(id).changes > 0;
  }
}
