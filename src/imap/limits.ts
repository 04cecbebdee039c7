/**
 * Every pre-authentication bound of the IMAP front end, in one place, with one error factory, so
 * the line receiver, the token parser and the session cannot drift apart (the shape imapflow's
 * lib/handler/limits.js uses). Nothing an unauthenticated peer sends may grow memory past these.
 */
import type { ImapConfig } from '../config/schema.js';

export interface PreAuthLimits {
  /** Longest command line (without literals), CRLF excluded. */
  lineBytes: number;
  /** Largest literal `{n}` / `{n+}` accepted before authentication. */
  literalBytes: number;
  /** A whole command: all lines plus all literals. */
  commandBytes: number;
  /** Literals in one command (LOGIN needs two; ID a few). */
  maxLiterals: number;
  /** Tokens in one command, lists included (ID has up to 60 strings). */
  maxTokens: number;
  /** RFC 2971 §3.3: at most 30 field/value pairs, fields 30 octets, values 1024 octets. */
  idPairs: number;
  idFieldBytes: number;
  idValueBytes: number;
}

export const DEFAULT_LINE_BYTES = 8192;

export function preAuthLimits(lineBytes: number = DEFAULT_LINE_BYTES): PreAuthLimits {
  return {
    lineBytes,
    literalBytes: lineBytes,
    commandBytes: lineBytes * 2,
    maxLiterals: 8,
    maxTokens: 80,
    idPairs: 30,
    idFieldBytes: 30,
    idValueBytes: 1024,
  };
}

export interface SessionLimits extends PreAuthLimits {
  maxAuthFailures: number;
  maxBadCommands: number;
  idleMs: number;
  /** Whole time allowed before login, however busy: NOOPs must not hold a slot (and an upstream connection) forever. */
  preAuthLifetimeMs: number;
}

/** Logging in takes seconds; five idle periods is generous for the slowest human at a terminal. */
export const PRE_AUTH_LIFETIME_IDLE_PERIODS = 5;

export function sessionLimits(config: ImapConfig['limits']): SessionLimits {
  return {
    ...preAuthLimits(config.preAuthLineBytes),
    maxAuthFailures: config.maxAuthFailures,
    maxBadCommands: config.maxBadCommands,
    idleMs: config.preAuthIdleMs,
    preAuthLifetimeMs: config.preAuthIdleMs * PRE_AUTH_LIFETIME_IDLE_PERIODS,
  };
}

export type LimitKind = 'line' | 'literal' | 'command' | 'literals' | 'tokens';

/** The one factory for limit violations; the text is safe for the wire (no peer bytes in it). */
export function limitExceeded(kind: LimitKind, limits: PreAuthLimits): string {
  switch (kind) {
    case 'line': return `Command line too long (limit ${limits.lineBytes} bytes before authentication).`;
    case 'literal': return `Literal too large (limit ${limits.literalBytes} bytes before authentication).`;
    case 'command': return `Command too large (limit ${limits.commandBytes} bytes before authentication).`;
    case 'literals': return `Too many literals in one command (limit ${limits.maxLiterals}).`;
    case 'tokens': return `Too many arguments in one command (limit ${limits.maxTokens}).`;
  }
}
