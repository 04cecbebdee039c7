/**
 * The database selection (issue 14), validated once by the loader. Pinned here:
 *  - neither key: SQLite at the default path; `path`: SQLite there; `url` (postgres:// or
 *    postgresql://): PostgreSQL, with the pool size and connect timeout defaults;
 *  - POSTERN_DATABASE_URL supplies the URL, or overrides the file's; beside database.path it is
 *    refused (which database to use would be a guess), as are path and url together;
 *  - a bad scheme, an unparseable URL, a URL without host, PostgreSQL-only keys beside SQLite:
 *    each a CONFIG_INVALID naming its key, and no message ever repeats the URL's password;
 *  - redactDatabaseUrl shows user, host, port and database, never the password.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isPosternError } from '../errors.js';
import { databaseTarget, redactDatabaseUrl } from './database.js';
import { resolveConfig } from './load.js';

const SECRET = 'Db-Secret-pw-51';
const URL_WITH_SECRET = `postgres://postern:${SECRET}@db.example.org:5432/postern`;

function configError(raw: unknown, env: NodeJS.ProcessEnv = {}): string {
  try {
    resolveConfig(raw, '/etc/postern.yaml', env);
  } catch (err) {
    expect(isPosternError(err, 'CONFIG_INVALID')).toBe(true);
    const message = (err as Error).message;
    expect(message).not.toContain(SECRET);
    return message;
  }
  throw new Error('the config was accepted');
}

const target = (raw: unknown, env: NodeJS.ProcessEnv = {}) => databaseTarget(resolveConfig(raw, null, env));

describe('database selection', () => {
  it('neither key: SQLite at the default path; path: SQLite there', () => {
    expect(target({})).toEqual({ engine: 'sqlite', path: path.resolve('data/postern.db') });
    expect(target({ database: { path: '/var/lib/postern/p.db' } })).toEqual({ engine: 'sqlite', path: '/var/lib/postern/p.db' });
  });

  it.each(['postgres', 'postgresql', 'POSTGRES'])('url with scheme %s: PostgreSQL, with the pool defaults or the keys given', (scheme) => {
    const url = `${scheme}://postern:${SECRET}@db.example.org:5432/postern`;
    expect(target({ database: { url } })).toEqual({ engine: 'postgres', url, poolSize: 10, connectTimeoutMs: 10_000 });
    expect(target({ database: { url, poolSize: 3, connectTimeoutMs: 2000 } })).toMatchObject({ poolSize: 3, connectTimeoutMs: 2000 });
  });

  it('POSTERN_DATABASE_URL supplies the URL, or overrides the file\'s', () => {
    const env = { POSTERN_DATABASE_URL: URL_WITH_SECRET };
    expect(target({}, env)).toMatchObject({ engine: 'postgres', url: URL_WITH_SECRET });
    expect(target({ database: { url: 'postgres://other@elsewhere/db', poolSize: 4 } }, env)).toMatchObject({ url: URL_WITH_SECRET, poolSize: 4 });
    expect(target({}, { POSTERN_DATABASE_URL: '' })).toMatchObject({ engine: 'sqlite' });
  });

  it('refuses path and url together, from the file or with the environment variable', () => {
    expect(configError({ database: { path: 'p.db', url: URL_WITH_SECRET } })).toBe(
      '/etc/postern.yaml is invalid:\n  database.url: set path (SQLite) or url (PostgreSQL), not both',
    );
    expect(configError({ database: { path: 'p.db' } }, { POSTERN_DATABASE_URL: URL_WITH_SECRET })).toBe(
      '/etc/postern.yaml is invalid:\n  POSTERN_DATABASE_URL: is set, but database.path selects SQLite: remove database.path to use PostgreSQL, or unset the variable',
    );
  });

  it.each([
    ['a MySQL URL', `mysql://root:${SECRET}@db/x`, /database\.url: must be a PostgreSQL URL.*"mysql:" is not postgres: or postgresql:/],
    ['a file path', '/var/lib/postern.db', /database\.url: must be a PostgreSQL URL.*scheme missing/],
    ['an unencoded # in the password', `postgres://u:a#${SECRET}@db/x`, /database\.url: names no host|database\.url: is not a valid URL/],
    ['no host', 'postgres:///postern', /database\.url: names no host/],
  ])('refuses %s with its key path and without repeating it', (_name, url, expected) => {
    expect(configError({ database: { url } })).toMatch(expected);
  });

  it('refuses a bad POSTERN_DATABASE_URL under its own name, without repeating it', () => {
    expect(configError({}, { POSTERN_DATABASE_URL: `https://u:${SECRET}@db/x` })).toMatch(
      /^\/etc\/postern\.yaml is invalid:\n {2}POSTERN_DATABASE_URL: must be a PostgreSQL URL/,
    );
  });

  it('refuses the PostgreSQL-only keys beside SQLite, and unknown keys', () => {
    expect(configError({ database: { poolSize: 5 } })).toBe(
      '/etc/postern.yaml is invalid:\n  database.poolSize: is for PostgreSQL only: set url (or POSTERN_DATABASE_URL), or remove it',
    );
    expect(configError({ database: { path: 'p.db', connectTimeoutMs: 500 } })).toMatch(/database\.connectTimeoutMs: is for PostgreSQL only/);
    expect(configError({ database: { url: URL_WITH_SECRET, poolSize: 0 } })).toMatch(/database\.poolSize: Too small/);
    expect(configError({ database: { uri: URL_WITH_SECRET } })).toMatch(/database: Unrecognized key: "uri"/);
  });
});

describe('redactDatabaseUrl', () => {
  it.each([
    [URL_WITH_SECRET, 'postgres://postern:***@db.example.org:5432/postern'],
    ['postgresql://postern@db.example.org/postern', 'postgresql://postern@db.example.org/postern'],
    [`postgres://db.example.org/postern?user=u&password=${SECRET}&sslmode=require`, 'postgres://db.example.org/postern?user=u&password=***&sslmode=require'],
    [`postgres://u:${encodeURIComponent(`p@ss/${SECRET}`)}@[2001:db8::1]:6432/db`, 'postgres://u:***@[2001:db8::1]:6432/db'],
    [`not a url ${SECRET}`, '(unparseable database URL)'],
  ])('%s → %s', (url, shown) => {
    expect(redactDatabaseUrl(url)).toBe(shown);
    expect(redactDatabaseUrl(url)).not.toContain(SECRET);
  });
});
