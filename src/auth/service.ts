/**
 * The authentication service every protocol uses.
 *
 * Success path: normalise, one indexed lookup by keyed digest, checks, unseal the upstream
 * credential. No bcrypt, no cache of positive answers: a revoke is in force when it commits.
 * Failure path: one bcrypt compare (primary password?) off the event loop, the throttle, one
 * history event and one fail2ban-friendly log line. Unknown users pay the same bcrypt (dummy hash),
 * so neither the answer nor its timing tells whether an account exists. Attempts from a blocked
 * address skip the check entirely (and the bcrypt): they are refused, held back, and logged.
 * Nothing here writes to the database: history, last use and upstream status are queued
 * (src/store/write-queue.ts), so a lock held by another process never stalls a login or a relay.
 */
import { createSecretKey, type KeyObject } from 'node:crypto';
import { mayCarryAppPassword, normalizeAppPassword } from '../crypto/app-password.js';
import { digestAppPassword } from '../crypto/keys.js';
import { AAD, keyFromAppPassword, open } from '../crypto/envelope.js';
import type { Logger } from '../log.js';
import type { Protocol, Store, UpstreamStatus } from '../store/index.js';
import type { NewEvent } from '../store/events.js';
import type { DigestMatch } from '../store/app-passwords.js';
import type { GateRead } from '../store/throttle-counts.js';
import type { WriteQueue } from '../store/write-queue.js';
import type { SignInMetrics } from '../metrics/index.js';
import { normalizeLogin } from '../accounts/validation.js';
import { DUMMY_HASH, type PrimaryChecker } from './primary-checker.js';
import { plainAddress, throttleKey } from './client-address.js';
import { connectChangeFeed, type ChangeFeed } from './connect-change-feed.js';
import { REVOCATION_POLL_MS, RevocationWatcher } from './revocation-watcher.js';
import { isPosternError, PosternError } from '../errors.js';
import type { TokenManager } from '../oauth2/token-manager.js';
import { SHARED_WAIT_MS } from './shared-throttle.js';
import type { Throttle, ThrottleVerdict } from './throttle.js';
import type { AcceptedAuth, AuthAttempt, Authenticator, AuthOutcome, PrimarySignIn, PrimarySignInOutcome, RevocationListener, UpstreamCredential } from './types.js';

/** What the failure paths need of an attempt, whether a protocol login or a primary sign-in. */
type FailedAttempt = Pick<AuthAttempt, 'password' | 'clientAddress'> & { protocol: string; browser?: string };

export interface AuthServiceDeps {
  /** Read only: every write goes through `writes`. */
  store: Store;
  writes: WriteQueue;
  digestKey: Buffer;
  primaryChecker: PrimaryChecker;
  throttle: Throttle;
  log: Logger;
  /** Master user for accounts in mode `master`. */
  master?: { user: string; password: string } | null;
  primaryPasswordHint?: boolean;
  /** Access tokens for accounts in mode `oauth2`; absent when no provider is configured. */
  tokens?: TokenManager | null;
  clock?: () => number;
  metrics?: SignInMetrics;
}

/** An oauth2 account's app password was right: its data key is open, the token is yet to be had. */
interface GrantPending {
  kind: 'grant';
  accepted: Omit<AcceptedAuth, 'credential'>;
  account: { id: number; login: string; upstreamUser: string; oauth2Provider: string | null };
  dek: Buffer;
}

/** At most one `password.used` record per password per minute. */
const USE_RECORD_INTERVAL_MS = 60_000;
const CHECKER_WARNING_INTERVAL_MS = 60_000;
/**
 * bcrypt checks one client address may have running at once. Its failures are only counted once
 * they are answered, so without this one address could queue hundreds of checks in one burst
 * before its first failure counts, and every other client's failure answer would wait behind them.
 * Checks past the limit are skipped (answered as a wrong password, still counted as failures):
 * which attempts skip depends only on concurrency, never on the account, so it reveals nothing.
 */
export const MAX_CHECKS_PER_ADDRESS = 4;

