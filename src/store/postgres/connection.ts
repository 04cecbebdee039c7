/**
 * The pg pool behind a PostgreSQL store, and the one place its failures are translated: a
 * connection that cannot be made or was lost becomes STORE_UNAVAILABLE (a temporary error, so a
 * login gets "try again", not "wrong password"), described by host, port and database only — the
 * URL's password is never part of a message, even when the driver echoes what it was given.
 *
 * BIGINT (int8) comes back from pg as a string, since it may exceed 2^53; every BIGINT here is a
 * millisecond timestamp, an id or a count, far below that, so this pool (not pg's global table,
 * which other code in the process may rely on) parses it as a number.
 */
import pg from 'pg';
import { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_POOL_SIZE, describeTarget } from '../../config/database.js';
import { PosternError } from '../../errors.js';
import type { NamedQuery, Queryable, QueryResultLike } from './queryable.js';

const INT8_OID = 20;

const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary'): unknown => {
    if (oid === INT8_OID && format !== 'binary') return parseInt8;
    return (format === 'binary' ? pg.types.getTypeParser(oid, 'binary') : pg.types.getTypeParser(oid)) as unknown;
  }) as typeof pg.types.getTypeParser,
};

function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`a BIGINT beyond 2^53 (${text.length} digits) cannot be read as a number`);
  return n;
}

export interface PoolOptions {
  /** Connections in the pool (default 10): logins in flight beyond it wait for a free one. */
  max?: number;
  /** How long to wait for a new connection before failing with STORE_UNAVAILABLE (default: the config's, 10 s). */
  connectTimeoutMs?: number;
  /** Errors of idle pooled connections (the server restarted): the next query reports them too. */
  onIdleError?: (err: PosternError) => void;
}

function passwordOf(url: string): string {
  try {
    return decodeURIComponent(new URL(url).password);
  } catch {
    return '';
  }
}

export function createPool(url: string, options: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? DEFAULT_POOL_SIZE,
    connectionTimeoutMillis: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    application_name: 'postern',
    types,
  });
  // An idle client's error is emitted on the pool; unhandled, it would end the process.
  pool.on('error', (err) => options.onIdleError?.(storeError(err, url) as PosternError));
  return pool;
}

// Class 08 connection exception, 57P01-03 shutdown / cannot connect now, 53300 too many
// connections, 28xxx authentication, 3D000 no such database: the server, not the statement.
const SERVER_CODES = /^(08|57P0[1-3]|53300|28|3D000)/;
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);

export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e?.code === 'string' && (SOCKET_CODES.has(e.code) || SERVER_CODES.test(e.code))) return true;
  const message = typeof e?.message === 'string' ? e.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connection is closed/i.test(message);
}

/** The error a caller sees: STORE_UNAVAILABLE for the connection, the driver's own otherwise; no password either way. */
export function storeError(err: unknown, url: string): unknown {
  if (err instanceof PosternError) return err;
  const password = passwordOf(url);
  const scrub = (text: string) => (password ? text.split(password).join('***') : text);
  const message = err instanceof Error ? scrub(err.message) : 'unknown error';
  if (isConnectionError(err)) {
    return new PosternError('STORE_UNAVAILABLE', `database ${describeTarget(url)} is unavailable: ${message}`, { cause: err });
  }
  if (err instanceof Error && password && err.message.includes(password)) err.message = message;
  return err;
}

/** A Queryable whose failures pass through storeError. */
export function guarded(target: Queryable, url: string): Queryable {
  return {
    query<R>(text: string | NamedQuery, values?: unknown[]): Promise<QueryResultLike<R>> {
      return target.query<R>(text, values).catch((err: unknown) => {
        throw storeError(err, url);
      });
    },
  };
}
