/**
 * Prepared statements for account-page sessions (migration 5). Looked up by the SHA-256 of the
 * cookie value, so that a read of the database (a backup, a stolen copy) yields no usable cookie.
 * Rows are ended, never updated back to life; the rules (idle, absolute, primary change) live in
 * src/portal/sessions.ts. The two sealed boxes (migration 11: recent-auth password, pending
 * Connect request) are opaque here; ending a session, or every session of an account, NULLs them.
 */
import type { Db } from './database.js';
import type { PortalSessionRow, PortalStage, WebAuthnPurpose } from './types.js';

const COLUMNS = `id, account_id AS accountId, stage, created_at AS createdAt, seen_at AS seenAt, password_at AS passwordAt,
  primary_changed_at AS primaryChangedAt, code_failures AS codeFailures, pending_totp_box AS pendingTotpBox,
  recent_auth_box AS recentAuthBox, address, browser, ended_at AS endedAt`;

export interface NewPortalSession {
  tokenDigest: Buffer;
  accountId: number;
  stage: PortalStage;
  at: number;
  primaryChangedAt: number;
  address: string;
  browser: string;
}

export class PortalSessionRepo {
  private readonly insertStmt;
  private readonly byDigestStmt;
  private readonly seenStmt;
  private readonly stageStmt;
  private readonly passwordStmt;
  private readonly failureStmt;
  private readonly pendingStmt;
  private readonly endStmt;
  private readonly endAllStmt;
  private readonly pruneStmt;
  private readonly tokenStmt;
  private readonly challengeStmt;
  private readonly takeChallengeStmt;
  private readonly recentAuthStmt;
  private readonly dropRecentAuthStmt;
  private readonly connectStmt;
  private readonly takeConnectTx;
  private readonly staleBoxesStmt;

  constructor(db: Db) {
    this.insertStmt = db.prepare(
      `INSERT INTO portal_sessions (token_digest, account_id, stage, created_at, seen_at, password_at, primary_changed_at, address, browser)
       VALUES (@tokenDigest, @accountId, @stage, @at, @at, @at, @primaryChangedAt, @address, @browser)`,
    );
    this.byDigestStmt = db.prepare<[Buffer], PortalSessionRow>(`SELECT ${COLUMNS} FROM portal_sessions WHERE token_digest = ?`);
    this.seenStmt = db.prepare(`UPDATE portal_sessions SET seen_at = ? WHERE id = ? AND ended_at IS NULL`);
    this.stageStmt = db.prepare(`UPDATE portal_sessions SET stage = ?, code_failures = 0, pending_totp_box = NULL WHERE id = ? AND ended_at IS NULL`);
    this.passwordStmt = db.prepare(`UPDATE portal_sessions SET password_at = ?, recent_auth_box = ? WHERE id = ? AND ended_at IS NULL`);
    this.failureStmt = db.prepare<[number]>(`UPDATE portal_sessions SET code_failures = code_failures + 1 WHERE id = ? RETURNING code_failures AS n`);
    this.pendingStmt = db.prepare(`UPDATE portal_sessions SET pending_totp_box = ? WHERE id = ? AND ended_at IS NULL`);
    this.endStmt = db.prepare(`UPDATE portal_sessions SET ended_at = ?, recent_auth_box = NULL, connect_box = NULL WHERE id = ? AND ended_at IS NULL`);
    this.endAllStmt = db.prepare(`UPDATE portal_sessions SET ended_at = ?, recent_auth_box = NULL, connect_box = NULL WHERE account_id = ? AND ended_at IS NULL`);
    this.tokenStmt = db.prepare(`UPDATE portal_sessions SET token_digest = ?, recent_auth_box = ?, connect_box = NULL WHERE id = ? AND ended_at IS NULL`);
    this.challengeStmt = db.prepare(
      `UPDATE portal_sessions SET webauthn_challenge = @challenge, webauthn_purpose = @purpose, webauthn_until = @until WHERE id = @id AND ended_at IS NULL`,
    );
    this.takeChallengeStmt = db.prepare(
      `UPDATE portal_sessions SET webauthn_challenge = NULL, webauthn_purpose = NULL, webauthn_until = NULL
        WHERE id = @id AND ended_at IS NULL AND webauthn_challenge = @challenge AND webauthn_purpose = @purpose AND webauthn_until > @now`,
    );
    this.recentAuthStmt = db.prepare(`UPDATE portal_sessions SET recent_auth_box = ? WHERE id = ? AND ended_at IS NULL`);
    this.dropRecentAuthStmt = db.prepare(`UPDATE portal_sessions SET recent_auth_box = NULL WHERE id = ? AND password_at = ?`);
    this.connectStmt = db.prepare(`UPDATE portal_sessions SET connect_box = ? WHERE id = ? AND ended_at IS NULL`);
    // RETURNING gives the row as updated (a NULL here), so the box is read first; IMMEDIATE takes
    // the write lock before the read, so no other connection (instance) can take it in between.
    const readConnect = db.prepare<[number], Buffer>(`SELECT connect_box FROM portal_sessions WHERE id = ? AND ended_at IS NULL AND connect_box IS NOT NULL`).pluck();
    const clearConnect = db.prepare(`UPDATE portal_sessions SET connect_box = NULL WHERE id = ?`);
    const take = db.transaction((id: number): Buffer | null => {
      const box = readConnect.get(id);
      if (box === undefined) return null;
      clearConnect.run(id);
      return box;
    });
    this.takeConnectTx = (id: number) => take.immediate(id);
    this.staleBoxesStmt = db.prepare(
      `UPDATE portal_sessions SET recent_auth_box = CASE WHEN password_at < @passwordBefore THEN NULL ELSE recent_auth_box END,
         connect_box = CASE WHEN seen_at < @seenBefore THEN NULL ELSE connect_box END
       WHERE (recent_auth_box IS NOT NULL AND password_at < @passwordBefore) OR (connect_box IS NOT NULL AND seen_at < @seenBefore)`,
    );
    this.pruneStmt = db.prepare(`DELETE FROM portal_sessions WHERE (ended_at IS NOT NULL AND ended_at < @before) OR created_at < @createdBefore`);
  }