/** Why a login was refused, for the log and the history only: the wire answer is the same. */
type Refusal = 'bad_password' | 'password_revoked' | 'password_expired' | 'out_of_scope' | 'invalid_login';
type Reason = Refusal | 'unknown_user' | 'primary_password' | 'throttled';

export class AuthService implements Authenticator {
  private readonly watcher: RevocationWatcher;
  private readonly lastUseWrite = new Map<number, number>();
  private readonly clock: () => number;
  private readonly held = new Set<() => void>();
  private readonly checksInFlight = new Map<string, number>();
  private lastCheckerWarning = -Infinity;
  private lastPollWarning = -Infinity;
  /** The server key as a KeyObject, made once: the digest of every login is an HMAC under it. */
  private readonly digestKey: KeyObject;

  get metrics(): SignInMetrics | undefined {
    return this.deps.metrics;
  }

  constructor(private readonly deps: AuthServiceDeps) {
    this.clock = deps.clock ?? Date.now;
    this.digestKey = createSecretKey(deps.digestKey);
    this.watcher = new RevocationWatcher(deps.store.passwords, this.clock, REVOCATION_POLL_MS, (err) => this.revocationPollFailed(err));
  }

  async authenticate(attempt: AuthAttempt): Promise<AuthOutcome> {
    const login = safeLogin(attempt.login);
    const normalized = login === null ? null : normalizeAppPassword(attempt.password);
    const digest = normalized === null ? null : digestAppPassword(this.digestKey, normalized);
    // The usual login reads once: the password's row and the throttle's counts in one query.
    const lookup = digest === null ? undefined : await this.lookUp(attempt.clientAddress, login!, digest);
    // Invalid login names are throttled too, under the empty name: they still cost a bcrypt.
    const asked = this.deps.throttle.before(attempt.clientAddress, login ?? '', lookup?.gate);
    const gate = asked instanceof Promise ? await asked : asked;
    if (gate.blocked) return this.refuseThrottled(login, attempt);
    let match = lookup?.match;
    if (gate.delayMs) {
      await this.sleep(gate.delayMs);
      // The row as it is after the hold: a revoke committed meanwhile is in force.
      if (digest !== null) match = await this.deps.store.passwords.findByDigest(digest);
    }
    const checked = login === null ? { refusal: 'invalid_login' as const } : normalized === null ? { refusal: 'bad_password' as const } : this.verifyAppPassword(login, attempt, normalized, match);
    if ('kind' in checked) {
      if (checked.kind !== 'credential-unusable') this.deps.throttle.succeeded(attempt.clientAddress, login!, gate);
      return checked.kind === 'grant' ? this.withAccessToken(checked, attempt.protocol) : checked;
    }
    return this.fail(login, attempt, checked.refusal);
  }

  /**
   * The password's row by its keyed digest, with the throttle's counts when it reads any
   * (Throttle.gateQuery): a blocked address's guess is looked up too, which costs no bcrypt and
   * decides nothing (the gate refuses it before the row is looked at).
   */
  private lookUp(clientAddress: string, login: string, digest: Buffer): Promise<{ match: DigestMatch | undefined; gate?: GateRead }> {
    const query = this.deps.throttle.gateQuery?.(clientAddress, login);
    if (query) return this.deps.store.passwords.findForLogin(digest, query);
    return this.deps.store.passwords.findByDigest(digest).then((match) => ({ match }));
  }

