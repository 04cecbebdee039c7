/**
 * Which database postern uses (issue 14): `database.path`, an SQLite file (the embedded default),
 * or `database.url`, a PostgreSQL server shared by several instances. Exactly one; the
 * POSTERN_DATABASE_URL environment variable supplies or overrides the URL, so that the password
 * it carries need not sit in the YAML. A URL is never written whole into a message or a log line:
 * redactDatabaseUrl is the form logs show, describeTarget (host:port/database) the one error messages name.
 */
import type { ResolvedConfig } from './load.js';

export const DEFAULT_DATABASE_PATH = 'data/postern.db';
export const DATABASE_URL_ENV = 'POSTERN_DATABASE_URL';
export const DEFAULT_POOL_SIZE = 10;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

export type DatabaseTarget =
  | { engine: 'sqlite'; path: string }
  | { engine: 'postgres'; url: string; poolSize: number; connectTimeoutMs: number };

/** Why this is not a PostgreSQL URL postern accepts, in words that do not repeat it; null if it is. */
export function databaseUrlProblem(url: string): string | null {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme !== 'postgres' && scheme !== 'postgresql') {
    return `must be a PostgreSQL URL, postgres://user:password@host:port/database (scheme ${scheme === undefined ? 'missing' : `"${scheme}:" is not postgres: or postgresql:`})`;
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'is not a valid URL (percent-encode @, :, / and # in the user name and password)';
  }
  if (!parsed.hostname && !parsed.searchParams.has('host')) return 'names no host (postgres://user:password@host:port/database)';
  return null;
}

/** The URL as logs and messages may show it: any password replaced by ***. */
export function redactDatabaseUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '(unparseable database URL)';
  }
  if (parsed.password) parsed.password = '***';
  for (const key of [...parsed.searchParams.keys()]) {
    if (/pass/i.test(key)) parsed.searchParams.set(key, '***');
  }
  return parsed.toString().replace(/%2A%2A%2A/g, '***');
}

/** host:port/database of a postgres:// URL, without user or password: what error messages name. */
export function describeTarget(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname || '/'}`;
  } catch {
    return 'the configured PostgreSQL';
  }
}

/** The engine and where its data lives, from the resolved config. */
export function databaseTarget(config: Pick<ResolvedConfig, 'database'>): DatabaseTarget {
  const { url, path, poolSize, connectTimeoutMs } = config.database;
  if (url === null) return { engine: 'sqlite', path };
  return {
    engine: 'postgres',
    url,
    poolSize: poolSize ?? DEFAULT_POOL_SIZE,
    connectTimeoutMs: connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
  };
}
