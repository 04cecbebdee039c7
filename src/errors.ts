/**
 * The one error type postern throws, with a catalogue of stable codes.
 *
 * Why: protocols map outcomes to wire answers in one place each, the CLI maps codes to exit
 * statuses, and logs carry `code` as a stable field. Internal text (messages, causes) never
 * reaches a client; only the protocol mappers decide what the wire sees.
 */

export const ERROR_CODES = {
  CONFIG_INVALID: 'configuration is invalid',
  CONFIG_NOT_FOUND: 'configuration file not found',
  STORE_OPEN_FAILED: 'database could not be opened',
  STORE_MIGRATION_FAILED: 'database migration failed',
  STORE_TOO_NEW: 'database was written by a newer postern',
  KEY_FILE_INVALID: 'key file is missing or malformed',
  ACCOUNT_NOT_FOUND: 'no such account',
  ACCOUNT_EXISTS: 'account already exists',
  PRIMARY_PASSWORD_WRONG: 'primary password is wrong',
  PASSWORD_LIMIT_REACHED: 'too many active app-specific passwords',
  PASSWORD_NOT_FOUND: 'no such app-specific password',
  LABEL_INVALID: 'label is invalid',
  SCOPE_INVALID: 'scope is invalid',
  EXPIRY_INVALID: 'expiry is invalid',
  LOGIN_INVALID: 'login name is invalid',
  UPSTREAM_MODE_INVALID: 'upstream mode is invalid for this operation',
  ENVELOPE_UNWRAP_FAILED: 'wrapped secret could not be unwrapped',
  UPSTREAM_UNAVAILABLE: 'upstream is unreachable',
  UPSTREAM_TIMEOUT: 'upstream timed out',
  UPSTREAM_TLS_FAILED: 'upstream TLS handshake failed',
  UPSTREAM_AUTH_REJECTED: 'upstream rejected the stored credentials',
  UPSTREAM_PROTOCOL: 'upstream answered something unexpected',
  TLS_MATERIAL_INVALID: 'TLS certificate or key is missing or invalid',
  INPUT_INVALID: 'input is invalid',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class PosternError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERROR_CODES[code], options);
    this.name = 'PosternError';
    this.code = code;
  }
}

export function isPosternError(err: unknown, code?: ErrorCode): err is PosternError {
  return err instanceof PosternError && (code === undefined || err.code === code);
}