  /**
   * The account page's sign-in: login and primary password, through the same throttle, the same
   * bcrypt/scrypt pool, the same failure log line (fail2ban reads it, protocol `portal`) and the
   * same history as every protocol. Unknown logins pay the same hash as real ones and get the same
   * answer. Only the primary hash is compared: an app-specific password never matches it, so it
   * can never open the page that creates and revokes app-specific passwords.
   */
  async signInWithPrimary(attempt: PrimarySignIn): Promise<PrimarySignInOutcome> {
    const login = safeLogin(attempt.login);
    const failed: FailedAttempt = { ...attempt, protocol: 'portal' };
    const gate = await this.deps.throttle.before(attempt.clientAddress, login ?? '');
    if (gate.blocked) return this.refuseThrottled(login, failed);
    if (gate.delayMs) await this.sleep(gate.delayMs);
    const account = login === null ? undefined : await this.deps.store.accounts.findByLogin(login);
    const matches = await this.isPrimaryPassword(failed, account?.primaryHash ?? DUMMY_HASH);
    if (matches && account) {
      this.deps.throttle.succeeded(attempt.clientAddress, account.login);
      return { kind: 'accepted', account };
    }
    const verdict = await this.deps.throttle.failed(attempt.clientAddress, login ?? '', attempt.password, account !== undefined);
    const reason: Reason = account ? 'bad_password' : login === null ? 'invalid_login' : 'unknown_user';
    this.logFailure('auth.refused', login, account !== undefined, failed, reason);
    this.recordFailure(account, failed, 'login.failed', reason);
    await this.sleep(verdict.delayMs);
    return { kind: 'failed' };
  }

  /**
   * A page sign-in that signInWithPrimary refused (and counted) but the provider then confirmed:
   * self-enrolment, or a REJECTED account's new password. Its failure is cleared as an accepted
   * sign-in's record is, so the holder does not carry a penalty into the next sign-in.
   */
  acceptedByProvider(clientAddress: string, login: string): void {
    this.deps.throttle.succeeded(clientAddress, login);
  }

  reportUpstreamRejected(accepted: AcceptedAuth, protocol: Protocol): Promise<void> {
    const now = this.clock();
    // A refused access token is a grant problem too: the fix is the same as for invalid_grant.
    const fix = accepted.credential.kind === 'bearer' ? `renew the grant with "postern user reauth ${accepted.login}"` : 'check them with "postern user set-upstream"';
    this.deps.log.error({ event: 'upstream.credentials_rejected', protocol, user: accepted.login },
      `upstream rejected the stored credentials for this account; ${fix}`);
    return this.recordStatus(accepted, 'rejected', now, { type: 'account.upstream_rejected', at: now, accountId: accepted.accountId, login: accepted.login, protocol });
  }

  /**
   * The second half of an oauth2 account's login: an access token, refreshed when about to expire.
   * The client's password was right in every case, so nothing here is a refusal: a grant the
   * provider refused flags the account (like a refused upstream password, and with the command
   * that fixes it), and every failure is `credential-unusable`, a temporary failure on the wire
   * (never a "wrong password", which would make a client discard the app password it saved).
   */
  private async withAccessToken(pending: GrantPending, protocol: Protocol): Promise<AuthOutcome> {
    const { accepted, account } = pending;
    const tokens = this.deps.tokens;
    try {
      if (!tokens) throw new PosternError('OAUTH2_FAILED', 'no OAuth2 provider is configured (config oauth2.providers)');
      const credential = await tokens.bearer(account, pending.dek);
      return { ...accepted, credential };
    } catch (err) {
      const provider = account.oauth2Provider;
      if (isPosternError(err, 'OAUTH2_GRANT_REJECTED')) {
        const now = this.clock();
        this.deps.log.error({ event: 'upstream.grant_rejected', protocol, user: account.login, provider },
          `the OAuth2 provider refused this account's grant (revoked, expired or password changed); renew it with "postern user reauth ${account.login}"`);
        await this.recordStatus(accepted, 'rejected', now, {
          type: 'account.upstream_rejected', at: now, accountId: account.id, login: account.login, protocol, detail: { reason: 'invalid_grant', fix: 'postern user reauth' },
        });
      } else {
        const code = isPosternError(err) ? err.code : undefined;
        this.deps.log.warn({ event: 'oauth2.refresh_failed', protocol, user: account.login, provider, code, err: isPosternError(err) ? err.message : 'internal error' },
          'could not get a fresh OAuth2 access token for a signed-in client');
      }
      return { kind: 'credential-unusable' };
    }
  }

