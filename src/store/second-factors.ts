/**
 * Prepared statements for second factors (migration 5). The single-use rules are enforced by the
 * UPDATEs themselves (`last_step < ?`, `used_at IS NULL`): the row that changes is the one check,
 * so two requests (or two postern instances) racing with one code cannot both be accepted.
 */
import type { Db } from './database.js';
import type { SecondFactorRow } from './types.js';

export class SecondFactorRepo {
  private readonly getStmt;
  private readonly upsertStmt;
  private readonly stepStmt;
  private readonly deleteStmt;
  private readonly deleteCodesStmt;
  private readonly insertCodeStmt;
  private readonly useCodeStmt;
  private readonly codesLeftStmt;

  constructor(db: Db) {
    this.getStmt = db.prepare<[number], SecondFactorRow>(
      `SELECT account_id AS accountId, totp_box AS totpBox, last_step AS lastStep, enrolled_at AS enrolledAt FROM second_factors WHERE account_id = ?`,
    );
    this.upsertStmt = db.prepare(
      `INSERT INTO second_factors (account_id, totp_box, last_step, enrolled_at) VALUES (@accountId, @totpBox, @lastStep, @at)
       ON CONFLICT (account_id) DO UPDATE SET totp_box = excluded.totp_box, last_step = excluded.last_step, enrolled_at = excluded.enrolled_at`,
    );
    this.stepStmt = db.prepare(`UPDATE second_factors SET last_step = ? WHERE account_id = ? AND (last_step IS NULL OR last_step < ?)`);
    this.deleteStmt = db.prepare(`DELETE FROM second_factors WHERE account_id = ?`);
    this.deleteCodesStmt = db.prepare(`DELETE FROM recovery_codes WHERE account_id = ?`);
    this.insertCodeStmt = db.prepare(`INSERT INTO recovery_codes (account_id, digest) VALUES (?, ?)`);
    this.useCodeStmt = db.prepare(`UPDATE recovery_codes SET used_at = ? WHERE account_id = ? AND digest = ? AND used_at IS NULL`);
    this.codesLeftStmt = db.prepare<[number], { n: number }>(`SELECT COUNT(*) AS n FROM recovery_codes WHERE account_id = ? AND used_at IS NULL`);
  }

  get(accountId: number): SecondFactorRow | undefined {
    return this.getStmt.get(accountId);
  }

  /**
   * Replaces the account's TOTP key and, unless `codeDigests` is null (an app added beside a
   * passkey keeps the codes issued with it), its recovery codes. Call inside a transaction.
   */
  enrol(accountId: number, totpBox: Buffer, lastStep: number, codeDigests: readonly Buffer[] | null, at: number): void {
    this.upsertStmt.run({ accountId, totpBox, lastStep, at });
    if (codeDigests) this.setRecoveryCodes(accountId, codeDigests);
  }

  /** Replaces the account's recovery codes (a passkey as the first factor; call inside a transaction). */
  setRecoveryCodes(accountId: number, codeDigests: readonly Buffer[]): void {
    this.deleteCodesStmt.run(accountId);
    for (const digest of codeDigests) this.insertCodeStmt.run(accountId, digest);
  }

  /** True when `step` is later than every step accepted before, and is now the last accepted one. */
  acceptStep(accountId: number, step: number): boolean {
    return this.stepStmt.run(step, accountId, step).changes === 1;
  }

  /** True when the code was unused; it is used from now on. */
  useRecoveryCode(accountId: number, digest: Buffer, at: number): boolean {
    return this.useCodeStmt.run(at, accountId, digest).changes === 1;
  }

  recoveryCodesLeft(accountId: number): number {
    return this.codesLeftStmt.get(accountId)!.n;
  }

  /** Removes every second factor of the account; true when there was one. */
  reset(accountId: number): boolean {
    this.deleteCodesStmt.run(accountId);
    return this.deleteStmt.run(accountId).changes === 1;
  }
}
