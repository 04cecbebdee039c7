/**
 * The one sign-in sequence every protocol runs once it has parsed a client's login and password:
 * authenticate → can this protocol send the account's upstream credential? → log in upstream
 * with it → report the upstream's verdict on the stored credentials → offer the revocation watch.
 *
 * A protocol supplies only what differs (an UpstreamLeg: which credential kinds it can send and
 * how it connects and logs in upstream) and maps the typed result to its wire in its replies
 * module. Everything else is one policy for all of them:
 * - every upstream acceptance is reported (a read, and a queued write only when the account's
 *   flag changes: src/auth/service.ts), every refusal of the stored credentials too, so a flag
 *   set by one protocol is cleared by the next good login of any;
 * - one log line per login: `session.started` (info) when signed in, with the connection's `ip`
 *   binding; the service's `auth.ok` for the password alone is debug. A protocol that logs in
 *   upstream again for the same client login (DAV's every request, SMTP's reconnect) says so
 *   with UpstreamLogin.announce;
 * - the same log event for the same moment: `session.started` when signed in, `upstream.fault`
 *   (stage `connect`, or `probe` for DAV's collection probes), `upstream.login_refused` (the
 *   provider refused for another reason than the credentials: a limit, a lock, a policy; the
 *   account is not flagged), `upstream.mode_unsupported`, and `session.revoked` from the watch;
 *   `upstream.credentials_rejected` comes from the service.
 *
 * - the same metrics (src/metrics/, through `auth.metrics`): every attempt's outcome, upstream
 *   latency and failures, and the signed-in session (held by its revocation watch: subscribed
 *   while the session lives) with its revocation and the time from the revocation to its end.
 *
 * Refusals stay indistinguishable (the AuthOutcome goes to the protocol's one refusal mapping);
 * nothing here writes to a socket, and no credential or password reaches a log line.
 */