  /**
   * On every successful upstream login: nothing when the login's own lookup saw 'ok' already (no
   * read, no write: issue 15); else a queued write. A change committed between that lookup and
   * now is seen by the next login.
   */
  async reportUpstreamAccepted(accepted: AcceptedAuth): Promise<void> {
    if (accepted.upstreamStatus === 'ok') return;
    await this.recordStatus(accepted, 'ok', this.clock());
  }

  /**
   * The upstream status is bookkeeping for admins: a busy or failing database must not turn a
   * login the upstream has already accepted into a failure (nor leave its upstream socket open).
   * The read keeps the queue (and its write lock) out of every ordinary login; the queued write
   * checks again, so that a flip is recorded once however many logins saw it.
   */
  private async recordStatus(accepted: Pick<AcceptedAuth, 'accountId'>, status: UpstreamStatus, at: number, event?: NewEvent): Promise<void> {
    let current: UpstreamStatus | undefined;
    try {
      current = await this.deps.store.accounts.upstreamStatus(accepted.accountId);
    } catch (err) {
      this.deps.log.warn({ event: 'store.status_failed', err: (err as Error).message }, 'could not read the upstream status of an account');
      return;
    }
    if (current === undefined || current === status) return;
    this.deps.writes.enqueue({ kind: 'upstream-status', accountId: accepted.accountId, status, at, event });
  }

  watchRevocation(passwordId: number, onRevoked: RevocationListener): () => void {
    return this.watcher.watch(passwordId, onRevoked);
  }

  /** Revocations committed elsewhere arrive through the feed (PostgreSQL NOTIFY); returns the undo. */
  followChangeFeed(feed: ChangeFeed): () => void {
    return connectChangeFeed(this.watcher, feed);
  }

  /** The next poll retries; while the database stays away, one line a minute. */
  private revocationPollFailed(err: unknown): void {
    const now = this.clock();
    if (now - this.lastPollWarning < CHECKER_WARNING_INTERVAL_MS) return;
    this.lastPollWarning = now;
    this.deps.log.warn({ event: 'auth.revocation_poll_failed', code: (err as { code?: string }).code ?? null, err: (err as Error).message },
      'revocations could not be read from the database; retrying at the next poll, live sessions continue');
  }

  async close(): Promise<void> {
    this.watcher.stop();
    for (const release of [...this.held]) release();
    await this.deps.primaryChecker.close();
  }

  /** The hot path, after the lookup. Anything that is not a valid app password for this login comes back as a refusal reason (for the log only). */
  private verifyAppPassword(login: string, attempt: AuthAttempt, normalized: string, match: DigestMatch | undefined): AcceptedAuth | GrantPending | { kind: 'credential-unusable' } | { refusal: Refusal } {
    // Another account's app password is just a wrong password for this one.
    if (!match || match.account.login !== login) return { refusal: 'bad_password' };
    const { password, account } = match;
    const now = this.clock();
    // Checked on every login, against the clock: a password stops working at its expiry instant.
    if (password.revokedAt !== null) return { refusal: 'password_revoked' };
    if (password.expiresAt !== null && password.expiresAt <= now) return { refusal: 'password_expired' };
    if (!(attempt.acceptScopes ?? [attempt.protocol]).some((scope) => password.scopes.includes(scope))) return { refusal: 'out_of_scope' };
    const credential = this.unsealCredential(match, normalized);
    if (!credential) return { kind: 'credential-unusable' };
    this.recordUse({ id: password.id, publicId: password.publicId, accountId: account.id, login }, attempt, now);
    // Debug: the login's one info line is sign-in.ts's `session.started`, once upstream agrees. The
    // check spares every login building a message that is not written.
    if (this.deps.log.isLevelEnabled('debug')) {
      this.deps.log.debug({ event: 'auth.ok', protocol: attempt.protocol, ip: attempt.clientAddress, user: login, passwordId: password.publicId },
        `authenticated ip=${attempt.clientAddress} protocol=${attempt.protocol} password_id=${password.publicId} user=${JSON.stringify(login)}`);
    }
    const { id: accountId, upstreamStatus } = account;
    if ('dek' in credential) {
      const accepted = { kind: 'accepted' as const, accountId, login, passwordId: password.id, publicId: password.publicId, scopes: password.scopes, upstreamStatus };
      return { kind: 'grant', accepted, account, dek: credential.dek };
    }
    return { kind: 'accepted', accountId, login, passwordId: password.id, publicId: password.publicId, scopes: password.scopes, upstreamStatus, credential };
  }

