/**
 * The store's engine-neutral, asynchronous interface: what the proxy, the account page and the
 * CLI see, whichever database holds the data (SQLite, the embedded default, through the
 * synchronous better-sqlite3 repositories in this folder; PostgreSQL through src/store/postgres/).
 * Every repository method returns a promise, so a PostgreSQL round trip never waits on the event
 * loop; each repository's contract (names, arguments, results, and the SQL semantics written in
 * the SQLite class's comments) is the SQLite class's, mapped by `Async` below so the two engines
 * cannot drift apart silently: a method added to one and not the other is a type error.
 *
 * Transactions: `transaction(fn)` hands fn repositories bound to one transaction (one connection
 * for PostgreSQL; BEGIN IMMEDIATE on SQLite). fn must await only those repositories — never the
 * network, bcrypt or a timer — so a transaction stays as short as the SQL in it, and on SQLite it
 * runs to COMMIT without yielding to another event-loop task.
 */
import type { AccountRepo } from './accounts.js';
import type { AppPasswordRepo } from './app-passwords.js';
import type { EventRepo } from './events.js';
import type { DatabaseCheck } from './maintenance.js';
import type { PortalSessionRepo } from './portal-sessions.js';
import type { ProfileDownloadRepo } from './profile-downloads.js';
import type { SecondFactorRepo } from './second-factors.js';
import type { PasskeyRepo } from './passkeys.js';
import type { ThrottleCountRepo } from './throttle-counts.js';

/** The public methods of a synchronous repository, each returning a promise of its result. */
export type Async<T> = {
  [K in keyof T as T[K] extends (...args: never[]) => unknown ? K : never]: T[K] extends (...args: infer A) => infer R
    ? (...args: A) => Promise<Awaited<R>>
    : never;
};

export type StoreEngine = 'sqlite' | 'postgres';

export interface StoreRepos {
  accounts: Async<AccountRepo>;
  passwords: Async<AppPasswordRepo>;
  events: Async<EventRepo>;
  /** The brute-force throttle's counts, shared by every process and instance on this database. */
  throttle: Async<ThrottleCountRepo>;
  secondFactors: Async<SecondFactorRepo>;
  portalSessions: Async<PortalSessionRepo>;
  passkeys: Async<PasskeyRepo>;
  profileDownloads: Async<ProfileDownloadRepo>;
}

export interface StoreMaintenance {
  schemaVersion(): Promise<number>;
  check(): Promise<DatabaseCheck>;
  /** SQLite: a consistent copy through the online backup API. PostgreSQL: refused (use pg_dump). */
  backup(file: string): Promise<void>;
}

export interface AsyncStore extends StoreRepos {
  readonly engine: StoreEngine;
  maintenance: StoreMaintenance;
  transaction<T>(fn: (tx: StoreRepos) => Promise<T>): Promise<T>;
  /** One trivial query: whether the database answers (readiness). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
