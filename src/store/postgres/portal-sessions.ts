/** Account-page sessions on PostgreSQL: the statements of src/store/portal-sessions.ts, one for one. */
import type { Async } from '../api.js';
import type { NewPortalSession, PortalSessionRepo } from '../portal-sessions.js';
import type { PortalSessionRow, PortalStage, WebAuthnPurpose } from '../types.js';
import type { Queryable } from './queryable.js';

const COLUMNS = `id, account_id AS "accountId", stage, created_at AS "createdAt", seen_at AS "seenAt", password_at AS "passwordAt",
  primary_changed_at AS "primaryChangedAt", code_failures AS "codeFailures", pending_totp_box AS "pendingTotpBox",
  recent_auth_box AS "recentAuthBox", address, browser, ended_at AS "endedAt"`;

export class PgPortalSessionRepo implements Async<PortalSessionRepo> {
  constructor(private readonly db: Queryable) {}

  async insert(s: NewPortalSession): Promise<number> {
    const { rows } = await this.db.query<{ id: number }>(
      `INSERT INTO portal_sessions (token_digest, account_id, stage, created_at, seen_at, password_at, primary_changed_at, address, browser)
       VALUES ($1, $2, $3, $4, $4, $4, $5, $6, $7) RETURNING id`,
      [s.tokenDigest, s.accountId, s.stage, s.at, s.primaryChangedAt, s.address, s.browser],
    );
    return rows[0]!.id;
  }

  async findByDigest(tokenDigest: Buffer): Promise<PortalSessionRow | undefined> {
    return (await this.db.query<PortalSessionRow>(`SELECT ${COLUMNS} FROM portal_sessions WHERE token_digest = $1`, [tokenDigest])).rows[0];
  }

  async touch(id: number, at: number): Promise<void> {
    await this.db.query('UPDATE portal_sessions SET seen_at = $1 WHERE id = $2 AND ended_at IS NULL', [at, id]);
  }

  async setStage(id: number, stage: PortalStage): Promise<void> {
    await this.db.query('UPDATE portal_sessions SET stage = $1, code_failures = 0, pending_totp_box = NULL WHERE id = $2 AND ended_at IS NULL', [stage, id]);
  }

  async passwordTyped(id: number, at: number, recentAuthBox: Buffer): Promise<void> {
    await this.db.query('UPDATE portal_sessions SET password_at = $1, recent_auth_box = $2 WHERE id = $3 AND ended_at IS NULL', [at, recentAuthBox, id]);
  }

  async setRecentAuth(id: number, box: Buffer): Promise<void> {
    await this.db.query('UPDATE portal_sessions SET recent_auth_box = $1 WHERE id = $2 AND ended_at IS NULL', [box, id]);
  }

  async dropRecentAuth(id: number, passwordAt: number): Promise<void> {
    await this.db.query('UPDATE portal_sessions SET recent_auth_box = NULL WHERE id = $1 AND password_at = $2', [id, passwordAt]);
  }

  async setConnect(id: number, box: Buffer): Promise<void> {
    await this.db.query('UPDATE portal_sessions SET connect_box = $1 WHERE id = $2 AND ended_at IS NULL', [box, id]);
  }

  async takeConnect(id: number): Promise<Buffer | null> {
    // RETURNING sees the row as updated (a NULL), so the box comes from the locked row read by the
    // subquery. A second taker waits on FOR UPDATE, then finds the committed NULL (READ COMMITTED
    // re-checks the WHERE on the new row version) and takes nothing: single use across instances.
    const { rows } = await this.db.query<{ box: Buffer }>(
      `UPDATE portal_sessions p SET connect_box = NULL
         FROM (SELECT id, connect_box FROM portal_sessions WHERE id = $1 AND ended_at IS NULL AND connect_box IS NOT NULL FOR UPDATE) taken
        WHERE p.id = taken.id RETURNING taken.connect_box AS box`,
      [id],
    );
    return rows[0]?.box ?? null;
  }

  async forgetStaleBoxes(passwordBefore: number, seenBefore: number): Promise<number> {
    const r = await this.db.query(
      `UPDATE portal_sessions SET recent_auth_box = CASE WHEN password_at < $1 THEN NULL ELSE recent_auth_box END,
         connect_box = CASE WHEN seen_at < $2 THEN NULL ELSE connect_box END
       WHERE (recent_auth_box IS NOT NULL AND password_at < $1) OR (connect_box IS NOT NULL AND seen_at < $2)`,
      [passwordBefore, seenBefore],
    );
    return r.rowCount ?? 0;
  }

  async codeFailed(id: number): Promise<number> {
    const { rows } = await this.db.query<{ n: number }>('UPDATE portal_sessions SET code_failures = code_failures + 1 WHERE id = $1 RETURNING code_failures AS n', [id]);
    return rows[0]?.n ?? 0;
  }

  async setPendingTotp(id: number, box: Buffer | null): Promise<void> {
    await this.db.query('UPDATE portal_sessions SET pending_totp_box = $1 WHERE id = $2 AND ended_at IS NULL', [box, id]);
  }

  async rotateToken(id: number, tokenDigest: Buffer, recentAuthBox: Buffer | null): Promise<boolean> {
    const r = await this.db.query('UPDATE portal_sessions SET token_digest = $1, recent_auth_box = $2, connect_box = NULL WHERE id = $3 AND ended_at IS NULL', [tokenDigest, recentAuthBox, id]);
    return r.rowCount === 1;
  }

  async setChallenge(id: number, challenge: string, purpose: WebAuthnPurpose, until: number): Promise<void> {
    await this.db.query(
      'UPDATE portal_sessions SET webauthn_challenge = $2, webauthn_purpose = $3, webauthn_until = $4 WHERE id = $1 AND ended_at IS NULL',
      [id, challenge, purpose, until],
    );
  }

  async takeChallenge(id: number, challenge: string, purpose: WebAuthnPurpose, now: number): Promise<boolean> {
    const r = await this.db.query(
      `UPDATE portal_sessions SET webauthn_challenge = NULL, webauthn_purpose = NULL, webauthn_until = NULL
        WHERE id = $1 AND ended_at IS NULL AND webauthn_challenge = $2 AND webauthn_purpose = $3 AND webauthn_until > $4`,
      [id, challenge, purpose, now],
    );
    return r.rowCount === 1;
  }

  async end(id: number, at: number): Promise<void> {
    await this.db.query('UPDATE portal_sessions SET ended_at = $1, recent_auth_box = NULL, connect_box = NULL WHERE id = $2 AND ended_at IS NULL', [at, id]);
  }

  async endAll(accountId: number, at: number): Promise<number> {
    return (await this.db.query('UPDATE portal_sessions SET ended_at = $1, recent_auth_box = NULL, connect_box = NULL WHERE account_id = $2 AND ended_at IS NULL', [at, accountId])).rowCount ?? 0;
  }

  async prune(before: number, createdBefore: number): Promise<number> {
    const r = await this.db.query('DELETE FROM portal_sessions WHERE (ended_at IS NOT NULL AND ended_at < $1) OR created_at < $2', [before, createdBefore]);
    return r.rowCount ?? 0;
  }
}
