/**
 * "Is this the account's primary password?" — the only slow hash on a login, and only on the
 * failure path. The interface lets the service run it in a worker pool (see primary-check-pool.ts)
 * so that a flood of wrong passwords cannot stall the event loop that relays live sessions.
 */
import { primaryPasswordMatches } from '../crypto/primary-hash.js';

export interface PrimaryChecker {
  /**
   * Resolves true when `password` matches the primary-password `hash` (src/crypto/primary-hash.ts);
   * `serverKey` is the key file's content, which keys the hash.
   */
  compare(password: string, hash: string, serverKey: Buffer): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * A hash of the current kind and cost over random bytes: checked for unknown users, so that they
 * cost the same scrypt as real accounts and the timing of a refusal does not tell them apart.
 */
export const DUMMY_HASH = '$scrypt-hmac$v=1$n=32768,r=8,p=1$1EGY4TLm/2/73cYyIk3Yjg$Kyq8DXGWXQha8of9PbNuU058GiMtFmgiS0IFINJNpZs';

/** Runs the check on the calling thread. For the CLI and for benchmarks comparing against the pool. */
export function inlinePrimaryChecker(): PrimaryChecker {
  return {
    compare: async (password, hash, serverKey) => primaryPasswordMatches(password, hash, serverKey),
    close: async () => {},
  };
}
