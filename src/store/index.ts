/**
 * The store: one database handle and its repositories. Opening it is explicit (no module-level
 * side effects); the proxy and each admin command open their own, and SQLite's WAL mode and busy
 * timeout make them safe side by side.
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

export * from './types.js';
export type { Db } from './database.js';
export type { DatabaseCheck, Maintenance } from './maintenance.js';

export interface Store {
  db: Db;
  accounts: AccountRepo;
  passwords: AppPasswordRepo;
  events: EventRepo;
  /** The brute-force throttle's counts, shared by every process on this database. */
  throttle: ThrottleCountRepo;
  secondFactors: SecondFactorRepo;
  portalSessions: PortalSessionRepo;
  passkeys: PasskeyRepo;
  /** One-time Apple profile downloads (src/onboarding/profile-download.ts). */
  profileDownloads: ProfileDownloadRepo;
  /** Integrity check, schema version, backup: what `postern db` and `postern init` need. */
  maintenance: Maintenance;
  /** Runs fn in one IMMEDIATE transaction (takes the write lock up front: no upgrade deadlocks). */
  transaction<T>(fn: () => T): T;
  close(): void;
}

export function openStore(file: string, options: Pick<OpenOptions, 'busyTimeoutMs'> = {}): Store {
  const db = openDatabase(file, options);
  let closed = false;
  return {
    db,
    accounts: new AccountRepo(db),
    passwords: new AppPasswordRepo(db),
    events: new EventRepo(db),
    throttle: new ThrottleCountRepo(db),
    secondFactors: new SecondFactorRepo(db),
    portalSessions: new PortalSessionRepo(db),
    passkeys: new PasskeyRepo(db),
    profileDownloads: new ProfileDownloadRepo(db),
    maintenance: new Maintenance(db),
    transaction: <T>(fn: () => T) => db.transaction(fn).immediate(),
    close: () => {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
}