import { isPosternError, PosternError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { LoginOutcome } from '../metrics/index.js';
import { reportDescriptorsExhausted } from '../net/descriptors.js';
import type { Protocol } from '../store/types.js';
import { transportCause } from '../upstream/classify.js';
import { UpstreamRefusal, type ProviderRefusal } from '../upstream/refusal.js';
import type { AcceptedAuth, AuthAttempt, Authenticator, AuthOutcome, RevocationListener, UpstreamCredential } from './types.js';

export interface SignInDeps {
  auth: Authenticator;
  /** The connection's (or request's) logger. */
  log: Logger;
}

/** Narrows the unsealed credential to the kinds a protocol can send (a switch over every kind). */
export type CredentialGate<C extends UpstreamCredential> = (credential: UpstreamCredential) => credential is C;

/** How one protocol reaches the upstream with a credential it can send. */
export interface UpstreamLogin<T, C extends UpstreamCredential = UpstreamCredential> {
  /** What reports and logs name (DAV: the scope the request acts under). */
  protocol: Protocol;
  /**
   * Connects and logs in upstream (DAV: sends the request itself). Throws PosternError
   * UPSTREAM_AUTH_REJECTED when the upstream refused the credential, an UpstreamRefusal when it
   * refused the login for another reason (src/upstream/refusal.ts); anything else thrown is a
   * fault. What it returns belongs to the caller from then on.
   */
  login(credential: C): Promise<T>;
  /** True when the client went away meanwhile: a failure then is the client's doing, not a fault. */
  cancelled?(): boolean;
  /**
   * Asked once the upstream accepted: is this a client's new login, worth the `session.started`
   * line? Default yes. DAV: only the first request per connection and password; SMTP: not a
   * reconnect between transactions.
   */
  announce?(): boolean;
  /** Extra fields for the `upstream.fault` line (never credentials). */
  logFields?: Record<string, string>;
}

export interface UpstreamLeg<T, C extends UpstreamCredential = UpstreamCredential> extends UpstreamLogin<T, C> {
  sendable: CredentialGate<C>;
}

/** Subscribes to the password's revocation (logged as `session.revoked`); returns the unsubscribe. */
export type RevocationWatch = (onRevoked: RevocationListener) => () => void;

export type Refused = { kind: 'refused'; outcome: Exclude<AuthOutcome, { kind: 'accepted' }> };
/** The app password was right, but this protocol cannot send the account's kind of upstream login. */
export type Unsupported = { kind: 'unsupported'; accepted: AcceptedAuth };
export type Admitted<C extends UpstreamCredential> = { kind: 'admitted'; accepted: AcceptedAuth; credential: C; watch: RevocationWatch };
export type Admission<C extends UpstreamCredential> = Refused | Unsupported | Admitted<C>;

/** The upstream refused the stored credentials (reported: the account is flagged). */
export type UpstreamRejected = { kind: 'upstream-rejected'; accepted: AcceptedAuth };
/**
 * The upstream refused the login for a reason other than the stored credentials (not reported:
 * the account stays unflagged). `refusal` is safe to put on the wire and in the log.
 */
export type UpstreamRefused = { kind: 'upstream-refused'; accepted: AcceptedAuth; refusal: ProviderRefusal };
/** The upstream could not be reached or answered something unusable (logged). */
export type UpstreamFault = { kind: 'upstream-fault'; accepted: AcceptedAuth; code: ErrorCode | undefined; error: unknown };
/** The client went away while the upstream leg ran (UpstreamLogin.cancelled). */
export type Cancelled = { kind: 'cancelled'; accepted: AcceptedAuth };
export type SignedIn<T, C extends UpstreamCredential> = { kind: 'signed-in'; accepted: AcceptedAuth; credential: C; upstream: T; watch: RevocationWatch };
export type UpstreamResult<T, C extends UpstreamCredential> = UpstreamRejected | UpstreamRefused | UpstreamFault | Cancelled | SignedIn<T, C>;

export type SignInResult<T, C extends UpstreamCredential = UpstreamCredential> = Refused | Unsupported | UpstreamResult<T, C>;
/** An upstream leg that did not sign in. */
export type UpstreamFailure = UpstreamRejected | UpstreamRefused | UpstreamFault | Cancelled;
/** Everything but success: what a protocol's replies module maps to its wire. */
export type SignInFailure = Exclude<SignInResult<unknown>, { kind: 'signed-in' }>;

/** The whole sequence. Throws only if the authentication service itself fails (a bug or a broken store). */
export async function signIn<T, C extends UpstreamCredential>(deps: SignInDeps, attempt: AuthAttempt, leg: UpstreamLeg<T, C>): Promise<SignInResult<T, C>> {
  const admission = await authenticate(deps, attempt, leg.sendable);
  if (admission.kind !== 'admitted') return admission;
  return logInUpstream(deps, admission, leg);
}

/**
 * The first half, for a protocol that decides more between the password and the upstream (DAV's
 * scope check): the authentication outcome, and whether the credential can be sent at all.
 */
export async function authenticate<C extends UpstreamCredential>(deps: SignInDeps, attempt: AuthAttempt, sendable: CredentialGate<C>): Promise<Admission<C>> {
  const metrics = deps.auth.metrics;
  let outcome: AuthOutcome;
  try {
    outcome = await deps.auth.authenticate(attempt);
  } catch (err) {
    metrics?.databaseError('read');
    if (!isPosternError(err, 'STORE_UNAVAILABLE')) throw err;
    reportStoreUnavailable(deps.log, err);
    outcome = { kind: 'store-unavailable' };
  }
  if (outcome.kind !== 'accepted') {
    metrics?.login(attempt.protocol, REFUSAL_OUTCOME[outcome.kind]);
    return { kind: 'refused', outcome };
  }
  const { credential } = outcome;
  if (!sendable(credential)) {
    deps.log.error({ event: 'upstream.mode_unsupported', protocol: attempt.protocol, user: outcome.login, mode: credential.kind },
      `accounts whose upstream login is "${credential.kind}" cannot use ${attempt.protocol}; give the account upstream mode "password"`);
    metrics?.login(attempt.protocol, 'unsupported');
    return { kind: 'unsupported', accepted: outcome };
  }
  return { kind: 'admitted', accepted: outcome, credential, watch: revocationWatch(deps, outcome, attempt.protocol) };
}

const REFUSAL_OUTCOME: Record<Exclude<AuthOutcome, { kind: 'accepted' }>['kind'], LoginOutcome> = {
  'failed': 'refused',
  'throttled': 'throttled',
  'primary-refused': 'primary_refused',
  'credential-unusable': 'unusable',
  'store-unavailable': 'store_unavailable',
};

const STORE_WARNING_INTERVAL_MS = 60_000;
let lastStoreWarning = 0;

/** One line a minute at most while the database stays away: every login would repeat it. */
function reportStoreUnavailable(log: Logger, err: PosternError): void {
  const now = Date.now();
  if (now - lastStoreWarning < STORE_WARNING_INTERVAL_MS) return;
  lastStoreWarning = now;
  log.warn({ event: 'auth.store_unavailable', err: err.message }, 'the database cannot be read: logins get a temporary failure until it is back; live sessions continue');
}

const UPSTREAM_OUTCOME: Record<UpstreamResult<unknown, UpstreamCredential>['kind'], LoginOutcome> = {
  'signed-in': 'signed_in',
  'upstream-rejected': 'upstream_rejected',
  'upstream-refused': 'upstream_refused',
  'upstream-fault': 'upstream_fault',
  'cancelled': 'cancelled',
};

/**
 * The second half: log in upstream with an admitted credential and report the verdict. Also what
 * a session uses to log in again later with the same credential (SMTP, between transactions).
 */
export async function logInUpstream<T, C extends UpstreamCredential>(deps: SignInDeps, admitted: Omit<Admitted<C>, 'kind'>, leg: UpstreamLogin<T, C>): Promise<UpstreamResult<T, C>> {
  const started = performance.now();
  const result = await upstreamLeg(deps, admitted, leg);
  const metrics = deps.auth.metrics;
  metrics?.login(leg.protocol, UPSTREAM_OUTCOME[result.kind]);
  if (result.kind === 'signed-in') metrics?.upstreamLogin(leg.protocol, (performance.now() - started) / 1000);
  else if (result.kind !== 'cancelled') metrics?.upstreamFailure(leg.protocol, result.kind === 'upstream-rejected' ? 'credentials_rejected' : result.kind === 'upstream-refused' ? 'refused' : 'fault');
  return result;
}

async function upstreamLeg<T, C extends UpstreamCredential>(deps: SignInDeps, admitted: Omit<Admitted<C>, 'kind'>, leg: UpstreamLogin<T, C>): Promise<UpstreamResult<T, C>> {
  const { accepted, credential, watch } = admitted;
  // A later login of a long session (SMTP between transactions) with an access token that has
  // expired meanwhile: the provider would refuse it and the account would be flagged for nothing.
  // A temporary failure instead; the client logs in again and gets a fresh token.
  if (credential.kind === 'bearer' && credential.expiresAt !== null && credential.expiresAt <= Date.now()) {
    return upstreamFailure(deps, accepted, leg.protocol, new PosternError('OAUTH2_FAILED', "the session's OAuth2 access token has expired; the client must log in again"), { stage: 'connect', ...leg.logFields });
  }
  let upstream: T;
  try {
    upstream = await leg.login(credential);
  } catch (err) {
    // A refusal of the credentials is reported even if the client has gone meanwhile.
    if (!isPosternError(err, 'UPSTREAM_AUTH_REJECTED') && leg.cancelled?.()) return { kind: 'cancelled', accepted };
    return upstreamFailure(deps, accepted, leg.protocol, err, { stage: 'connect', ...leg.logFields });
  }
  void deps.auth.reportUpstreamAccepted(accepted);
  if (leg.announce?.() ?? true) deps.log.info({ event: 'session.started', protocol: leg.protocol, user: accepted.login, passwordId: accepted.publicId }, `${leg.protocol} session signed in upstream`);
  return { kind: 'signed-in', accepted, credential, upstream, watch };
}

/**
 * Classifies an error from anything sent upstream with the account's credential: a refusal of
 * the credential is reported (the account is flagged, logged once by the service), another
 * refusal is logged at the level it deserves (info when it passes by itself, warn when someone
 * must act) and not reported, anything else is logged as a fault. DAV's collection probes use it
 * directly.
 */
export function upstreamFailure(deps: SignInDeps, accepted: AcceptedAuth, protocol: Protocol, err: unknown, fields: Record<string, string> = { stage: 'connect' }): UpstreamRejected | UpstreamRefused | UpstreamFault {
  if (isPosternError(err, 'UPSTREAM_AUTH_REJECTED')) {
    void deps.auth.reportUpstreamRejected(accepted, protocol);
    return { kind: 'upstream-rejected', accepted };
  }
  if (err instanceof UpstreamRefusal) {
    const { refusal } = err;
    const line = { event: 'upstream.login_refused' as const, ...fields, protocol, user: accepted.login, code: refusal.code, text: refusal.text, temporary: refusal.temporary };
    const msg = `the ${protocol} upstream refused the login for a reason other than the credentials`;
    if (refusal.temporary) deps.log.info(line, msg);
    else deps.log.warn(line, msg);
    return { kind: 'upstream-refused', accepted, refusal };
  }
  const code = isPosternError(err) ? err.code : undefined;
  // Postern's own limit, not the upstream's fault: one rate-limited line for all of them.
  if (code === 'DESCRIPTORS_EXHAUSTED') {
    reportDescriptorsExhausted(deps.log, 'upstream', transportCause(err));
    return { kind: 'upstream-fault', accepted, code, error: err };
  }
  deps.log.warn({ event: 'upstream.fault', ...fields, protocol, code, user: accepted.login, err }, `could not reach the ${protocol} upstream for a signed-in client`);
  return { kind: 'upstream-fault', accepted, code, error: err };
}

/**
 * Whether a failed sign-in counts towards a connection's limit of failed logins: only refusals
 * of what the client sent. A credential postern cannot use, or an upstream that fails, is not
 * the client's failure.
 */
export function countsAsFailure(result: SignInFailure): boolean {
  if (result.kind !== 'refused') return false;
  switch (result.outcome.kind) {
    case 'failed':
    case 'throttled':
    case 'primary-refused':
      return true;
    case 'credential-unusable':
    case 'store-unavailable':
      return false;
  }
}

function revocationWatch({ auth, log }: SignInDeps, accepted: AcceptedAuth, protocol: Protocol): RevocationWatch {
  // Only what the watch needs is captured, not the protocol's deps object: the watch lives as long
  // as the relayed session, and the deps carry the pre-auth upstream slot (IMAP) and the like.
  return (onRevoked) => {
    const metrics = auth.metrics;
    const ended = metrics?.sessionStarted(protocol);
    let revokedAt: number | null = null;
    const unsubscribe = auth.watchRevocation(accepted.passwordId, (reason, at) => {
      revokedAt = at ?? Date.now();
      metrics?.sessionRevoked(protocol, reason);
      log.info({ event: 'session.revoked', user: accepted.login, passwordId: accepted.publicId, reason }, 'app-specific password no longer valid; ending its session');
      onRevoked(reason);
    });
    // A session lets go of its watch when it ends: after a revocation, that is the disconnect.
    return () => {
      unsubscribe();
      if (revokedAt !== null) metrics?.revokeToDisconnect(Math.max(0, Date.now() - revokedAt) / 1000);
      revokedAt = null;
      ended?.();
    };
  };
}
