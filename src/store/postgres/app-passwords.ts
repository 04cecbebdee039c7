/**
 * App-specific passwords on PostgreSQL: the statements of src/store/app-passwords.ts, one for one.
 * findByDigest, every login's lookup, is one statement on the UNIQUE digest index, sent as a
 * named query so each pooled connection parses and plans it once and then only binds a digest.
 */
import type { Async } from '../api.js';
import { GATE_COLUMNS, type AppPasswordRepo, type DigestMatch, type ExpiredPassword, type LoginLookup, type NewAppPassword, type PasswordChange, type PasswordState } from '../app-passwords.js';
import type { GateQuery } from '../throttle-counts.js';
import type { AppPasswordRow, Protocol, RevokeReason, UpstreamMode, UpstreamStatus } from '../types.js';
import type { Queryable } from './queryable.js';

const COLUMNS = `p.id, p.public_id AS "publicId", p.account_id AS "accountId", p.label, p.scopes,
  p.created_at AS "createdAt", p.expires_at AS "expiresAt", p.revoked_at AS "revokedAt",
  p.revoked_reason AS "revokedReason", p.last_used_at AS "lastUsedAt", p.last_used_protocol AS "lastUsedProtocol",
  p.last_used_address AS "lastUsedAddress", p.dek_salt AS "dekSalt", p.dek_box AS "dekBox"`;

const FIND_BY_DIGEST = {
  name: 'postern_find_by_digest',
  text: `SELECT p.id, p.public_id, p.scopes, p.expires_at, p.revoked_at, p.dek_salt, p.dek_box,
      a.id AS account_id, a.login, a.upstream_mode, a.upstream_user, a.secret_box, a.upstream_status, a.oauth2_provider
    FROM app_passwords p JOIN accounts a ON a.id = p.account_id WHERE p.digest = $1`,
};

/** findByDigest and the throttle's gate in one statement (see AppPasswordRepo.findForLogin): one row always. */
export const FIND_FOR_LOGIN = {
  name: 'postern_find_for_login',
  text: `SELECT p.id, p.public_id, p.scopes, p.expires_at, p.revoked_at, p.dek_salt, p.dek_box,
      a.id AS account_id, a.login, a.upstream_mode, a.upstream_user, a.secret_box, a.upstream_status, a.oauth2_provider,
      ${GATE_COLUMNS({ address: '$1', account: '$2', pair: '$3', since: '$4', now: '$5' })}
    FROM (SELECT $6::bytea AS digest) AS d
      LEFT JOIN app_passwords p ON p.digest = d.digest
      LEFT JOIN accounts a ON a.id = p.account_id`,
};

interface GateColumns {
  address_failures: number | null; address_last_at: number | null; account_failures: number | null; pair_failures: number | null; blocked_until: number | null;
}

interface DigestRow {
  id: number; public_id: string; scopes: string; expires_at: number | null; revoked_at: number | null;
  dek_salt: Buffer | null; dek_box: Buffer | null; account_id: number; login: string; upstream_mode: string;
  upstream_user: string; secret_box: Buffer | null; upstream_status: UpstreamStatus; oauth2_provider: string | null;
}

type RawRow = Omit<AppPasswordRow, 'scopes'> & { scopes: string };

const splitScopes = (scopes: string) => scopes.split(',').filter(Boolean) as Protocol[];
const toRow = (raw: RawRow): AppPasswordRow => ({ ...raw, scopes: splitScopes(raw.scopes) });

function digestMatch(row: DigestRow): DigestMatch {
  return {
    password: { id: row.id, publicId: row.public_id, scopes: splitScopes(row.scopes), expiresAt: row.expires_at, revokedAt: row.revoked_at, dekSalt: row.dek_salt, dekBox: row.dek_box },
    account: {
      id: row.account_id, login: row.login, upstreamMode: row.upstream_mode as UpstreamMode, upstreamUser: row.upstream_user,
      secretBox: row.secret_box, upstreamStatus: row.upstream_status, oauth2Provider: row.oauth2_provider,
    },
  };
}

export class PgAppPasswordRepo implements Async<AppPasswordRepo> {
  constructor(private readonly db: Queryable) {}

  async findByDigest(digest: Buffer): Promise<DigestMatch | undefined> {
    const row = (await this.db.query<DigestRow>({ ...FIND_BY_DIGEST, values: [digest] })).rows[0];
    return row && digestMatch(row);
  }

  async findForLogin(digest: Buffer, q: GateQuery): Promise<LoginLookup> {
    const { rows } = await this.db.query<{ [K in keyof DigestRow]: DigestRow[K] | null } & GateColumns>({
      ...FIND_FOR_LOGIN, values: [q.address, q.account, q.pair, q.sinceBucket, q.now, digest],
    });
    const row = rows[0]!;
    const gate = {
      addressFailures: row.address_failures ?? 0, addressLastAt: row.address_last_at ?? 0, accountFailures: row.account_failures ?? 0,
      pairFailures: row.pair_failures ?? 0, blockedUntil: row.blocked_until ?? 0,
    };
    // An account row gone is no match, as with findByDigest's JOIN.
    if (row.id === null || row.account_id === null) return { match: undefined, gate };
    return { match: digestMatch(row as DigestRow), gate };
  }

