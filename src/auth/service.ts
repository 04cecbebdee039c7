/**
 * The authentication service every protocol uses.
 *
 * Success path: normalise, one indexed lookup by keyed digest, checks, unseal the upstream
 * credential. No bcrypt, no cache of positive answers: a revoke is in force when it commits.
 * Failure path: one bcrypt compare (primary password?) off the event loop, the throttle, one
 * history event and one fail2ban-friendly log line. Unknown users pay the same bcrypt (dummy hash).
 */
import { normalizeAppPassword } from '../crypto/app-password.js';
import { digestAppPassword } from '../crypto/keys.js';
import { AAD, keyFromAppPassword, open } from '../crypto/envelope.js';
import type { Logger } from '../log.js';
import type { Protocol, Store } from '../store/index.js';
import { normalizeLogin } from '../accounts/validation.js';
import { DUMMY_HASH, type PrimaryChecker } from './primary-checker.js';
import { RevocationWatcher } from './revocation-watcher.js';
import type { Throttle } from './throttle.js';
import type { AcceptedAuth, AuthAttempt, Authenticator, AuthOutcome, RevocationListener, UpstreamCredential } from './types.js';

export interface AuthServiceDeps {
  store: Store;
  digestKey: Buffer;
  primaryChecker: PrimaryChecker;
  throttle: Throttle;
  log: Logger;
  /** Master user for accounts in mode `master`. */
  master?: { user: string; password: string } | null;
  primaryPasswordHint?: boolean;
  clock?: () => number;
}

/** At most one `password.used` write per password per minute: logins stay read-only. */
const USE_RECORD_INTERVAL_MS = 60_000;

export class AuthService implements Authenticator {
  private readonly watcher: RevocationWatcher;
  private readonly lastUseWrite = new Map<number, number>();
  private readonly clock: () => number;

  constructor(private readonly deps: AuthServiceDeps) {
    this.clock = deps.clock ?? Date.now;
    this.watcher = new RevocationWatcher(deps.store.passwords, this.clock);
  }

  async authenticate(attempt: AuthAttempt): Promise<AuthOutcome> {
    const login = safeLogin(attempt.login);
    const gate = login === null ? { blocked: false } : this.deps.throttle.before(attempt.clientAddress, login);
    if (!gate.blocked && login !== null) {
      const outcome = this.verifyAppPassword(login, attempt);
      if (outcome) {
        if (outcome.kind === 'accepted') this.deps.throttle.succeeded(attempt.clientAddress, login);
        return outcome;
      }
    }
    return this.fail(login, attempt, gate.blocked);
  }

  reportUpstreamRejected(accepted: AcceptedAuth, protocol: Protocol): void {
    const now = this.clock();
    const changed = this.deps.store.accounts.setUpstreamStatus(accepted.accountId, 'rejected', now);
    this.deps.log.error({ event: 'upstream.credentials_rejected', protocol, user: accepted.login },
      'upstream rejected the stored credentials for this account; check them with "postern user set-upstream"');
    if (changed) this.deps.store.events.append({ type: 'account.upstream_rejected', at: now, accountId: accepted.accountId, login: accepted.login, protocol });
  }

  reportUpstreamAccepted(accepted: AcceptedAuth): void {
    this.deps.store.accounts.setUpstreamStatus(accepted.accountId, 'ok', this.clock());
  }

  watchRevocation(passwordId: number, onRevoked: RevocationListener): () => void {
    return this.watcher.watch(passwordId, onRevoked);
  }

  async close(): Promise<void> {
    this.watcher.stop();
    await this.deps.primaryChecker.close();
  }

  /** The hot path. Returns null for anything that is not a valid app password for this login. */
  private verifyAppPassword(login: string, attempt: AuthAttempt): AcceptedAuth | { kind: 'credential-unusable' } | null {
    const normalized = normalizeAppPassword(attempt.password);
    if (!normalized) return null;
    const match = this.deps.store.passwords.findByDigest(digestAppPassword(this.deps.digestKey, normalized));
    if (!match || match.account.login !== login) return null;
    const { password, account } = match;
    const now = this.clock();
    if (password.revokedAt !== null || (password.expiresAt !== null && password.expiresAt <= now)) return null;
    if (!(attempt.acceptScopes ?? [attempt.protocol]).some((scope) => password.scopes.includes(scope))) return null;
    const credential = this.unsealCredential(match, normalized);
    if (!credential) return { kind: 'credential-unusable' };
    this.recordUse(password.id, attempt, now);
    this.deps.log.info({ event: 'auth.ok', protocol: attempt.protocol, user: login, ip: attempt.clientAddress, passwordId: password.publicId }, 'authenticated');
    return { kind: 'accepted', accountId: account.id, login, passwordId: password.id, publicId: password.publicId, credential };
  }

