/**
 * Every answer postern itself gives an SMTP client, in one place: authentication outcomes,
 * upstream faults, session ends. Replies that come from the upstream are relayed with the
 * upstream's own code and text (`relayed`). Internal error text never reaches the wire.
 *
 * smtp-server runs with enhanced status codes hidden, so it writes `code text` verbatim; the
 * enhanced codes (RFC 3463) are part of the texts here, and of the upstream's relayed texts.
 */
import type { SignInFailure } from '../auth/sign-in.js';
import { TOO_BUSY_TEXT } from '../net/descriptors.js';
import type { ProviderRefusal } from '../upstream/refusal.js';
import { PRIMARY_PASSWORD_REFUSED_TEXT, type AuthOutcome } from '../auth/types.js';
import { isPositive, replyText, type SmtpReply } from '../upstream/smtp/reply-parser.js';

/** An error smtp-server turns into `responseCode message` on the wire. 421 also closes the connection. */
export class SmtpReplyError extends Error {
  constructor(readonly responseCode: number, message: string) {
    super(message);
    this.name = 'SmtpReplyError';
  }
}

const reply = (code: number, text: string) => new SmtpReplyError(code, text);

/** RFC 4954 §6: 535 5.7.8 for bad credentials; unknown user, throttled and hint-less primary look the same. */
export function authRefusal(outcome: Exclude<AuthOutcome, { kind: 'accepted' }>): SmtpReplyError {
  switch (outcome.kind) {
    case 'primary-refused':
      return outcome.hint ? reply(535, `5.7.8 ${PRIMARY_PASSWORD_REFUSED_TEXT}`) : authenticationFailed();
    case 'credential-unusable':
      return reply(454, '4.7.0 Temporary authentication failure: the stored account credentials cannot be used; contact the administrator.');
    case 'store-unavailable':
      return reply(454, '4.7.0 Temporary authentication failure; please try again later.');
    case 'failed':
    case 'throttled':
      return authenticationFailed();
  }
}

export const authenticationFailed = () => reply(535, '5.7.8 Authentication failed');

/**
 * A sign-in (src/auth/sign-in.ts) that did not end with an upstream connection, at AUTH or when
 * a later MAIL has to log in upstream again. Upstream trouble is 454 at AUTH (RFC 4954 §6) and
 * 451 at MAIL; a refusal of the stored credentials is 454 either way.
 */
export function signInFailure(result: SignInFailure, at: 'auth' | 'transaction'): SmtpReplyError {
  switch (result.kind) {
    case 'refused':
      return authRefusal(result.outcome);
    case 'unsupported':
      return authRefusal({ kind: 'credential-unusable' });
    case 'upstream-rejected':
      return upstreamRefusedStoredCredentials();
    case 'upstream-refused':
      return providerRefusal(result.refusal, at);
    case 'upstream-fault':
      if (result.code === 'DESCRIPTORS_EXHAUSTED') return tooBusy();
      return at === 'auth' ? upstreamUnavailableAtAuth() : upstreamUnavailable();
    case 'cancelled':
      return connectionEnded();
  }
}

/**
 * The provider refused the login for another reason than the credentials: at AUTH its own reply
 * code and enhanced code with its safe text. At MAIL (a new transaction had to log in again) a
 * temporary refusal is 451 and a permanent one 554 (RFC 5321 §4.3.2 lists neither 454 nor 534
 * there), the enhanced code kept.
 */
function providerRefusal(refusal: ProviderRefusal, at: 'auth' | 'transaction'): SmtpReplyError {
  const [basic = '454', enhanced] = refusal.code.split(' ');
  const text = refusal.text ?? (refusal.temporary ? 'The mail provider refused the login for now; try again later.' : 'The mail provider refused the login; contact the administrator.');
  const fallbackEnhanced = refusal.temporary ? '4.7.0' : '5.7.0';
  const code = at === 'auth' ? Number(basic) : refusal.temporary ? 451 : 554;
  return reply(code, `${enhanced ?? fallbackEnhanced} ${text}`);
}

/** RFC 4954 §6: 454 4.7.0 Temporary authentication failure. */
/** Out of file descriptors: 421 closes the session (RFC 5321 §3.8), 4.3.2 "system not accepting network messages" (RFC 3463). */
export const tooBusy = () => reply(421, `4.3.2 ${TOO_BUSY_TEXT}`);

