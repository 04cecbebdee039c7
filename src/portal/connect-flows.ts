/**
 * "Connect your account": the authorization requests the account page has started and not yet
 * seen come back, one per page session, in this process's memory only.
 *
 * What an entry guards against (RFC 9700 §4.7, CSRF against the redirect URI; §4.5, code
 * injection): the callback is honoured only for the session that started the request, only
 * with the `state` that request carried (compared in constant time), only once (the entry is
 * taken, not read, whatever the callback says — a replayed or forged callback finds nothing),
 * and only within a few minutes. The PKCE verifier (RFC 7636) never leaves the server, so a code
 * stolen from the browser's history or a log is useless to anyone else.
 *
 * Memory, not the database: like the recent-auth password (sessions.ts), the verifier is a
 * secret; a restart or another instance simply has no entry and the user starts again.
 */
import { timingSafeEqual } from 'node:crypto';
import type { PkceStart } from '../oauth2/client.js';

export interface PendingConnect {
  provider: string;
  start: PkceStart;
  expiresAt: number;
}

/** Long enough to sign in and consent at the provider, short enough that a stale tab is void. */
export const CONNECT_TTL_MS = 10 * 60_000;

export class ConnectFlows {
  private readonly pending = new Map<number, PendingConnect>();

  constructor(private readonly clock: () => number = Date.now) {}

  /** Starting again replaces the session's earlier request: only the latest may come back. */
  begin(sessionId: number, provider: string, start: PkceStart): void {
    this.forgetExpired();
    this.pending.set(sessionId, { provider, start, expiresAt: this.clock() + CONNECT_TTL_MS });
  }

  /**
   * The session's request if `state` is its state and it has not expired. Single use: the entry
   * is gone after this call whatever the answer, so a second callback (replay) finds nothing.
   */
  take(sessionId: number, state: string): PendingConnect | null {
    const entry = this.pending.get(sessionId);
    this.pending.delete(sessionId);
    if (!entry || entry.expiresAt <= this.clock()) return null;
    const expected = Buffer.from(entry.start.state, 'utf8');
    const given = Buffer.from(state, 'utf8');
    return given.length === expected.length && timingSafeEqual(given, expected) ? entry : null;
  }

  clear(): void {
    this.pending.clear();
  }

  private forgetExpired(): void {
    const now = this.clock();
    for (const [id, entry] of this.pending) if (entry.expiresAt <= now) this.pending.delete(id);
  }
}
