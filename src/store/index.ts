/**
 * The SQLite store behind the engine-neutral async interface (src/store/api.ts). Opening it is
 * explicit (no module-level side effects); the proxy and each admin command open their own, and
 * SQLite's WAL mode and busy timeout make them safe side by side.
 *
 * The synchronous better-sqlite3 repositories in this folder stay the contract (their SQL and
 * comments); `promised` lifts each to `Async<Repo>` once, at open, so a call costs one try and
 * one resolved promise — the login's findByDigest included. A statement that throws because the
 * database cannot serve (locked past the busy timeout, file gone, I/O error, connection closed)
 * rejects with STORE_UNAVAILABLE, the one error every protocol answers as a temporary failure;
 * a constraint the data breaks keeps its SqliteError, for the caller that expects it.
 *
 * Transactions are serialised per connection by a promise chain: SQLite has one transaction per
 * connection, and two async callers interleaving theirs would share it. Because these
 * repositories resolve at once, a transaction whose fn awaits only them runs BEGIN to COMMIT in
 * microtasks, without yielding to another event-loop task (api.ts states the rule for callers).
 */
import { openDatabase, type Db, type OpenOptions } from './database.js';
import { AccountRepo } from './accounts.js';
import { AppPasswordRepo } from './app-passwords.js';
import { EventRepo } from './events.js';
import { Maintenance } from './maintenance.js';
import { ThrottleCountRepo } from './throttle-counts.js';
import { PortalSessionRepo } from './portal-sessions.js';
import { ProfileDownloadRepo } from './profile-downloads.js';
import { SecondFactorRepo } from './second-factors.js';
import { PasskeyRepo } from './passkeys.js';
import { PosternError } from '../errors.js';
import type { Async, AsyncStore, StoreRepos } from './api.js';

export * from './types.js';
export type { Db } from './database.js';
export type { DatabaseCheck, Maintenance } from './maintenance.js';
export type { AsyncStore, StoreEngine, StoreRepos } from './api.js';

/** What every caller holds: the engine-neutral store, whichever database is behind it. */
export type Store = AsyncStore;

const connections = new WeakMap<AsyncStore, Db>();

export function openStore(file: string, options: Pick<OpenOptions, 'busyTimeoutMs'> = {}): AsyncStore {
  const db = openDatabase(file, options);
  const repos: StoreRepos = {
    accounts: promised(new AccountRepo(db)),
    passwords: promised(new AppPasswordRepo(db)),
    events: promised(new EventRepo(db)),
    throttle: promised(new ThrottleCountRepo(db)),
    secondFactors: promised(new SecondFactorRepo(db)),
    portalSessions: promised(new PortalSessionRepo(db)),
    passkeys: promised(new PasskeyRepo(db)),
    profileDownloads: promised(new ProfileDownloadRepo(db)),
  };
  const maintenance = promised(new Maintenance(db));
  const serialise = transactions(db, repos);
  let closed = false;
  const store: AsyncStore = {
    engine: 'sqlite',
    ...repos,
    maintenance,
    transaction: serialise,
    ping: () => {
      try {
        return Promise.resolve(db.prepare('SELECT 1').pluck().get() === 1);
      } catch {
        return Promise.resolve(false);
      }
    },
    close: async () => {
      if (closed) return;
      closed = true;
      // Transactions already queued run first: closing under them would fail them half done.
      await serialise(async () => undefined).catch(() => undefined);
      db.close();
    },
  };
  connections.set(store, db);
  return store;
}

/**
 * The SQLite connection under a store, for what only SQLite has: the write queue's savepoints,
 * tests that read raw rows, migration tests. Anything else goes through the async interface.
 */
export function sqliteDb(store: AsyncStore): Db {
  const db = connections.get(store);
  if (!db) throw new PosternError('STORE_ENGINE_MISMATCH', `this needs the SQLite store; the configured database is ${store.engine}`);
  return db;
}

/** One wrapper per public method of a synchronous repository, made once: see the module header. */
export function promised<T extends object>(repo: T): Async<T> {
  const lifted: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
  for (let proto = Object.getPrototypeOf(repo) as object | null; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto) as object | null) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      const method = Object.getOwnPropertyDescriptor(proto, name)?.value as unknown;
      if (name === 'constructor' || name in lifted || typeof method !== 'function') continue;
      const call = method as (...args: unknown[]) => unknown;
      lifted[name] = (...args) => {
        try {
          const value = call.apply(repo, args);
          // The synchronous repositories' results resolve as they are (one promise per call on the
          // login path); only an async method (the backup) can still reject later.
          return value instanceof Promise ? value.catch((err: unknown) => Promise.reject(storeError(err) as Error)) : Promise.resolve(value);
        } catch (err) {
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- storeError passes non-Error throws on unchanged
          return Promise.reject(storeError(err));
        }
      };
    }
  }
  return lifted as unknown as Async<T>;
}

function transactions(db: Db, repos: StoreRepos): AsyncStore['transaction'] {
  let last: Promise<unknown> = Promise.resolve();
  const run = async <T>(fn: (tx: StoreRepos) => Promise<T>): Promise<T> => {
    try {
      // IMMEDIATE: takes the write lock up front, so two connections cannot deadlock upgrading.
      db.exec('BEGIN IMMEDIATE');
    } catch (err) {
      throw storeError(err);
    }
    try {
      const result = await fn(repos);
      db.exec('COMMIT');
      return result;
    } catch (err) {
      if (db.open && db.inTransaction) db.exec('ROLLBACK');
      throw storeError(err);
    }
  };
  return <T>(fn: (tx: StoreRepos) => Promise<T>): Promise<T> => {
    const mine = last.then(() => run(fn));
    last = mine.catch(() => undefined);
    return mine;
  };
}

/**
 * A failure of the database itself (not of the data) as STORE_UNAVAILABLE, with the SqliteError
 * as its cause: SQLITE_CONSTRAINT stays as it is (a caller may expect it), as does anything that
 * is not SQLite's (a PosternError thrown by a transaction's fn, a programming error).
 */
export function storeError(err: unknown): unknown {
  if (err instanceof PosternError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const sqlite = typeof code === 'string' && code.startsWith('SQLITE_');
  const closed = err instanceof TypeError && /database connection is not open/.test(err.message);
  if ((sqlite && !code.startsWith('SQLITE_CONSTRAINT')) || closed) {
    return new PosternError('STORE_UNAVAILABLE', `the database cannot serve: ${(err as Error).message}`, { cause: err });
  }
  return err;
}