export const upstreamUnavailableAtAuth = () =>
  reply(454, '4.7.0 Temporary authentication failure: the mail provider cannot be reached right now; try again later.');

/**
 * The app password was right but the provider refused the real credentials postern holds. 454 (not
 * 535): a 535 would make the client ask its user for a new password, which cannot help.
 */
export const upstreamRefusedStoredCredentials = () =>
  reply(454, '4.7.0 Temporary authentication failure: the mail provider refused the credentials stored for this account; the administrator must update them.');

/** Mid-session (reconnecting for a new transaction) the provider could not be reached. */
export const upstreamUnavailable = () => reply(451, '4.4.1 The mail provider cannot be reached right now; try again later.');

/** The upstream connection broke during a message: nothing was delivered, the client may retry. */
export const upstreamLostDuringMessage = () => reply(451, '4.4.2 The connection to the mail provider was lost; the message was not sent, try again.');

export const upstreamLostClosing = () => reply(421, '4.4.2 The connection to the mail provider was lost; closing connection.');

export const tooManyAuthFailures = () => reply(421, '4.7.0 Too many failed authentication attempts; closing connection.');

export const passwordRevoked = () => reply(421, '4.7.0 The app-specific password of this session is no longer valid; closing connection.');

/** For a client that is already gone; written only if its socket is still open. */
export const connectionEnded = () => reply(421, '4.4.2 Connection ended; the message was not sent.');

export const tooManyConnections = () => reply(421, '4.7.0 Too many connections; try again later.');

export const shuttingDown = () => reply(421, '4.3.2 Service shutting down; closing connection.');

/** RFC 3207 §4: before TLS, nothing but EHLO, STARTTLS, NOOP, RSET, QUIT, HELP. */
export const tlsRequired = () => reply(530, '5.7.0 Must issue a STARTTLS command first');

/** RFC 4954 §6. */
export const authRequired = () => reply(530, '5.7.0 Authentication required');

export const identityMismatch = () => reply(535, '5.7.8 Authentication failed: acting for another identity is not allowed');

export const parameterUnsupported = (name: string) => reply(555, `5.5.4 ${name} is not supported by the mail provider`);

/**
 * RFC 5321 §4.1.1.11: 555 for a MAIL FROM / RCPT TO parameter not recognised or not implemented.
 * The name is the client's own; it is echoed only when it looks like one (RFC 5321 esmtp-keyword).
 */
export const parameterNotRecognised = (command: 'MAIL FROM' | 'RCPT TO', name: string) =>
  reply(555, `5.5.4 ${command} parameter ${/^[A-Za-z0-9][A-Za-z0-9-]{0,31}$/.test(name) ? `${name.toUpperCase()} ` : ''}not recognised`);

export const parameterInvalid = (name: string) => reply(501, `5.5.4 Invalid ${name} parameter`);

export const messageTooBig = (limit: number) => reply(552, `5.3.4 Message exceeds the maximum size of ${limit} bytes`);

/** RFC 3030: a BDAT whose chunk size cannot be read; its chunk's end cannot be found, so the connection ends. */
export const chunkSyntax = () => reply(501, '5.5.4 Syntax: BDAT <chunk-size> [LAST]; closing connection');

export const chunkingNotOffered = () => reply(502, '5.5.1 BDAT is not offered by this server; use DATA');

export const chunkNeedsRecipient = () => reply(503, '5.5.1 Bad sequence of commands: BDAT needs RCPT TO first; the chunk was discarded');

/** RFC 3030 §3: between BDAT and BDAT LAST only BDAT, RSET, NOOP, QUIT. */
export const chunkSequence = () => reply(503, '5.5.1 Bad sequence of commands: finish the message with BDAT ... LAST, or RSET');

/** RFC 3030 §3: a BODY=BINARYMIME message cannot be sent with DATA. */
export const binaryNeedsChunks = () => reply(503, '5.5.1 Bad sequence of commands: a BODY=BINARYMIME message must be sent with BDAT');

export const internalError = () => reply(451, '4.3.0 Internal error; try again later.');

/** The upstream's reply, relayed: text for a positive one, an error carrying its own code otherwise. */
export function relayed(upstream: SmtpReply): string {
  if (isPositive(upstream)) return replyText(upstream);
  throw reply(upstream.code, replyText(upstream) || 'Refused by the mail provider');
}
