/**
 * "Is this the account's primary password?" — the only bcrypt on a login, and only on the
 * failure path. The interface lets the service run it in a worker pool (see bcrypt-pool.ts)
 * so that a flood of wrong passwords cannot stall the event loop that relays live sessions.
 */
import { primaryPasswordMatches } from '../crypto/primary-hash.js';

export interface PrimaryChecker {
  /** Resolves true when `password` matches the primary-password `hash` (see src/crypto/primary-hash.ts). */
  compare(password: string, hash: string): Promise<boolean>;
  close(): Promise<void>;
}

/** A bcrypt hash of a random string at the cost postern uses: compared for unknown users, so they cost the same. */
export const DUMMY_HASH = '$2b$10$BVT6HxJoawCiQ52ySrjfdOF43hRLRjVKMggACrWhQXVBweoZYhdDq';

/** Runs bcrypt on the calling thread. For the CLI and for benchmarks comparing against the pool. */
export function inlinePrimaryChecker(): PrimaryChecker {
  return {
    compare: async (password, hash) => primaryPasswordMatches(password, hash),
    close: async () => {},
  };
}
