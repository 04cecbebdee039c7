/**
 * Account-page sessions. The cookie is 32 random bytes; the database holds its SHA-256 (so a read
 * of the database gives no cookie) and every rule is checked on each request against the row, so
 * an admin, a second instance or a primary-password change ends a session at once: idle (15 min),
 * absolute (12 h), ended, account gone, primary password changed since sign-in.
 *
 * Recent authentication: creating an app-specific password in mode `password` needs the primary
 * password itself (it unseals the data key the new password must carry, src/crypto/envelope.ts).
 * It is kept for the recent-auth window after it was typed, in the session's row, sealed under the
 * cookie value (session-boxes.ts: the database and the key file together do not open it), so
 * that the browser's next request finds it on whichever instance it reaches, and after a restart.
 * The box is written at sign-in and when the password is typed again, re-sealed in the same UPDATE
 * that rotates the cookie at the second factor, and NULLed when the session ends and once the
 * window has passed (a read that finds it stale, and the maintenance sweep: session-box-sweep.ts).
 * Never in a log.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { AccountRow, PortalSessionRow, PortalStage, Store } from '../store/index.js';
import { openForSession, sealForSession } from './session-boxes.js';

export interface SessionPolicy {
  idleMs: number;
  absoluteMs: number;
  recentAuthMs: number;
}

export interface LiveSession {
  session: PortalSessionRow;
  account: AccountRow;
  /** The cookie value this request came with: the key to the session's sealed boxes (session-boxes.ts). */
  token: string;
}

/** What the recent-auth box holds: the password and when it was typed (bound together under the seal). */
interface RecentAuth {
  password: string;
  at: number;
}

export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export class PortalSessions {
  constructor(private readonly store: Store, private readonly policy: SessionPolicy, private readonly clock: () => number = Date.now) {}

  async create(account: AccountRow, stage: PortalStage, password: string, where: { address: string; browser: string }): Promise<{ token: string; id: number }> {
    const token = randomBytes(32).toString('base64url');
    const now = this.clock();
    // Rows of sessions long over go at each sign-in: a table the size of the active users.
    await this.store.portalSessions.prune(now - this.policy.absoluteMs, now - 2 * this.policy.absoluteMs);
    const id = await this.store.portalSessions.insert({
      tokenDigest: tokenDigest(token), accountId: account.id, stage, at: now,
      primaryChangedAt: account.primaryChangedAt, address: where.address, browser: where.browser,
    });
    await this.store.portalSessions.setRecentAuth(id, recentAuthBox(token, id, { password, at: now }));
    return { token, id };
  }

  /** The live session for a cookie, or null (and the row ended) when any rule says it is over. */
  async load(token: string | undefined): Promise<LiveSession | null> {
    if (!token || token.length > 100) return null;
    const session = await this.store.portalSessions.findByDigest(tokenDigest(token));
    if (!session || session.endedAt !== null) return null;
    const now = this.clock();
    const account = await this.store.accounts.get(session.accountId);
    const over = !account
      || now - session.seenAt > this.policy.idleMs
      || now - session.createdAt > this.policy.absoluteMs
      || account.primaryChangedAt !== session.primaryChangedAt;
    if (over) {
      await this.end(session.id);
      return null;
    }
    await this.store.portalSessions.touch(session.id, now);
    return { session: { ...session, seenAt: now }, account, token };
  }

  /**
   * The primary password, when it was typed within the recent-auth window (on any instance). One
   * found past the window is cleared from the row.
   */
  async recentPassword(live: LiveSession): Promise<string | null> {
    const { session } = live;
    if (!session.recentAuthBox) return null;
    const held = openRecentAuth(live.token, session.id, session.recentAuthBox);
    const now = this.clock();
    if (held && this.inWindow(session.passwordAt, now) && this.inWindow(held.at, now)) return held.password;
    await this.store.portalSessions.dropRecentAuth(session.id, session.passwordAt);
    return null;
  }

  async passwordTyped(live: LiveSession, password: string): Promise<void> {
    const now = this.clock();
    await this.store.portalSessions.passwordTyped(live.session.id, now, recentAuthBox(live.token, live.session.id, { password, at: now }));
  }

  /**
   * Both steps done. The session gets a new cookie value and the one it had until now is dead
   * (session fixation, OWASP: a token someone learned or planted before the second factor — one
   * set while only the password was known — must not become a signed-in session). The recent-auth
   * password is re-sealed under the new value in the UPDATE that rotates it: sealed under the old
   * one it could not be opened again. Null when the session ended meanwhile.
   */
  async complete(live: LiveSession): Promise<string | null> {
    const token = randomBytes(32).toString('base64url');
    const { session } = live;
    const held = session.recentAuthBox ? openRecentAuth(live.token, session.id, session.recentAuthBox) : null;
    const now = this.clock();
    const resealed = held && this.inWindow(held.at, now) ? recentAuthBox(token, session.id, held) : null;
    if (!(await this.store.portalSessions.rotateToken(session.id, tokenDigest(token), resealed))) return null;
    await this.store.portalSessions.setStage(session.id, 'complete');
    return token;
  }

  async end(id: number): Promise<void> {
    await this.store.portalSessions.end(id, this.clock());
  }

  private inWindow(at: number, now: number): boolean {
    return now - at <= this.policy.recentAuthMs;
  }
}

function recentAuthBox(token: string, sessionId: number, held: RecentAuth): Buffer {
  return sealForSession(token, sessionId, 'recent-auth', held);
}

function openRecentAuth(token: string, sessionId: number, box: Buffer): RecentAuth | null {
  const value = openForSession(token, sessionId, 'recent-auth', box) as Partial<RecentAuth> | null;
  return typeof value?.password === 'string' && typeof value.at === 'number' ? { password: value.password, at: value.at } : null;
}
