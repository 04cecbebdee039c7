/** Passkeys on PostgreSQL: the statements of src/store/passkeys.ts, one for one (the counter check is the UPDATE). */
import type { Async } from '../api.js';
import type { NewPasskey, PasskeyRepo } from '../passkeys.js';
import type { PasskeyRow } from '../types.js';
import type { Queryable } from './queryable.js';

const COLUMNS = `id, account_id AS "accountId", credential_id AS "credentialId", public_key AS "publicKey", counter, transports,
  name, created_at AS "createdAt", last_used_at AS "lastUsedAt"`;

type RawPasskey = Omit<PasskeyRow, 'transports'> & { transports: string };

function row(raw: RawPasskey): PasskeyRow {
  return { ...raw, transports: raw.transports ? raw.transports.split(',') : [] };
}

export class PgPasskeyRepo implements Async<PasskeyRepo> {
  constructor(private readonly db: Queryable) {}

  async listForAccount(accountId: number): Promise<PasskeyRow[]> {
    return (await this.db.query<RawPasskey>(`SELECT ${COLUMNS} FROM passkeys WHERE account_id = $1 ORDER BY created_at, id`, [accountId])).rows.map(row);
  }

  async findByCredentialId(credentialId: Buffer): Promise<PasskeyRow | undefined> {
    const raw = (await this.db.query<RawPasskey>(`SELECT ${COLUMNS} FROM passkeys WHERE credential_id = $1`, [credentialId])).rows[0];
    return raw && row(raw);
  }

  async insert(p: NewPasskey): Promise<number> {
    const { rows } = await this.db.query<{ id: number }>(
      `INSERT INTO passkeys (account_id, credential_id, public_key, counter, transports, name, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
      [p.accountId, p.credentialId, p.publicKey, p.counter, p.transports.join(','), p.name, p.at],
    );
    return rows[0]!.id;
  }

  async recordUse(id: number, counter: number, at: number): Promise<boolean> {
    const r = await this.db.query(
      `UPDATE passkeys SET counter = $2, last_used_at = $3 WHERE id = $1 AND (counter < $2 OR (counter = 0 AND $2 = 0))`,
      [id, counter, at],
    );
    return r.rowCount === 1;
  }

  /**
   * Never the last second factor (see the SQLite statement). READ COMMITTED gives each statement
   * its own snapshot, so the account row is locked first (call inside a transaction): a second
   * removal racing for the last two passkeys waits, then counts what the first left.
   */
  async remove(accountId: number, id: number): Promise<boolean> {
    await this.db.query('SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE', [accountId]);
    return (await this.db.query(
      `DELETE FROM passkeys WHERE id = $1 AND account_id = $2
         AND (EXISTS (SELECT 1 FROM second_factors WHERE account_id = $2) OR (SELECT count(*) FROM passkeys WHERE account_id = $2) > 1)`,
      [id, accountId],
    )).rowCount === 1;
  }

  async removeAll(accountId: number): Promise<number> {
    return (await this.db.query('DELETE FROM passkeys WHERE account_id = $1', [accountId])).rowCount ?? 0;
  }

  async count(accountId: number): Promise<number> {
    return (await this.db.query<{ n: number }>('SELECT count(*)::int AS n FROM passkeys WHERE account_id = $1', [accountId])).rows[0]!.n;
  }
}
