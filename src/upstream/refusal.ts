/**
 * The provider refused a login for a reason that is not the stored credentials (RFC 5530's LIMIT,
 * INUSE, OVERQUOTA, CONTACTADMIN, EXPIRED…; SMTP's 454 4.7.0, 534 5.7.9…; HTTP's 429, 503, 507…):
 * what the client should hear is the provider's own answer, and the account is not flagged.
 *
 * The provider's text is untrusted and was produced in answer to a command that carried the real
 * credentials, so it reaches the client (and the log) only when it is short printable ASCII and
 * contains none of the credential strings postern sent, in clear or base64 (a server that echoes
 * its input, or a misconfigured one that prints the password it rejected). Otherwise the text is
 * null and the protocol's replies module says a fixed sentence for the code.
 */
import { PosternError } from '../errors.js';
import type { UpstreamCredential } from '../auth/types.js';
import { oauthInitialResponse } from './sasl-oauth.js';
import { saslPlainPayload } from './sasl-plain.js';

export interface ProviderRefusal {
  /**
   * The provider's code, in its protocol's form: an IMAP response code atom (`LIMIT`), an SMTP
   * basic and enhanced code (`454 4.7.0`, or `454` alone), an HTTP status (`429`).
   */
  code: string;
  /** The provider's text when it passed `safeProviderText` (safe to show and log), else null. */
  text: string | null;
  /** Worth retrying unchanged later (logged at info); otherwise someone must act (logged at warn). */
  temporary: boolean;
}

/** Thrown by an upstream leg (never for the stored credentials refused, nor for a fault). */
export class UpstreamRefusal extends PosternError {
  constructor(readonly refusal: ProviderRefusal) {
    super('UPSTREAM_LOGIN_REFUSED', `upstream refused the login (${refusal.code})`);
  }
}

/** Longer provider texts are not passed on: nothing a client shows needs more. */
export const MAX_PROVIDER_TEXT = 200;
const PRINTABLE = /^[\x20-\x7e]+$/;

/** Every string the login sent that must not come back out: the password, and each as base64. */
export function sentSecrets(credential: UpstreamCredential, extra: readonly string[] = []): string[] {
  const clear = secretsOf(credential);
  return [...clear, ...extra].filter((s) => s.length > 0).flatMap((s) => [s, Buffer.from(s, 'utf8').toString('base64')]);
}

/** The SASL messages a login with this credential may have sent (base64): they carry its secret. */
export function saslMessages(credential: UpstreamCredential): string[] {
  switch (credential.kind) {
    case 'password':
    case 'master':
      return [saslPlainPayload(credential)];
    case 'bearer':
      return [oauthInitialResponse('OAUTHBEARER', credential), oauthInitialResponse('XOAUTH2', credential)];
  }
}

function secretsOf(credential: UpstreamCredential): string[] {
  switch (credential.kind) {
    case 'master':
      return [credential.password, credential.username];
    case 'password':
      return [credential.password];
    case 'bearer':
      return [credential.token];
  }
}

/** The provider's text if it may be shown, else null. */
export function safeProviderText(text: string, secrets: readonly string[]): string | null {
  const trimmed = text.trim();
  if (trimmed.length === 0 || trimmed.length > MAX_PROVIDER_TEXT || !PRINTABLE.test(trimmed)) return null;
  const lower = trimmed.toLowerCase();
  // Case-insensitively: a server may fold what it echoes.
  if (secrets.some((s) => lower.includes(s.toLowerCase()))) return null;
  return trimmed;
}
