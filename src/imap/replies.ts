/**
 * Every line postern itself says to an IMAP client, and the one mapping from authentication
 * outcomes and upstream faults to the wire (RFC 9051 §7.1, response codes of RFC 5530).
 * Internal error text never gets here: refusals all read alike (a wrong password, an unknown user
 * and a throttled attempt are indistinguishable), faults say UNAVAILABLE. The provider's own
 * refusals for other reasons (LIMIT, INUSE, EXPIRED…) keep their code and, when safe, its text.
 */
import { TOO_BUSY_TEXT } from '../net/descriptors.js';
import type { SignInFailure } from '../auth/sign-in.js';
import type { ProviderRefusal } from '../upstream/refusal.js';
import { PRIMARY_PASSWORD_REFUSED_TEXT, type AuthOutcome } from '../auth/types.js';
import { isPosternError } from '../errors.js';
import type { RevokeReason } from '../store/types.js';

export const AUTH_FAILED_TEXT = 'Authentication failed.';

export const reply = {
  greeting: (caps: string) => `* OK [CAPABILITY ${caps}] Postern IMAP proxy ready.`,
  capability: (caps: string) => `* CAPABILITY ${caps}`,
  ok: (tag: string, text: string) => `${tag} OK ${text}`,
  no: (tag: string, text: string) => `${tag} NO ${text}`,
  bad: (tag: string | null, text: string) => `${tag ?? '*'} BAD ${text}`,
  tooBig: (tag: string | null, text: string) => `${tag ?? '*'} BAD [TOOBIG] ${text}`,
  continuation: (text = 'Ready for literal data') => `+ ${text}`,
  unknownCommand: (tag: string) => `${tag} BAD Unknown command, or not allowed before authentication.`,
  privacyRequired: (tag: string) => `${tag} NO [PRIVACYREQUIRED] Log in only after STARTTLS; passwords are never accepted in clear.`,
  loggedIn: (tag: string, caps: string) => `${tag} OK [CAPABILITY ${caps}] Logged in.`,
  bye: (text: string) => `* BYE ${text}`,
} as const;

export const bye = {
  logout: 'Logging out.',
  idle: 'Autologout; idle for too long.',
  preAuthTooLong: 'Autologout; took too long to log in.',
  tooManyFailures: 'Too many failed authentication attempts.',
  tooManyBad: 'Too many invalid commands.',
  shutdown: 'Server shutting down.',
  upstreamLost: 'Connection to the mail server was lost.',
  protocol: 'Protocol error; closing the connection.',
  internal: 'Internal error; please try again later.',
} as const;

/** A fault inside postern: the client learns nothing but that it may retry. */
export function internalErrorReply(tag: string): string {
  return `${tag} NO [UNAVAILABLE] Internal error; please try again later.`;
}

/** The answer to a LOGIN/AUTHENTICATE that did not get accepted. */
export function refusalReply(tag: string, outcome: Exclude<AuthOutcome, { kind: 'accepted' }>): string {
  switch (outcome.kind) {
    case 'primary-refused':
      return outcome.hint
        ? `${tag} NO [AUTHENTICATIONFAILED] ${PRIMARY_PASSWORD_REFUSED_TEXT}`
        : `${tag} NO [AUTHENTICATIONFAILED] ${AUTH_FAILED_TEXT}`;
    case 'failed':
    case 'throttled':
      return `${tag} NO [AUTHENTICATIONFAILED] ${AUTH_FAILED_TEXT}`;
    case 'credential-unusable':
      return `${tag} NO [UNAVAILABLE] This account cannot be used right now; please try again later.`;
    case 'store-unavailable':
      return `${tag} NO [UNAVAILABLE] The server is temporarily unavailable; please try again later.`;
  }
}

/** The answer to every sign-in that did not end in a relay (src/auth/sign-in.ts). */
export function signInFailureReply(tag: string, result: SignInFailure): string {
  switch (result.kind) {
    case 'refused':
      return refusalReply(tag, result.outcome);
    case 'unsupported':
      return refusalReply(tag, { kind: 'credential-unusable' });
    case 'upstream-rejected':
      return upstreamRejectedReply(tag);
    case 'upstream-refused':
      return providerRefusalReply(tag, result.refusal);
    case 'upstream-fault':
      return upstreamFaultReply(tag, result.error);
    case 'cancelled':
      return upstreamFaultReply(tag, null);
  }
}

function upstreamRejectedReply(tag: string): string {
  return `${tag} NO [UNAVAILABLE] The mail server refused the credentials postern holds for this account; the administrator has been notified.`;
}

/** Said when the provider's text cannot be passed on (RFC 5530's meaning of each code). */
const REFUSAL_TEXT: Record<string, string> = {
  LIMIT: 'Too many connections to the mail server for this account; try again later.',
  INUSE: 'The mailbox is in use by another session; try again later.',
  UNAVAILABLE: 'The mail server is temporarily unavailable; please try again later.',
  SERVERBUG: 'The mail server had an internal error; please try again later.',
  OVERQUOTA: 'The account is over its quota at the mail server.',
  CONTACTADMIN: 'The mail server refused this account; contact the administrator.',
  EXPIRED: 'The mail server says the account\'s password has expired; the administrator must renew it.',
  NOPERM: 'The mail server does not allow this account to log in here.',
  CANNOT: 'The mail server cannot log this account in.',
};

/**
 * The provider refused for a reason other than the credentials: its code and safe text (RFC 5530).
 * PRIVACYREQUIRED is about postern's own leg to the provider (the client's is encrypted), so the
 * client hears UNAVAILABLE.
 */
function providerRefusalReply(tag: string, refusal: ProviderRefusal): string {
  if (refusal.code === 'PRIVACYREQUIRED') return upstreamFaultReply(tag, null);
  const text = refusal.text ?? REFUSAL_TEXT[refusal.code] ?? 'The mail server refused the login; please try again later.';
  return `${tag} NO [${refusal.code}] ${text}`;
}

/** The answer when the app password was right but logging in upstream failed. */
export function upstreamFaultReply(tag: string, err: unknown): string {
  if (isPosternError(err, 'UPSTREAM_AUTH_REJECTED')) return upstreamRejectedReply(tag);
  // Postern's own limit, not the provider's (RFC 5530 UNAVAILABLE covers both): busy, not unreachable.
  if (isPosternError(err, 'DESCRIPTORS_EXHAUSTED')) return `${tag} NO [UNAVAILABLE] ${TOO_BUSY_TEXT}`;
  return `${tag} NO [UNAVAILABLE] The mail server cannot be reached right now; please try again later.`;
}

export function authzRefusedReply(tag: string): string {
  return `${tag} NO [AUTHORIZATIONFAILED] ${AUTH_FAILED_TEXT}`;
}

const REVOKED_TEXT: Record<RevokeReason, string> = {
  admin: 'This app-specific password has been revoked; signing out.',
  user: 'This app-specific password has been revoked; signing out.',
  'revoke-all': 'All app-specific passwords of this account have been revoked; signing out.',
  'primary-password-change': 'The account password changed, which revoked every app-specific password; signing out.',
  'upstream-mode-change': 'The account\'s mail server login changed, which revoked every app-specific password; signing out.',
  expiry: 'This app-specific password has expired; signing out.',
  'account-removed': 'This account has been removed; signing out.',
};

export function revokedBye(reason: RevokeReason): string {
  return reply.bye(REVOKED_TEXT[reason] ?? REVOKED_TEXT.admin);
}
