/**
 * Every line postern itself says to a POP3 client, and the one mapping from sign-in outcomes to
 * the wire (RFC 1939 §3 status indicators, RFC 2449 §8 / RFC 3206 response codes: [AUTH] for a
 * refusal of what the client sent, [SYS/TEMP] and [SYS/PERM] for faults that are not its doing).
 * Internal error text never gets here: refusals all read alike (a wrong password, an unknown user
 * and a throttled attempt are indistinguishable).
 *
 * POP3 has no unsolicited response: postern speaks only to answer a command (the greeting aside),
 * so a session it ends on its own (idle, revocation, shutdown) ends without words (RFC 1939 §3,
 * "the server should close the TCP connection without ... sending any response").
 */
import type { SignInFailure } from '../auth/sign-in.js';
import { TOO_BUSY_TEXT } from '../net/descriptors.js';
import { PRIMARY_PASSWORD_REFUSED_TEXT, type AuthOutcome } from '../auth/types.js';

export const AUTH_FAILED_TEXT = 'Authentication failed.';

export const reply = {
  greeting: () => '+OK Postern POP3 proxy ready.',
  ok: (text: string) => `+OK ${text}`,
  err: (text: string) => `-ERR ${text}`,
  /** RFC 2449 §5; the tokens are the ones CAPA lists below. */
  capaHeader: () => '+OK Capability list follows.',
  unknownCommand: () => '-ERR Unknown command, or not allowed before authentication.',
  badArguments: () => '-ERR Invalid arguments.',
  privacyRequired: () => '-ERR [AUTH] Log in only after STLS; passwords are never accepted in clear.',
  apopRefused: () => '-ERR [AUTH] APOP is not supported: it needs the clear password, which postern never keeps. Use USER/PASS or AUTH over TLS.',
  passWithoutUser: () => '-ERR Send USER first.',
  userAccepted: () => '+OK Send PASS.',
  loggedIn: () => '+OK Logged in.',
  tooManyConnections: () => '-ERR [SYS/TEMP] Too many connections; please try again later.',
  internal: () => '-ERR [SYS/TEMP] Internal error; please try again later.',
  unsupportedMechanism: () => '-ERR Unsupported authentication mechanism.',
  saslCancelled: () => '-ERR AUTH cancelled.',
  stlsUnavailable: () => '-ERR STLS is not available on this connection.',
  stlsGo: () => '+OK Begin TLS negotiation now.',
  quit: () => '+OK Bye.',
} as const;

/** RFC 2449 §6 capabilities before login: never USER or SASL in clear (RFC 2595 §4). */
export function capabilities(options: { secure: boolean; starttlsOffered: boolean }): string[] {
  const caps = ['TOP', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE'];
  if (options.secure) caps.push('USER', 'SASL PLAIN LOGIN');
  if (options.starttlsOffered) caps.push('STLS');
  return caps;
}

/** The answer to a PASS/AUTH that did not get accepted. */
export function refusalReply(outcome: Exclude<AuthOutcome, { kind: 'accepted' }>): string {
  switch (outcome.kind) {
    case 'primary-refused':
      return `-ERR [AUTH] ${outcome.hint ? PRIMARY_PASSWORD_REFUSED_TEXT : AUTH_FAILED_TEXT}`;
    case 'failed':
    case 'throttled':
      return `-ERR [AUTH] ${AUTH_FAILED_TEXT}`;
    case 'credential-unusable':
      return '-ERR [SYS/TEMP] This account cannot be used right now; please try again later.';
    case 'store-unavailable':
      return '-ERR [SYS/TEMP] The server is temporarily unavailable; please try again later.';
  }
}

/** The answer to every sign-in that did not end in a relay (src/auth/sign-in.ts). */
export function signInFailureReply(result: SignInFailure): string {
  switch (result.kind) {
    case 'refused':
      return refusalReply(result.outcome);
    case 'unsupported':
      return refusalReply({ kind: 'credential-unusable' });
    case 'upstream-rejected':
      return '-ERR [SYS/PERM] The mail server refused the credentials postern holds for this account; the administrator has been notified.';
    case 'upstream-refused':
      // The provider's own RFC 3206 code and (safe) text, as it would have answered the app itself.
      return `-ERR [${result.refusal.code}] ${result.refusal.text ?? (result.refusal.temporary ? 'The mail server refused the login for now; please try again later.' : 'The mail server refused the login; please contact the administrator.')}`;
    case 'upstream-fault':
      // RFC 3206: SYS/TEMP, a temporary problem of the server (here postern's own descriptor limit).
      if (result.code === 'DESCRIPTORS_EXHAUSTED') return `-ERR [SYS/TEMP] ${TOO_BUSY_TEXT}`;
      return '-ERR [SYS/TEMP] The mail server cannot be reached right now; please try again later.';
    case 'cancelled':
      return '-ERR [SYS/TEMP] The mail server cannot be reached right now; please try again later.';
  }
}

/** SASL PLAIN naming another identity (RFC 4616 authzid): a refusal like any other. */
export function authzRefusedReply(): string {
  return `-ERR [AUTH] ${AUTH_FAILED_TEXT}`;
}
