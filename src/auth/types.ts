/**
 * The contract between the authentication service and the protocols. Every protocol asks the
 * same question and maps the typed outcome to its own wire answer in one place (see each
 * protocol's replies module). Nothing here knows about sockets.
 */
import type { Protocol, RevokeReason } from '../store/types.js';

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
 * How to log in upstream. With `authzid`, `username`/`password` are the master user's and the
 * login is SASL PLAIN acting for `authzid` (RFC 4616); without, a plain login as the account.
 */
export interface UpstreamCredential {
  username: string;
  password: string;
  authzid?: string;
}

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
}

export type AuthOutcome =
  | AcceptedAuth
  /** The account's primary password. `hint` false: answer exactly as for `failed`. */
  | { kind: 'primary-refused'; hint: boolean }
  | { kind: 'failed' }
  /** Too many failures; answered exactly like `failed` on the wire. */
  | { kind: 'throttled' }
  /** The app password is valid but its sealed credential cannot be used (fault, not refusal). */
  | { kind: 'credential-unusable' };

export type RevocationListener = (reason: RevokeReason | 'account-removed') => void;

export interface Authenticator {
  authenticate(attempt: AuthAttempt): Promise<AuthOutcome>;
  /** The upstream refused the stored real credentials: flag the account, log once. */
  reportUpstreamRejected(accepted: AcceptedAuth, protocol: Protocol): void;
  /** The upstream accepted them: clears a previous flag. */
  reportUpstreamAccepted(accepted: AcceptedAuth): void;
  /** Calls `onRevoked` once, within a second, when the password is revoked, expires or its account goes. */
  watchRevocation(passwordId: number, onRevoked: RevocationListener): () => void;
}

/** The primary-password sentence every protocol uses (config may turn it off). */
export const PRIMARY_PASSWORD_REFUSED_TEXT =
  'The primary password cannot be used here; create an app-specific password for this app and use that instead.';