  insert(s: NewPortalSession): number {
    return Number(this.insertStmt.run(s).lastInsertRowid);
  }

  findByDigest(tokenDigest: Buffer): PortalSessionRow | undefined {
    return this.byDigestStmt.get(tokenDigest);
  }

  touch(id: number, at: number): void {
    this.seenStmt.run(at, id);
  }

  setStage(id: number, stage: PortalStage): void {
    this.stageStmt.run(stage, id);
  }

  /** The primary password was typed again at `at`: the window restarts, with the password sealed anew. */
  passwordTyped(id: number, at: number, recentAuthBox: Buffer): void {
    this.passwordStmt.run(at, recentAuthBox, id);
  }

  /** The sealed recent-auth password (at sign-in: the box names the row, so it follows the INSERT). */
  setRecentAuth(id: number, box: Buffer): void {
    this.recentAuthStmt.run(box, id);
  }

  /**
   * Forgets the recent-auth password found past its window. Only if it is still the one typed at
   * `passwordAt`: one typed again meanwhile (on another instance) is kept.
   */
  dropRecentAuth(id: number, passwordAt: number): void {
    this.dropRecentAuthStmt.run(id, passwordAt);
  }

  /** The pending Connect request (replaces any earlier one: only the latest may come back). */
  setConnect(id: number, box: Buffer): void {
    this.connectStmt.run(box, id);
  }

  /**
   * Takes the pending Connect request: read and cleared in one write transaction (PostgreSQL: one
   * statement), so of two callbacks racing on two instances one gets the box and the other null
   * (single use across processes).
   */
  takeConnect(id: number): Buffer | null {
    return this.takeConnectTx(id);
  }

  /**
   * NULLs the recent-auth boxes typed before `passwordBefore` and the Connect boxes of sessions not
   * seen since `seenBefore` (a request started then is past its lifetime: starting it was a request).
   */
  forgetStaleBoxes(passwordBefore: number, seenBefore: number): number {
    return this.staleBoxesStmt.run({ passwordBefore, seenBefore }).changes;
  }

  /** Counts a wrong second-factor code; returns how many this session has had. */
  codeFailed(id: number): number {
    return (this.failureStmt.get(id) as { n: number } | undefined)?.n ?? 0;
  }

  setPendingTotp(id: number, box: Buffer | null): void {
    this.pendingStmt.run(box, id);
  }

  /**
   * Gives the session a new cookie digest: the old cookie value names no session from now on. The
   * boxes were sealed under the old value: the recent-auth one is replaced by `recentAuthBox` (the
   * same password sealed under the new value, or NULL) in the same UPDATE, the Connect one dropped.
   */
  rotateToken(id: number, tokenDigest: Buffer, recentAuthBox: Buffer | null): boolean {
    return this.tokenStmt.run(tokenDigest, recentAuthBox, id).changes === 1;
  }

  /** The WebAuthn challenge this session must answer next (replaces any earlier one). */
  setChallenge(id: number, challenge: string, purpose: WebAuthnPurpose, until: number): void {
    this.challengeStmt.run({ id, challenge, purpose, until });
  }

  /**
   * True when `challenge` is the session's current one, for `purpose`, and not expired; it is
   * cleared by the same UPDATE, so a challenge is answered at most once.
   */
  takeChallenge(id: number, challenge: string, purpose: WebAuthnPurpose, now: number): boolean {
    return this.takeChallengeStmt.run({ id, challenge, purpose, now }).changes === 1;
  }

  end(id: number, at: number): void {
    this.endStmt.run(at, id);
  }

  /** Ends every live session of the account (admin, second-factor reset); returns how many. */
  endAll(accountId: number, at: number): number {
    return this.endAllStmt.run(at, accountId).changes;
  }

  /** Deletes rows ended before `before`, and rows created before `createdBefore` (past any absolute limit). */
  prune(before: number, createdBefore: number): number {
    return this.pruneStmt.run({ before, createdBefore }).changes;
  }
}
