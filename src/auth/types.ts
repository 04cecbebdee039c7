/**
 * The contract between the authentication service and the protocols. Every protocol asks the
 * same question and maps the typed outcome to its own wire answer in one place (see each
 * protocol's replies module). Nothing here knows about sockets.
 */
import type { SignInMetrics } from '../metrics/index.js';
import type { AccountRow, Protocol, RevokeReason, UpstreamStatus } from '../store/types.js';

export interface AuthAttempt {
  login: string;
  password: string;
  protocol: Protocol;
  /** Client IP address as seen by the listener (no port). */
  clientAddress: string;
  /**
   * Scopes any one of which admits the password; defaults to `[protocol]`. DAV uses it for paths
   * a shared CalDAV+CardDAV server serves to both (see src/dav/routes.ts).
   */
  acceptScopes?: readonly Protocol[];
}

/**
 * How postern logs in upstream for an account: what the authentication service unseals and hands
 * to the protocol, never what the client sent. A union over `kind` so that every place that sends
 * a credential decides for each kind (a switch without a default): a new kind — an OAuth2 bearer
 * token, `{ kind: 'bearer'; username; token }` — is a compile error exactly where a protocol must
 * learn to send it or refuse it.
 */
export type UpstreamCredential = PasswordCredential | MasterCredential | BearerCredential;

/** The account's own upstream login and its real password. */
export interface PasswordCredential {
  kind: 'password';
  username: string;
  password: string;
}

/**
 * A master user's login acting for the account (`authzid`): SASL PLAIN with an authorization
 * identity (RFC 4616), which only SASL protocols can express.
 */
export interface MasterCredential {
  kind: 'master';
  /** The master user. */
  username: string;
  password: string;
  /** The account's upstream user. */
  authzid: string;
}

/**
 * An OAuth2 access token for the account's upstream user (upstream mode `oauth2`), sent as SASL
 * XOAUTH2 / OAUTHBEARER (RFC 7628) or HTTP `Authorization: Bearer` (RFC 6750). The service has
 * refreshed it if it was about to expire (src/oauth2/token-manager.ts); `expiresAt` lets a long
 * session (SMTP reconnecting between transactions) see that it went stale.
 */
export interface BearerCredential {
  kind: 'bearer';
  /** The account's upstream user (the mailbox address the token was granted for). */
  username: string;
  token: string;
  /** Milliseconds since the epoch; null when the provider did not say. */
  expiresAt: number | null;
}

/** What SASL PLAIN (and POP3's USER/PASS) can carry: a password, with or without an authorization identity. */
export type PlainCredential = PasswordCredential | MasterCredential;

export type CredentialKind = UpstreamCredential['kind'];

export interface AcceptedAuth {
  kind: 'accepted';
  accountId: number;
  login: string;
  /** Internal row id, what revocation watches refer to. */
  passwordId: number;
  /** The id admins see in `postern password list`. */
  publicId: string;
  credential: UpstreamCredential;
  /** All scopes of the password (DAV narrows `acceptScopes` answers with it); absent = unknown. */
  scopes?: readonly Protocol[];
  /**
   * The account's upstream status as the login's own lookup read it: a successful upstream login
   * records 'ok' only when it was something else, with no second read (issue 15). Absent: read it.
   */
  upstreamStatus?: UpstreamStatus;
}

export type AuthOutcome =
  | AcceptedAuth
  /** The account's primary password. `hint` false: answer exactly as for `failed`. */
  | { kind: 'primary-refused'; hint: boolean }
  | { kind: 'failed' }
  /** Too many failures; answered exactly like `failed` on the wire. */
  | { kind: 'throttled' }
  /** The app password is valid but its sealed credential cannot be used (fault, not refusal). */
  | { kind: 'credential-unusable' }
  /**
   * The database could not be read (PostgreSQL unreachable, SQLite locked or gone): a temporary
   * failure on the wire, never a wrong password, so the client keeps its saved app password.
   */
  | { kind: 'store-unavailable' };

/** `at`: when the revocation was committed, or the expiry instant (ms since the epoch), if known. */
export type RevocationListener = (reason: RevokeReason | 'account-removed', at?: number) => void;

export interface Authenticator {
  authenticate(attempt: AuthAttempt): Promise<AuthOutcome>;
  /**
   * The upstream refused the stored real credentials: flag the account, log once. May settle
   * after a database read; never rejects (bookkeeping must not fail a session), so a caller need
   * not wait for it.
   */
  reportUpstreamRejected(accepted: AcceptedAuth, protocol: Protocol): void | Promise<void>;
  /** The upstream accepted them: clears a previous flag (the same promise rules). */
  reportUpstreamAccepted(accepted: AcceptedAuth): void | Promise<void>;
  /** Calls `onRevoked` once, within a second, when the password is revoked, expires or its account goes. */
  watchRevocation(passwordId: number, onRevoked: RevocationListener): () => void;
  /** Where the sign-in pipeline records its metrics; absent in tests that need none. */
  readonly metrics?: SignInMetrics | undefined;
}

/** A sign-in to the account page with the primary password (AuthService.signInWithPrimary). */
export interface PrimarySignIn {
  login: string;
  password: string;
  clientAddress: string;
  /** The User-Agent, for the account's history (truncated by the caller). */
  browser: string;
}

/** Refusals look alike on purpose: wrong password, unknown login and throttled get one answer. */
export type PrimarySignInOutcome = { kind: 'accepted'; account: AccountRow } | { kind: 'failed' } | { kind: 'throttled' };

/** The primary-password sentence every protocol uses (config may turn it off). */
export const PRIMARY_PASSWORD_REFUSED_TEXT =
  'The primary password cannot be used here; create an app-specific password for this app and use that instead.';