  private unsealCredential(match: NonNullable<ReturnType<Store['passwords']['findByDigest']>>, normalized: string): UpstreamCredential | null {
    const { account, password } = match;
    if (account.upstreamMode === 'master') {
      const master = this.deps.master;
      return master ? { username: master.user, password: master.password, authzid: account.upstreamUser } : null;
    }
    if (!password.dekBox || !password.dekSalt || !account.secretBox) return null;
    try {
      const dek = open(keyFromAppPassword(normalized, password.dekSalt), password.dekBox, AAD.dekForAppPassword(account.id, password.publicId));
      const secret = open(dek, account.secretBox, AAD.secret(account.id));
      return { username: account.upstreamUser, password: secret.toString('utf8') };
    } catch (err) {
      this.deps.log.error({ event: 'auth.unseal_failed', user: account.login, passwordId: password.publicId, code: (err as { code?: string }).code }, 'sealed upstream credential could not be opened');
      return null;
    }
  }

  private recordUse(passwordId: number, attempt: AuthAttempt, now: number): void {
    const last = this.lastUseWrite.get(passwordId);
    if (last !== undefined && now - last < USE_RECORD_INTERVAL_MS) return;
    this.lastUseWrite.set(passwordId, now);
    try {
      this.deps.store.transaction(() => {
        this.deps.store.passwords.markUsed(passwordId, now, attempt.protocol, attempt.clientAddress);
      });
    } catch (err) {
      // A busy database must not turn a valid login into a failure; the next use records it.
      this.deps.log.warn({ event: 'store.use_record_failed', err }, 'could not record password use');
    }
  }

  private async fail(login: string | null, attempt: AuthAttempt, blocked: boolean): Promise<AuthOutcome> {
    const account = login === null ? undefined : this.deps.store.accounts.findByLogin(login);
    // Exactly one bcrypt per failure, dummy hash for unknown users: same cost either way.
    const isPrimary = await this.deps.primaryChecker.compare(attempt.password, account?.primaryHash ?? DUMMY_HASH);
    const primary = isPrimary && account !== undefined;
    const verdict = this.deps.throttle.failed(attempt.clientAddress, login ?? '', attempt.password);
    const reason = blocked ? 'throttled' : primary ? 'primary_password' : account ? 'bad_password' : 'unknown_user';
    this.deps.log.warn({ event: primary ? 'auth.primary_refused' : 'auth.refused', protocol: attempt.protocol, user: login ?? '', ip: attempt.clientAddress, reason },
      `authentication failed for user=${JSON.stringify(login ?? '')} ip=${attempt.clientAddress} protocol=${attempt.protocol} reason=${reason}`);
    this.recordFailure(account, attempt, primary ? 'primary.refused' : 'login.failed', reason);
    await sleep(verdict.delayMs);
    if (blocked) return { kind: 'throttled' };
    if (primary) return { kind: 'primary-refused', hint: (this.deps.primaryPasswordHint ?? true) && verdict.cleanRecord };
    return { kind: 'failed' };
  }

  private recordFailure(account: { id: number; login: string } | undefined, attempt: AuthAttempt, type: 'primary.refused' | 'login.failed', reason: string): void {
    if (!account) return;
    try {
      this.deps.store.events.append({ type, at: this.clock(), accountId: account.id, login: account.login, protocol: attempt.protocol, address: attempt.clientAddress, detail: { reason } });
    } catch (err) {
      this.deps.log.warn({ event: 'store.event_failed', err }, 'could not record failed login');
    }
  }
}

function safeLogin(input: string): string | null {
  try {
    return normalizeLogin(input);
  } catch {
    return null;
  }
}

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}
