/**
 * The one place that says what a failure to reach an upstream *was*: Node and OpenSSL errors
 * (from net, tls, http) become the catalogue's UPSTREAM_UNAVAILABLE / _TIMEOUT / _TLS_FAILED /
 * _PROTOCOL (or DESCRIPTORS_EXHAUSTED: postern itself is out of file descriptors), the original error kept as `cause` for the log. The IMAP and SMTP upstream clients
 * (through upstream/connect.ts), the HTTP upstream and the CLI's `--check` all use it, so one
 * failure gets one name in every log, reply and verdict.
 *
 * It must not put anything but the error's code or Node's own message into its text: the
 * message is logged, and nothing here may ever see a credential.
 */
import { PosternError, type ErrorCode } from '../errors.js';

/**
 * Certificate verification codes (X509_V_ERR_* names as Node reports them), Node's TLS checks
 * (ERR_TLS_CERT_ALTNAME_INVALID for a hostname mismatch) and OpenSSL's own (ERR_SSL_*, e.g. a
 * plaintext server on a TLS port: ERR_SSL_WRONG_VERSION_NUMBER, or a handshake alert).
 */
const TLS_CODES = /^(ERR_TLS_|ERR_SSL_|ERR_OSSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH|INVALID_CA|INVALID_PURPOSE|PATH_LENGTH_EXCEEDED)/;
/**
 * The peer hung up mid-handshake (Node: ECONNRESET, "Client network socket disconnected before
 * secure TLS connection was established"), or OpenSSL failed without a code Node translates.
 */
const TLS_MESSAGES = /secure TLS connection|SSL routines|certificate/i;
const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'ESOCKETTIMEDOUT', 'ERR_SOCKET_CONNECTION_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/** Transport failure → the catalogue. A PosternError (already classified) is returned as it is. */
export function classifyTransportError(err: unknown, what = 'upstream connection'): PosternError {
  if (err instanceof PosternError) return err;
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  return new PosternError(transportErrorCode(code, message), `${what} failed: ${code || message}`, { cause: err });
}

/** Out of descriptors: postern's own limit (EMFILE) or the system's (ENFILE), not an upstream fault. */
const DESCRIPTOR_CODES = new Set(['EMFILE', 'ENFILE']);

function transportErrorCode(code: string, message: string): ErrorCode {
  if (DESCRIPTOR_CODES.has(code)) return 'DESCRIPTORS_EXHAUSTED';
  if (TIMEOUT_CODES.has(code)) return 'UPSTREAM_TIMEOUT';
  if (TLS_CODES.test(code) || TLS_MESSAGES.test(message)) return 'UPSTREAM_TLS_FAILED';
  // llhttp's parse errors: the upstream spoke, but not HTTP/1.1.
  if (code.startsWith('HPE_')) return 'UPSTREAM_PROTOCOL';
  return 'UPSTREAM_UNAVAILABLE';
}

/** The Node/OpenSSL code at the root of a failure (ECONNREFUSED, DEPTH_ZERO_SELF_SIGNED_CERT…), or ''. */
export function transportCause(err: unknown): string {
  for (let e = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (!(e instanceof PosternError)) return errorCode(e);
  }
  return '';
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}
