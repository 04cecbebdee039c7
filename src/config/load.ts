/**
 * Loads the YAML config once at start-up: parse, validate, resolve relative paths against the
 * working directory (see resolvePaths), read secrets from files or the environment, freeze. Every problem is
 * reported with its key path; a wrong config never starts a half-working proxy.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { PosternError } from '../errors.js';
import { DATABASE_URL_ENV, DEFAULT_DATABASE_PATH, databaseUrlProblem } from './database.js';
import { configSchema, type Config, type DatabaseConfig } from './schema.js';

/**
 * `path` is the SQLite file (the default one when unset) and means nothing when `url` is set:
 * read the engine through databaseTarget (database.ts).
 */
export type ResolvedDatabaseConfig = Omit<DatabaseConfig, 'path' | 'url'> & { path: string; url: string | null };

type PathsResolved = Omit<Config, 'database'> & { database: ResolvedDatabaseConfig };

/** Config with paths made absolute and the master password (if any) read from its source. */
export type ResolvedConfig = Readonly<PathsResolved & { configPath: string | null; masterPassword: string | null }>;

export const DEFAULT_CONFIG_PATH = 'config/postern.yaml';

export function loadConfigFile(configPath: string, env: NodeJS.ProcessEnv = process.env): ResolvedConfig {
  if (!existsSync(configPath)) {
    throw new PosternError('CONFIG_NOT_FOUND', `configuration file not found: ${configPath} (run "postern init")`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(configPath, 'utf8')) ?? {};
  } catch (err) {
    // Only the first line (what and where): the rest quotes the file, which may hold an inline secret.
    const reason = (err as Error).message.split('\n')[0]!.replace(/:$/, '');
    throw new PosternError('CONFIG_INVALID', `${configPath}: not valid YAML: ${reason}`, { cause: err });
  }
  return resolveConfig(raw, path.resolve(configPath), env);
}

export function resolveConfig(raw: unknown, configPath: string | null, env: NodeJS.ProcessEnv = process.env): ResolvedConfig {
  const parsed = configSchema.safeParse(withDatabaseUrlFromEnv(raw, configPath, env));
  if (!parsed.success) throw new PosternError('CONFIG_INVALID', formatIssues(configPath, parsed.error.issues));
  const config = readClientSecrets(resolvePaths(parsed.data, process.cwd()));
  const masterPassword = readMasterPassword(config, env);
  return deepFreeze({ ...config, configPath, masterPassword });
}

/**
 * POSTERN_DATABASE_URL, when set, is the database URL (over any database.url of the file); beside
 * a database.path it is refused, since which database to use would then be a guess.
 */
function withDatabaseUrlFromEnv(raw: unknown, configPath: string | null, env: NodeJS.ProcessEnv): unknown {
  const url = env[DATABASE_URL_ENV];
  if (!url) return raw;
  const invalid = (message: string) => new PosternError('CONFIG_INVALID', `${configPath ?? 'configuration'} is invalid:\n  ${DATABASE_URL_ENV}: ${message}`);
  const problem = databaseUrlProblem(url);
  if (problem) throw invalid(problem);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const database = (raw as { database?: unknown }).database ?? {};
  if (database === null || typeof database !== 'object' || Array.isArray(database)) return raw;
  if ((database as { path?: unknown }).path !== undefined) {
    throw invalid('is set, but database.path selects SQLite: remove database.path to use PostgreSQL, or unset the variable');
  }
  return { ...raw, database: { ...database, url } };
}

function formatIssues(configPath: string | null, issues: z.core.$ZodIssue[]): string {
  const where = configPath ?? 'configuration';
  const lines = issues.map((issue) => `  ${issue.path.length ? issue.path.join('.') : '(top level)'}: ${issue.message}`);
  return `${where} is invalid:\n${lines.join('\n')}`;
}

/**
 * Relative paths are resolved against the working directory, like the CLI's own path arguments;
 * the documented defaults (`data/…`, `certs/…`) assume postern runs from its install folder
 * (the Docker image's WORKDIR). Use absolute paths in a system-wide config.
 */
function resolvePaths(config: Config, base: string): PathsResolved {
  const abs = (p: string) => path.resolve(base, p);
  const absOpt = (p: string | undefined) => (p === undefined ? undefined : abs(p));
  return {
    ...config,
    database: { ...config.database, path: abs(config.database.path ?? DEFAULT_DATABASE_PATH), url: config.database.url ?? null },
    keyFile: abs(config.keyFile),
    tls: { ...config.tls, cert: abs(config.tls.cert), key: abs(config.tls.key) },
    master: config.master && { ...config.master, passwordFile: absOpt(config.master.passwordFile) },
    imap: config.imap && { ...config.imap, upstream: { ...config.imap.upstream, caFile: absOpt(config.imap.upstream.caFile) } },
    smtp: config.smtp && { ...config.smtp, upstream: { ...config.smtp.upstream, caFile: absOpt(config.smtp.upstream.caFile) } },
    dav: config.dav && { ...config.dav, caFile: absOpt(config.dav.caFile) },
    oauth2: config.oauth2 && { ...config.oauth2, providers: Object.fromEntries(Object.entries(config.oauth2.providers).map(([name, p]) => [name, { ...p, clientSecretFile: absOpt(p.clientSecretFile) }])) },
  };
}

/** Client secrets named by file are read once, here, into `clientSecret`. */
function readClientSecrets<T extends Pick<Config, 'oauth2'>>(config: T): T {
  if (!config.oauth2) return config;
  const providers = Object.fromEntries(Object.entries(config.oauth2.providers).map(([name, p]) => {
    if (!p.clientSecretFile) return [name, p];
    try {
      return [name, { ...p, clientSecret: readFileSync(p.clientSecretFile, 'utf8').replace(/\r?\n$/, '') }];
    } catch (err) {
      throw new PosternError('CONFIG_INVALID', `oauth2.providers.${name}.clientSecretFile: cannot read ${p.clientSecretFile}`, { cause: err });
    }
  }));
  return { ...config, oauth2: { ...config.oauth2, providers } };
}

function readMasterPassword(config: Pick<Config, 'master'>, env: NodeJS.ProcessEnv): string | null {
  if (!config.master) return null;
  const fromEnv = env.POSTERN_MASTER_PASSWORD;
  if (fromEnv) return fromEnv;
  if (config.master.passwordFile) {
    try {
      return readFileSync(config.master.passwordFile, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new PosternError('CONFIG_INVALID', `master.passwordFile: cannot read ${config.master.passwordFile}`, { cause: err });
    }
  }
  if (config.master.password) return config.master.password;
  throw new PosternError('CONFIG_INVALID', 'master: set passwordFile, password or POSTERN_MASTER_PASSWORD');
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