  private unsealCredential(match: DigestMatch, normalized: string): UpstreamCredential | { dek: Buffer } | null {
    const { account, password } = match;
    if (account.upstreamMode === 'master') {
      const master = this.deps.master;
      return master ? { kind: 'master', username: master.user, password: master.password, authzid: account.upstreamUser } : null;
    }
    if (!password.dekBox || !password.dekSalt || !account.secretBox) return null;
    try {
      const dek = open(keyFromAppPassword(normalized, password.dekSalt), password.dekBox, AAD.dekForAppPassword(account.id, password.publicId));
      // The token set is opened by the token manager, which may have to refresh and re-seal it.
      if (account.upstreamMode === 'oauth2') return { dek };
      const secret = open(dek, account.secretBox, AAD.secret(account.id));
      return { kind: 'password', username: account.upstreamUser, password: secret.toString('utf8') };
    } catch (err) {
      this.deps.log.error({ event: 'auth.unseal_failed', user: account.login, passwordId: password.publicId, code: (err as { code?: string }).code }, 'sealed upstream credential could not be opened');
      return null;
    }
  }

  /** Last use on the row and a `password.used` history entry, at most once a minute per password. */
  private recordUse(used: { id: number; publicId: string; accountId: number; login: string }, attempt: AuthAttempt, now: number): void {
    const last = this.lastUseWrite.get(used.id);
    if (last !== undefined && now - last < USE_RECORD_INTERVAL_MS) return;
    this.lastUseWrite.set(used.id, now);
    this.deps.writes.enqueue({
      kind: 'use', passwordId: used.id, at: now, protocol: attempt.protocol, address: attempt.clientAddress,
      event: {
        type: 'password.used', at: now, accountId: used.accountId, login: used.login,
        passwordId: used.publicId, protocol: attempt.protocol, address: attempt.clientAddress,
      },
    });
  }

  private async fail(login: string | null, attempt: AuthAttempt, refusal: Refusal): Promise<AuthOutcome> {
    const account = login === null ? undefined : await this.deps.store.accounts.findByLogin(login);
    // One bcrypt per failure, dummy hash for unknown users: same cost either way (a burst from one
    // address past MAX_CHECKS_PER_ADDRESS skips it, whichever the account).
    const primary = (await this.isPrimaryPassword(attempt, account?.primaryHash ?? DUMMY_HASH)) && account !== undefined;
    const verdict = await this.deps.throttle.failed(attempt.clientAddress, login ?? '', attempt.password, account !== undefined);
    const reason: Reason = primary ? 'primary_password' : account ? refusal : login === null ? 'invalid_login' : 'unknown_user';
    this.logFailure(primary ? 'auth.primary_refused' : 'auth.refused', login, account !== undefined, attempt, reason);
    this.recordFailure(account, attempt, primary ? 'primary.refused' : 'login.failed', reason);
    await Promise.all([this.sleep(verdict.delayMs), this.untilShared(verdict)]);
    if (primary) return { kind: 'primary-refused', hint: (this.deps.primaryPasswordHint ?? true) && verdict.cleanRecord };
    return { kind: 'failed' };
  }

  /**
   * A blocked address is refused without looking at the password, and without a bcrypt: a flood
   * from it must not keep the workers busy. The answer is held back as long as the longest delay.
   */
  private async refuseThrottled(login: string | null, attempt: FailedAttempt): Promise<{ kind: 'throttled' }> {
    const account = login === null ? undefined : await this.deps.store.accounts.findByLogin(login);
    const verdict = await this.deps.throttle.failed(attempt.clientAddress, login ?? '', attempt.password, account !== undefined);
    this.logFailure('auth.refused', login, account !== undefined, attempt, 'throttled');
    this.recordFailure(account, attempt, 'login.failed', 'throttled');
    await this.sleep(verdict.delayMs);
    return { kind: 'throttled' };
  }

