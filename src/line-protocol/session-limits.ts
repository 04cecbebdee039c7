/**
 * The budget every line-protocol front gives a connection before login (IMAP and POP3): failed
 * logins, bad commands, idle time and a whole lifetime, derived one way from each protocol's
 * `limits` config. Each protocol's own limits module adds its grammar's bounds and numbers.
 */

export interface SessionBudget {
  maxAuthFailures: number;
  maxBadCommands: number;
  idleMs: number;
  /** Whole time allowed before login, however busy: NOOPs must not hold a connection slot (and an upstream connection) forever. */
  preAuthLifetimeMs: number;
}

/** Logging in takes seconds; five idle periods is generous for the slowest human at a terminal. */
export const PRE_AUTH_LIFETIME_IDLE_PERIODS = 5;

export interface BudgetConfig {
  maxAuthFailures: number;
  maxBadCommands: number;
  preAuthIdleMs: number;
}

export function sessionBudget(config: BudgetConfig): SessionBudget {
  return {
    maxAuthFailures: config.maxAuthFailures,
    maxBadCommands: config.maxBadCommands,
    idleMs: config.preAuthIdleMs,
    preAuthLifetimeMs: config.preAuthIdleMs * PRE_AUTH_LIFETIME_IDLE_PERIODS,
  };
}
