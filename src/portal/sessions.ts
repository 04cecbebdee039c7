/**
 * Account-page sessions. The cookie is 32 random bytes; the database holds its SHA-256 (so a read
 * of the database gives no cookie) and every rule is checked on each request against the row, so
 * an admin, a second instance or a primary-password change ends a session at once: idle (15 min),
 * absolute (12 h), ended, account gone, primary password changed since sign-in.
 *
 * Recent authentication: creating an app-specific password in mode `password` needs the primary
 * password itself (it unseals the data key the new password must carry, src/crypto/envelope.ts).
 * It is held here, in this process's memory only, for the recent-auth window after it was typed,
 * and dropped when the window passes or the session ends; never in the database or a log. A
 * second instance or a restart does not have it and simply asks for the password again, which is
 * what the window demands anyway. (A JavaScript string cannot be wiped; it becomes garbage.)
 */
import { createHash, randomBytes } from 'node:crypto';
import type { AccountRow, PortalSessionRow, PortalStage, Store } from '../store/index.js';

export interface SessionPolicy {
  idleMs: number;
  absoluteMs: number;
  recentAuthMs: number;
}

export interface LiveSession {
  session: PortalSessionRow;
  account: AccountRow;
}

const SWEEP_MS = 30_000;

export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export class PortalSessions {
  private readonly vault = new Map<number, { password: string; until: number }>();
  private readonly sweep: NodeJS.Timeout;

  constructor(private readonly store: Store, private readonly policy: SessionPolicy, private readonly clock: () => number = Date.now) {
    this.sweep = setInterval(() => this.forgetExpired(), SWEEP_MS);
    this.sweep.unref();
  }

  async create(account: AccountRow, stage: PortalStage, password: string, where: { address: string; browser: string }): Promise<{ token: string; id: number }> {
    const token = randomBytes(32).toString('base64url');
    const now = this.clock();
    // Rows of sessions long over go at each sign-in: a table the size of the active users.
    await this.store.portalSessions.prune(now - this.policy.absoluteMs, now - 2 * this.policy.absoluteMs);
    const id = await this.store.portalSessions.insert({
      tokenDigest: tokenDigest(token), accountId: account.id, stage, at: now,
      primaryChangedAt: account.primaryChangedAt, address: where.address, browser: where.browser,
    });
    this.remember(id, password, now);
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
    return { session: { ...session, seenAt: now }, account };
  }

  /** The primary password, when it was typed within the recent-auth window in this process. */
  recentPassword(live: LiveSession): string | null {
    const held = this.vault.get(live.session.id);
    const now = this.clock();
    if (!held || held.until <= now || now - live.session.passwordAt > this.policy.recentAuthMs) return null;
    return held.password;
  }

  async passwordTyped(live: LiveSession, password: string): Promise<void> {
    const now = this.clock();
    await this.store.portalSessions.passwordTyped(live.session.id, now);
    this.remember(live.session.id, password, now);
  }

  /**
   * Both steps done. The session gets a new cookie value and the one it had until now is dead
   * (session fixation, OWASP: a token someone learned or planted before the second factor — one
   * set while only the password was known — must not become a signed-in session). Null when the
   * session ended meanwhile.
   */
  async complete(live: LiveSession): Promise<string | null> {
    const token = randomBytes(32).toString('base64url');
    if (!(await this.store.portalSessions.rotateToken(live.session.id, tokenDigest(token)))) return null;
    await this.store.portalSessions.setStage(live.session.id, 'complete');
    return token;
  }

  async end(id: number): Promise<void> {
    this.vault.delete(id);
    await this.store.portalSessions.end(id, this.clock());
  }

  close(): void {
    clearInterval(this.sweep);
    this.vault.clear();
  }

  private remember(id: number, password: string, now: number): void {
    this.vault.set(id, { password, until: now + this.policy.recentAuthMs });
  }

  private forgetExpired(): void {
    const now = this.clock();
    for (const [id, held] of this.vault) if (held.until <= now) this.vault.delete(id);
  }
}
