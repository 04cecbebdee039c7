/**
 * Prepared statements for passkeys (migration 8). A signature count is accepted by the UPDATE that
 * stores it (`counter < new`, or both zero for authenticators that keep no count, as passkeys
 * synced between devices do): the row that changes is the check, so a replayed or cloned
 * authenticator's count, or two instances racing with one assertion, cannot both pass.
 */
import type { Db } from './database.js';
import type { PasskeyRow } from './types.js';

const COLUMNS = `id, account_id AS accountId, credential_id AS credentialId, public_key AS publicKey, counter, transports,
  name, created_at AS createdAt, last_used_at AS lastUsedAt`;

type RawPasskey = Omit<PasskeyRow, 'transports'> & { transports: string };

export interface NewPasskey {
  accountId: number;
  credentialId: Buffer;
  publicKey: Buffer;
  counter: number;
  transports: readonly string[];
  name: string;
  at: number;
}

function row(raw: RawPasskey): PasskeyRow {
  return { ...raw, transports: raw.transports ? raw.transports.split(',') : [] };
}

export class PasskeyRepo {
  private readonly listStmt;
  private readonly byCredentialStmt;
  private readonly insertStmt;
  private readonly useStmt;
  private readonly removeStmt;
  private readonly removeAllStmt;
  private readonly countStmt;

  constructor(db: Db) {
    this.listStmt = db.prepare<[number], RawPasskey>(`SELECT ${COLUMNS} FROM passkeys WHERE account_id = ? ORDER BY created_at, id`);
    this.byCredentialStmt = db.prepare<[Buffer], RawPasskey>(`SELECT ${COLUMNS} FROM passkeys WHERE credential_id = ?`);
    this.insertStmt = db.prepare(
      `INSERT INTO passkeys (account_id, credential_id, public_key, counter, transports, name, created_at)
       VALUES (@accountId, @credentialId, @publicKey, @counter, @transports, @name, @at)`,
    );
    this.useStmt = db.prepare(
      `UPDATE passkeys SET counter = @counter, last_used_at = @at
        WHERE id = @id AND (counter < @counter OR (counter = 0 AND @counter = 0))`,
    );
    // Never the account's last second factor: removing it would turn two-factor authentication off
    // (the page requires it before any app-specific password); the condition is the DELETE's own,
    // so two removals racing for the last two passkeys cannot both succeed.
    this.removeStmt = db.prepare<{ id: number; accountId: number }>(
      `DELETE FROM passkeys WHERE id = @id AND account_id = @accountId
         AND (EXISTS (SELECT 1 FROM second_factors WHERE account_id = @accountId)
              OR (SELECT COUNT(*) FROM passkeys WHERE account_id = @accountId) > 1)`,
    );
    this.removeAllStmt = db.prepare(`DELETE FROM passkeys WHERE account_id = ?`);
    this.countStmt = db.prepare<[number], { n: number }>(`SELECT COUNT(*) AS n FROM passkeys WHERE account_id = ?`);
  }

  listForAccount(accountId: number): PasskeyRow[] {
    return this.listStmt.all(accountId).map(row);
  }

  findByCredentialId(credentialId: Buffer): PasskeyRow | undefined {
    const raw = this.byCredentialStmt.get(credentialId);
    return raw && row(raw);
  }

  insert(p: NewPasskey): number {
    return Number(this.insertStmt.run({ ...p, transports: p.transports.join(',') }).lastInsertRowid);
  }

  /** True when `counter` moves the stored count forward (or both are zero); it is stored with the time of use. */
  recordUse(id: number, counter: number, at: number): boolean {
    return this.useStmt.run({ id, counter, at }).changes === 1;
  }

  /** True when the account had this passkey. */
  /** True when removed: the account had it, and it was not the account's last second factor. */
  remove(accountId: number, id: number): boolean {
    return this.removeStmt.run({ id, accountId }).changes === 1;
  }

  /** Removes every passkey of the account (the admin's reset); returns how many. */
  removeAll(accountId: number): number {
    return this.removeAllStmt.run(accountId).changes;
  }

  count(accountId: number): number {
    return this.countStmt.get(accountId)!.n;
  }
}
