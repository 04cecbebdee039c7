/**
 * Every pre-authentication bound of the POP3 front end, in one place, with one error factory, so
 * the receiver and the session cannot drift apart. Nothing an unauthenticated peer sends may
 * grow memory past these.
 */
import type { Pop3Config } from '../config/schema.js';
import { sessionBudget, type SessionBudget } from '../line-protocol/session-limits.js';

export interface PreAuthLimits {
  /** Longest line (command or SASL response), CRLF excluded. */
  lineBytes: number;
  /** Arguments in one command: POP3 has at most two (TOP, AUTH with an initial response). */
  maxArgs: number;
}

export const DEFAULT_LINE_BYTES = 4096;

export function preAuthLimits(lineBytes: number = DEFAULT_LINE_BYTES): PreAuthLimits {
  return { lineBytes, maxArgs: 2 };
}

export interface SessionLimits extends PreAuthLimits, SessionBudget {}

export function sessionLimits(config: Pop3Config['limits']): SessionLimits {
  return { ...preAuthLimits(config.preAuthLineBytes), ...sessionBudget(config) };
}

export type LimitKind = 'line' | 'args';

/** The one factory for limit violations; the text is safe for the wire (no peer bytes in it). */
export function limitExceeded(kind: LimitKind, limits: PreAuthLimits): string {
  switch (kind) {
    case 'line': return `Line too long (limit ${limits.lineBytes} bytes before authentication).`;
    case 'args': return `Too many arguments (limit ${limits.maxArgs}).`;
  }
}