  async insert(p: NewAppPassword): Promise<number> {
    const { rows } = await this.db.query<{ id: number }>(
      `INSERT INTO app_passwords (public_id, account_id, digest, label, scopes, created_at, expires_at, dek_salt, dek_box)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
      [p.publicId, p.accountId, p.digest, p.label, p.scopes.join(','), p.createdAt, p.expiresAt, p.dekSalt, p.dekBox],
    );
    return rows[0]!.id;
  }

  async countActive(accountId: number, now: number): Promise<number> {
    const { rows } = await this.db.query<{ n: number }>(
      'SELECT count(*) AS n FROM app_passwords WHERE account_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)',
      [accountId, now],
    );
    return rows[0]!.n;
  }

  async listForAccount(accountId: number): Promise<AppPasswordRow[]> {
    const { rows } = await this.db.query<RawRow>(`SELECT ${COLUMNS} FROM app_passwords p WHERE p.account_id = $1 ORDER BY p.created_at, p.id`, [accountId]);
    return rows.map(toRow);
  }

  async findByPublicId(publicId: string): Promise<AppPasswordRow | undefined> {
    const raw = (await this.db.query<RawRow>(`SELECT ${COLUMNS} FROM app_passwords p WHERE p.public_id = $1`, [publicId])).rows[0];
    return raw && toRow(raw);
  }

  // A revoked password keeps its row for the history, but loses its sealed data key.
  async revoke(id: number, reason: RevokeReason, now: number): Promise<boolean> {
    const r = await this.db.query(
      'UPDATE app_passwords SET revoked_at = $1, revoked_reason = $2, dek_box = NULL, dek_salt = NULL WHERE id = $3 AND revoked_at IS NULL',
      [now, reason, id],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async revokeAll(accountId: number, reason: RevokeReason, now: number): Promise<Array<{ id: number; publicId: string }>> {
    const { rows } = await this.db.query<{ id: number; publicId: string }>(
      `UPDATE app_passwords SET revoked_at = $1, revoked_reason = $2, dek_box = NULL, dek_salt = NULL
       WHERE account_id = $3 AND revoked_at IS NULL RETURNING id, public_id AS "publicId"`,
      [now, reason, accountId],
    );
    return rows;
  }

  async markUsed(id: number, now: number, protocol: Protocol, address: string): Promise<void> {
    await this.db.query('UPDATE app_passwords SET last_used_at = $1, last_used_protocol = $2, last_used_address = $3 WHERE id = $4', [now, protocol, address, id]);
  }

  async anyDue(now: number, accountId: number | null = null): Promise<boolean> {
    const { rows } = await this.db.query(
      `SELECT 1 FROM app_passwords
       WHERE revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= $1 AND account_id = coalesce($2::bigint, account_id) LIMIT 1`,
      [now, accountId],
    );
    return rows.length > 0;
  }

  async expireDue(now: number, accountId: number | null = null): Promise<ExpiredPassword[]> {
    const { rows } = await this.db.query<ExpiredPassword>(
      `UPDATE app_passwords p SET revoked_at = p.expires_at, revoked_reason = 'expiry', dek_box = NULL, dek_salt = NULL
       WHERE p.revoked_at IS NULL AND p.expires_at IS NOT NULL AND p.expires_at <= $1 AND p.account_id = coalesce($2::bigint, p.account_id)
       RETURNING p.id, p.public_id AS "publicId", p.account_id AS "accountId", p.expires_at AS "expiresAt",
         (SELECT login FROM accounts a WHERE a.id = p.account_id) AS login`,
      [now, accountId],
    );
    return rows;
  }

  async revision(): Promise<number> {
    return (await this.db.query<{ r: number }>('SELECT coalesce(max(revision), 0) AS r FROM password_changes')).rows[0]!.r;
  }

  async changedSince(revision: number): Promise<PasswordChange[]> {
    const { rows } = await this.db.query<PasswordChange>(
      'SELECT revision, password_id AS "passwordId" FROM password_changes WHERE revision > $1 ORDER BY revision',
      [revision],
    );
    return rows;
  }

  // JOIN: a password whose account row is gone counts as removed (as on SQLite).
  async states(ids: readonly number[]): Promise<PasswordState[]> {
    const { rows } = await this.db.query<PasswordState>(
      `SELECT p.id, p.revoked_at AS "revokedAt", p.revoked_reason AS "revokedReason", p.expires_at AS "expiresAt"
       FROM app_passwords p JOIN accounts a ON a.id = p.account_id WHERE p.id = ANY($1::bigint[])`,
      [ids],
    );
    return rows;
  }
}
