/**
 * "Connect your account": the authorization request the account page has started and not yet
 * seen come back, one per page session, in the session's database row (connect_box, migration 11),
 * so that the provider's redirect back may reach any instance, or this one after a restart.
 *
 * What an entry guards against (RFC 9700 §4.7, CSRF against the redirect URI; §4.5, code
 * injection): the callback is honoured only for the session that started the request, only
 * with the `state` that request carried (compared in constant time), only once (the entry is
 * taken, not read, whatever the callback says — a replayed or forged callback finds nothing,
 * on this instance or another: the UPDATE that reads the box clears it), and only within a few
 * minutes. The PKCE verifier (RFC 7636) never leaves the server, so a code stolen from the
 * browser's history or a log is useless to anyone else; in the row it is sealed under the
 * session's cookie value (session-boxes.ts), so a copy of the database (and the key file) does
 * not give it either.
 */
import { timingSafeEqual } from 'node:crypto';
import type { PkceStart } from '../oauth2/client.js';
import type { Store } from '../store/index.js';
import { openForSession, sealForSession } from './session-boxes.js';

export interface PendingConnect {
  provider: string;
  start: PkceStart;
  expiresAt: number;
}

/** Which session, and the cookie value that opens its boxes (a LiveSession is one). */
export interface ConnectSession {
  session: { id: number };
  token: string;
}

/** Long enough to sign in and consent at the provider, short enough that a stale tab is void. */
export const CONNECT_TTL_MS = 10 * 60_000;

export class ConnectFlows {
  constructor(private readonly store: Store, private readonly clock: () => number = Date.now) {}

  /** Starting again replaces the session's earlier request: only the latest may come back. */
  async begin(live: ConnectSession, provider: string, start: PkceStart): Promise<void> {
    const entry: PendingConnect = { provider, start, expiresAt: this.clock() + CONNECT_TTL_MS };
    await this.store.portalSessions.setConnect(live.session.id, sealForSession(live.token, live.session.id, 'connect', entry));
  }

  /**
   * The session's request if `state` is its state and it has not expired. Single use: the entry
   * is gone after this call whatever the answer, so a second callback (replay) finds nothing.
   */
  async take(live: ConnectSession, state: string): Promise<PendingConnect | null> {
    const box = await this.store.portalSessions.takeConnect(live.session.id);
    if (!box) return null;
    const entry = openForSession(live.token, live.session.id, 'connect', box) as PendingConnect | null;
    if (!entry || entry.expiresAt <= this.clock()) return null;
    const expected = Buffer.from(entry.start.state, 'utf8');
    const given = Buffer.from(state, 'utf8');
    return given.length === expected.length && timingSafeEqual(given, expected) ? entry : null;
  }
}
