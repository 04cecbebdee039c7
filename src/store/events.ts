/**
 * The append-only history: who did what, when, from where. Never holds a secret. Rows are never
 * changed; the only deletion is retention by age (`history.keepDays`), oldest first.
 */
import type { Db } from './database.js';
import type { EventRow, EventType } from './types.js';

export interface NewEvent {
  type: EventType;
  at: number;
  accountId?: number | null;
  login?: string | null;
  passwordId?: string | null;
  protocol?: string | null;
  address?: string | null;
  detail?: Record<string, unknown> | null;
}

type RawEvent = Omit<EventRow, 'detail'> & { detail: string | null };

export class EventRepo {
  private readonly insertStmt;
  private readonly byAccountStmt;
  private readonly pageStmt;
  private readonly pruneStmt;

  constructor(db: Db) {
    this.insertStmt = db.prepare(
      `INSERT INTO events (at, type, account_id, login, password_id, protocol, address, detail)
       VALUES (@at, @type, @accountId, @login, @passwordId, @protocol, @address, @detail)`,
    );
    this.byAccountStmt = db.prepare<[number, number], RawEvent>(
      `SELECT id, at, type, account_id AS accountId, login, password_id AS passwordId, protocol, address, detail
       FROM events WHERE account_id = ? ORDER BY at DESC, id DESC LIMIT ?`,
    );
    this.pageStmt = db.prepare<[number, number, number], RawEvent>(
      `SELECT id, at, type, account_id AS accountId, login, password_id AS passwordId, protocol, address, detail
       FROM events WHERE account_id = ? ORDER BY at DESC, id DESC LIMIT ? OFFSET ?`,
    );
    this.pruneStmt = db.prepare<[number, number]>(
      `DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < ? ORDER BY at LIMIT ?)`,
    );
  }

  /**
   * Deletes at most `limit` events older than `before` (oldest first) and says how many went.
   * Callers loop in batches so that the write lock is never held for long.
   */
  pruneBefore(before: number, limit: number): number {
    return this.pruneStmt.run(before, limit).changes;
  }

  append(e: NewEvent): void {
    this.insertStmt.run({
      at: e.at,
      type: e.type,
      accountId: e.accountId ?? null,
      login: e.login ?? null,
      passwordId: e.passwordId ?? null,
      protocol: e.protocol ?? null,
      address: e.address ?? null,
      detail: e.detail ? JSON.stringify(e.detail) : null,
    });
  }

  listForAccount(accountId: number, limit = 200): EventRow[] {
    return this.byAccountStmt.all(accountId, limit).map(parseDetail);
  }

  /** Newest first, `limit` events after skipping `offset` (the account page's history). */
  listPage(accountId: number, limit: number, offset: number): EventRow[] {
    return this.pageStmt.all(accountId, limit, offset).map(parseDetail);
  }
}

function parseDetail(r: RawEvent): EventRow {
  return { ...r, detail: r.detail ? (JSON.parse(r.detail) as Record<string, unknown>) : null };
}
