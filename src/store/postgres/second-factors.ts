/**
 * Second factors on PostgreSQL: the statements of src/store/second-factors.ts, one for one. The
 * single-use rules are the UPDATEs' conditions, so two instances racing with one code cannot both
 * be accepted: the second UPDATE waits for the first's row lock, then re-checks its condition
 * against the committed row (READ COMMITTED's rule for UPDATE) and changes nothing.
 */
import type { Async } from '../api.js';
import type { SecondFactorRepo } from '../second-factors.js';
import type { SecondFactorRow } from '../types.js';
import type { Queryable } from './queryable.js';

export class PgSecondFactorRepo implements Async<SecondFactorRepo> {
  constructor(private readonly db: Queryable) {}

  async get(accountId: number): Promise<SecondFactorRow | undefined> {
    const { rows } = await this.db.query<SecondFactorRow>(
      `SELECT account_id AS "accountId", totp_box AS "totpBox", last_step AS "lastStep", enrolled_at AS "enrolledAt" FROM second_factors WHERE account_id = $1`,
      [accountId],
    );
    return rows[0];
  }

  /** Replaces the account's TOTP key and, unless `codeDigests` is null, its recovery codes (call inside a transaction). */
  async enrol(accountId: number, totpBox: Buffer, lastStep: number, codeDigests: readonly Buffer[] | null, at: number): Promise<void> {
    await this.db.query(
      `INSERT INTO second_factors (account_id, totp_box, last_step, enrolled_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (account_id) DO UPDATE SET totp_box = excluded.totp_box, last_step = excluded.last_step, enrolled_at = excluded.enrolled_at`,
      [accountId, totpBox, lastStep, at],
    );
    if (codeDigests) await this.setRecoveryCodes(accountId, codeDigests);
  }

  /** Replaces the account's recovery codes (call inside a transaction). */
  async setRecoveryCodes(accountId: number, codeDigests: readonly Buffer[]): Promise<void> {
    await this.db.query('DELETE FROM recovery_codes WHERE account_id = $1', [accountId]);
    // One statement for all codes; ORDINALITY keeps their ids in the order given, as SQLite's loop does.
    if (codeDigests.length > 0) {
      await this.db.query(
        'INSERT INTO recovery_codes (account_id, digest) SELECT $1, d FROM unnest($2::bytea[]) WITH ORDINALITY AS c(d, n) ORDER BY n',
        [accountId, codeDigests],
      );
    }
  }

  async acceptStep(accountId: number, step: number): Promise<boolean> {
    const r = await this.db.query('UPDATE second_factors SET last_step = $1 WHERE account_id = $2 AND (last_step IS NULL OR last_step < $1)', [step, accountId]);
    return r.rowCount === 1;
  }

  async useRecoveryCode(accountId: number, digest: Buffer, at: number): Promise<boolean> {
    const r = await this.db.query('UPDATE recovery_codes SET used_at = $1 WHERE account_id = $2 AND digest = $3 AND used_at IS NULL', [at, accountId, digest]);
    return r.rowCount === 1;
  }

  async recoveryCodesLeft(accountId: number): Promise<number> {
    return (await this.db.query<{ n: number }>('SELECT count(*) AS n FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL', [accountId])).rows[0]!.n;
  }

  async reset(accountId: number): Promise<boolean> {
    await this.db.query('DELETE FROM recovery_codes WHERE account_id = $1', [accountId]);
    return (await this.db.query('DELETE FROM second_factors WHERE account_id = $1', [accountId])).rowCount === 1;
  }
}
