/**
 * Brute-force throttle interface. The policy (growing delays per client address and per account,
 * temporary blocks, repeats of the same wrong password not penalised again, trusted networks)
 * lives in the implementation (penalty-throttle.ts); the service only asks before and reports after.
 */
import type { GateQuery, GateRead } from '../store/throttle-counts.js';

export interface ThrottleGate {
  /** Refuse without checking the password (answered exactly like a wrong password). */
  blocked: boolean;
  /**
   * Hold the attempt this long before checking it: the rest of this address's penalty. Holding
   * only the failure answer would not slow an attacker who hangs up after 50 ms and reconnects.
   */
  delayMs?: number;
  /**
   * Failures of this address against this login on record anywhere (the shared counts), when the
   * throttle looked: a success with none changes nothing, so it writes nothing.
   */
  pairFailures?: number;
}

export interface ThrottleVerdict {
  /** How long to hold the failure answer back. */
  delayMs: number;
  /** True when neither the address nor the account had recent failures before this one. */
  cleanRecord: boolean;
  /** Resolves once other processes see this failure (the shared counts); the answer waits for it. */
  shared?: Promise<void>;
}

/**
 * before() and failed() may answer at once (the in-process layer) or after a database read (the
 * shared counts, src/auth/shared-throttle.ts); the service awaits either.
 */
export interface Throttle {
  /**
   * What before() would read from the database, for a caller that reads it within its own lookup
   * (the login's one query, AppPasswordRepo.findForLogin); null or absent: before() reads nothing.
   */
  gateQuery?(clientAddress: string, login: string): GateQuery | null;
  /** `read`: the answer to gateQuery(), when the caller has read it. */
  before(clientAddress: string, login: string, read?: GateRead): ThrottleGate | Promise<ThrottleGate>;
  /**
   * `known`: the login is a real account. Its records are kept apart from those of names that do
   * not exist, so that guesses at made-up names cannot flush them (see throttle-pools.ts).
   */
  failed(clientAddress: string, login: string, password: string, known: boolean): ThrottleVerdict | Promise<ThrottleVerdict>;
  /** `gate`: what before() said for this attempt. */
  succeeded(clientAddress: string, login: string, gate?: ThrottleGate): void;
}

/** No throttling: for unit tests of other parts. */
export const noThrottle: Throttle = {
  before: () => ({ blocked: false }),
  failed: () => ({ delayMs: 0, cleanRecord: true }),
  succeeded: () => {},
};
