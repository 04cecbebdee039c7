/** The append-only history on PostgreSQL: the statements of src/store/events.ts, one for one. */
import type { Async } from '../api.js';
import type { EventRepo, NewEvent } from '../events.js';
import type { EventRow } from '../types.js';
import type { Queryable } from './queryable.js';

const COLUMNS = `id, at, type, account_id AS "accountId", login, password_id AS "passwordId", protocol, address, detail`;

type RawEvent = Omit<EventRow, 'detail'> & { detail: string | null };

function parseDetail(r: RawEvent): EventRow {
  return { ...r, detail: r.detail ? (JSON.parse(r.detail) as Record<string, unknown>) : null };
}

export class PgEventRepo implements Async<EventRepo> {
  constructor(private readonly db: Queryable) {}

  async pruneBefore(before: number, limit: number): Promise<number> {
    const r = await this.db.query('DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < $1 ORDER BY at LIMIT $2)', [before, limit]);
    return r.rowCount ?? 0;
  }

  async append(e: NewEvent): Promise<void> {
    await this.db.query(
      `INSERT INTO events (at, type, account_id, login, password_id, protocol, address, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [e.at, e.type, e.accountId ?? null, e.login ?? null, e.passwordId ?? null, e.protocol ?? null, e.address ?? null, e.detail ? JSON.stringify(e.detail) : null],
    );
  }

  async listForAccount(accountId: number, limit = 200): Promise<EventRow[]> {
    const { rows } = await this.db.query<RawEvent>(`SELECT ${COLUMNS} FROM events WHERE account_id = $1 ORDER BY at DESC, id DESC LIMIT $2`, [accountId, limit]);
    return rows.map(parseDetail);
  }

  async listPage(accountId: number, limit: number, offset: number): Promise<EventRow[]> {
    const { rows } = await this.db.query<RawEvent>(
      `SELECT ${COLUMNS} FROM events WHERE account_id = $1 ORDER BY at DESC, id DESC LIMIT $2 OFFSET $3`,
      [accountId, limit, offset],
    );
    return rows.map(parseDetail);
  }
}
