/**
 * Expiry as history and as key hygiene. Logins check `expires_at` themselves, so an expired
 * password stops working at its instant with or without this; what the sweep adds is that the
 * password is marked revoked with reason `expiry` *at its expiry instant* in the history, and
 * that its sealed copy of the account's data key is deleted, so a database copied later holds no
 * box an expired password could open. The proxy sweeps every few seconds, admin commands before
 * they show or count passwords; the UPDATE … WHERE revoked_at IS NULL makes each password expire
 * exactly once whichever process gets there first.
 */
import type { Logger } from '../log.js';
import type { StoreRepos } from './api.js';
import type { Store } from './index.js';
import { runPeriodically } from './periodic.js';

const SWEEP_EVERY_MS = 5_000;

/** Expires what is due (for one account, or all) and records each in the history. */
export async function expireDuePasswords(store: Store, now: number, accountId: number | null = null): Promise<number> {
  // A read first: a sweep with nothing due (nearly every one) takes no write lock.
  if (!(await store.passwords.anyDue(now, accountId))) return 0;
  return store.transaction((tx) => expireDueIn(tx, now, accountId));
}

/** The same inside a transaction the caller holds (one that goes on to count or add passwords). */
export async function expireDueIn(tx: StoreRepos, now: number, accountId: number | null = null): Promise<number> {
  const expired = await tx.passwords.expireDue(now, accountId);
  for (const p of expired) {
    await tx.events.append({ type: 'password.revoked', at: p.expiresAt, accountId: p.accountId, login: p.login, passwordId: p.publicId, detail: { reason: 'expiry' } });
  }
  return expired.length;
}

export interface ExpirySweep {
  stop(): void;
}

export function startExpirySweep(store: Store, log: Logger, options: { everyMs?: number; clock?: () => number } = {}): ExpirySweep {
  const { everyMs = SWEEP_EVERY_MS, clock = Date.now } = options;
  const sweep = async () => {
    try {
      const n = await expireDuePasswords(store, clock());
      if (n > 0) log.info({ event: 'password.expired', count: n }, `${n} app-specific passwords reached their expiry`);
    } catch (err) {
      // A busy database is not fatal: logins check expiry themselves; the next sweep tries again.
      log.warn({ event: 'password.expiry_sweep_failed', err }, 'could not record expired passwords; will retry');
    }
  };
  return { stop: runPeriodically(sweep, everyMs) };
}
