/**
 * The one error type postern throws, with a catalogue of stable codes.
 *
 * Why: protocols map outcomes to wire answers in one place each, the CLI maps codes to exit
 * statuses (read from this catalogue, so a new code cannot be left unmapped), and logs carry
 * `code` as a stable field that alerts may match on: codes are never renamed or removed
 * (src/errors.test.ts pins the list). Internal text (messages, causes) never reaches a client;
 * only the protocol mappers decide what the wire sees.
 */

/** Exit statuses of the `postern` command line, as the README documents them. */
export const EXIT_OK = 0;
/** The command was understood and refused (or failed); one line on stderr says why. */
export const EXIT_REFUSED = 1;
/** The command line itself is wrong (unknown option, missing argument). */
export const EXIT_USAGE = 2;

export type ExitStatus = typeof EXIT_OK | typeof EXIT_REFUSED | typeof EXIT_USAGE;

interface CatalogueEntry {
  /** Default message, for a throw that gives none. */
  readonly message: string;
  /** What the CLI exits with when a command ends in this error. */
  readonly exitStatus: ExitStatus;
}

// Every code exits 1: a bad label or an unknown account is a refusal with a reason (README), not
// a malformed command line, which commander reports itself with 2.
export const ERROR_CATALOGUE = {
  CONFIG_INVALID: { message: 'configuration is invalid', exitStatus: EXIT_REFUSED },
  CONFIG_NOT_FOUND: { message: 'configuration file not found', exitStatus: EXIT_REFUSED },
  STORE_OPEN_FAILED: { message: 'database could not be opened', exitStatus: EXIT_REFUSED },
  STORE_MIGRATION_FAILED: { message: 'database migration failed', exitStatus: EXIT_REFUSED },
  STORE_TOO_NEW: { message: 'database was written by a newer postern', exitStatus: EXIT_REFUSED },
  KEY_FILE_INVALID: { message: 'key file is missing or malformed', exitStatus: EXIT_REFUSED },
  ACCOUNT_NOT_FOUND: { message: 'no such account', exitStatus: EXIT_REFUSED },
  ACCOUNT_EXISTS: { message: 'account already exists', exitStatus: EXIT_REFUSED },
  PRIMARY_PASSWORD_WRONG: { message: 'primary password is wrong', exitStatus: EXIT_REFUSED },
  PASSWORD_LIMIT_REACHED: { message: 'too many active app-specific passwords', exitStatus: EXIT_REFUSED },
  PASSWORD_NOT_FOUND: { message: 'no such app-specific password', exitStatus: EXIT_REFUSED },
  LABEL_INVALID: { message: 'label is invalid', exitStatus: EXIT_REFUSED },
  SCOPE_INVALID: { message: 'scope is invalid', exitStatus: EXIT_REFUSED },
  EXPIRY_INVALID: { message: 'expiry is invalid', exitStatus: EXIT_REFUSED },
  LOGIN_INVALID: { message: 'login name is invalid', exitStatus: EXIT_REFUSED },
  UPSTREAM_MODE_INVALID: { message: 'upstream mode is invalid for this operation', exitStatus: EXIT_REFUSED },
  ENVELOPE_UNWRAP_FAILED: { message: 'wrapped secret could not be unwrapped', exitStatus: EXIT_REFUSED },
  UPSTREAM_UNAVAILABLE: { message: 'upstream is unreachable', exitStatus: EXIT_REFUSED },
  UPSTREAM_TIMEOUT: { message: 'upstream timed out', exitStatus: EXIT_REFUSED },
  UPSTREAM_TLS_FAILED: { message: 'upstream TLS handshake failed', exitStatus: EXIT_REFUSED },
  UPSTREAM_AUTH_REJECTED: { message: 'upstream rejected the stored credentials', exitStatus: EXIT_REFUSED },
  UPSTREAM_PROTOCOL: { message: 'upstream answered something unexpected', exitStatus: EXIT_REFUSED },
  TLS_MATERIAL_INVALID: { message: 'TLS certificate or key is missing or invalid', exitStatus: EXIT_REFUSED },
  INPUT_INVALID: { message: 'input is invalid', exitStatus: EXIT_REFUSED },
  UPSTREAM_LOGIN_REFUSED: { message: 'upstream refused the login for a reason other than the credentials', exitStatus: EXIT_REFUSED },
  /** invalid_grant (RFC 6749 §5.2): the grant was revoked, expired, or the user's password changed. */
  OAUTH2_GRANT_REJECTED: { message: 'the OAuth2 provider refused the grant; the account must be authorised again', exitStatus: EXIT_REFUSED },
  /** The provider could not be reached, timed out, or answered something other than a grant refusal. */
  OAUTH2_FAILED: { message: 'OAuth2 request to the provider failed', exitStatus: EXIT_REFUSED },
  DESCRIPTORS_EXHAUSTED: { message: 'the process has no file descriptor left (EMFILE/ENFILE)', exitStatus: EXIT_REFUSED },
  DAV_DISCOVERY_FAILED: { message: 'DAV discovery through the upstream did not complete', exitStatus: EXIT_REFUSED },
  /**
   * The database could not serve a statement (SQLite: locked past the busy timeout, file gone, I/O
   * error; PostgreSQL: connection refused or lost). A client is told to try again later, never
   * that its password is wrong.
   */
  STORE_UNAVAILABLE: { message: 'the database is unavailable', exitStatus: EXIT_REFUSED },
  /** An operation only one engine has (SQLite's online backup, its raw connection) asked of the other. */
  STORE_ENGINE_MISMATCH: { message: 'this operation is not available with the configured database engine', exitStatus: EXIT_REFUSED },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export class PosternError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERROR_CATALOGUE[code].message, options);
    this.name = 'PosternError';
    this.code = code;
  }
}

export function isPosternError(err: unknown, code?: ErrorCode): err is PosternError {
  return err instanceof PosternError && (code === undefined || err.code === code);
}