  private async isPrimaryPassword(attempt: FailedAttempt, hash: string): Promise<boolean> {
    const key = throttleKey(attempt.clientAddress);
    const running = this.checksInFlight.get(key) ?? 0;
    if (running >= MAX_CHECKS_PER_ADDRESS) return false;
    this.checksInFlight.set(key, running + 1);
    try {
      return await this.deps.primaryChecker.compare(attempt.password, hash, this.deps.digestKey);
    } catch (err) {
      // Pool saturated or closing: answer "wrong password" (no hint) rather than fail the protocol.
      const now = this.clock();
      if (now - this.lastCheckerWarning >= CHECKER_WARNING_INTERVAL_MS) {
        this.lastCheckerWarning = now;
        this.deps.log.warn({ event: 'auth.primary_check_unavailable', err: (err as Error).message }, 'primary-password check could not run (bcrypt pool saturated?); answering as a wrong password');
      }
      return false;
    } finally {
      const left = (this.checksInFlight.get(key) ?? 1) - 1;
      if (left > 0) this.checksInFlight.set(key, left);
      else this.checksInFlight.delete(key);
    }
  }

  /**
   * The one line per failure that fail2ban reads (config/fail2ban/filter.d/postern.conf). Field
   * order is part of the contract: event, protocol and ip come before the user-controlled login,
   * in the JSON and in the human msg, so no login can forge the address a filter extracts
   * (logins never contain whitespace or control characters; JSON.stringify quotes the rest).
   * Nothing derived from the password is logged. A login typed where the password belongs looks
   * like an app password: for unknown users that shape is not logged either. IPv4-mapped IPv6
   * addresses are logged as IPv4, so that a ban lands in the IPv4 firewall where the client is.
   */
  private logFailure(event: 'auth.refused' | 'auth.primary_refused', login: string | null, known: boolean, attempt: FailedAttempt, reason: Reason): void {
    const user = login === null ? '' : !known && mayCarryAppPassword(login) ? '[looks like an app password]' : login;
    const ip = plainAddress(attempt.clientAddress);
    this.deps.log.warn({ event, protocol: attempt.protocol, ip, user, reason },
      `authentication failed ip=${ip} protocol=${attempt.protocol} reason=${reason} user=${JSON.stringify(user)}`);
  }

  /**
   * History for known accounts, queued: it is written after the answer, so neither the write nor
   * a lock it waits for can be timed, and a flood of failures costs a bounded queue, not the loop.
   */
  private recordFailure(account: { id: number; login: string } | undefined, attempt: FailedAttempt, type: 'primary.refused' | 'login.failed', reason: Reason): void {
    if (!account) return;
    const detail = attempt.browser === undefined ? { reason } : { reason, browser: attempt.browser };
    const event = { type, at: this.clock(), accountId: account.id, login: account.login, protocol: attempt.protocol, address: attempt.clientAddress, detail };
    this.deps.writes.enqueue({ kind: 'event', event });
  }

  /**
   * Holds a failure answer until the other processes can see it (bounded: the count is written
   * anyway), so the client's next attempt, on any worker, meets it; a blocked address waits not.
   */
  private untilShared(verdict: ThrottleVerdict): Promise<void> {
    const shared = verdict.shared;
    if (!shared) return Promise.resolve();
    return new Promise((resolve) => {
      const release = () => {
        clearTimeout(timer);
        this.held.delete(release);
        resolve();
      };
      const timer = setTimeout(release, SHARED_WAIT_MS);
      this.held.add(release);
      void shared.then(release);
    });
  }

  /** Holds an answer back; close() lets every held answer go at once so shutdown is not delayed. */
  private sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const release = () => {
        clearTimeout(timer);
        this.held.delete(release);
        resolve();
      };
      const timer = setTimeout(release, ms);
      this.held.add(release);
    });
  }
}

function safeLogin(input: string): string | null {
  try {
    return normalizeLogin(input);
  } catch {
    return null;
  }
}

