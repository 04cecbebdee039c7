/**
 * Every answer postern itself gives on the DAV listener, in one place: refusals are 401 with the
 * Basic challenge (RFC 7617; clients send credentials only after it), faults are 502/504 with a
 * short text body. Internal error text never reaches the wire.
 *
 * Unknown user, wrong password, out-of-scope password, throttled, and the primary password when
 * the hint is off all get the identical answer, so none of them can be told apart.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SignInFailure, UpstreamFailure } from '../auth/sign-in.js';
import { PRIMARY_PASSWORD_REFUSED_TEXT, type AuthOutcome } from '../auth/types.js';
import { isPosternError } from '../errors.js';
import { TOO_BUSY_TEXT } from '../net/descriptors.js';
import { basicChallenge } from './basic-auth.js';
import { expectRestOfBody, unauthenticatedTooLong } from './slow-clients.js';

const TEXT = 'text/plain; charset=utf-8';

export const REPLY_TEXT = {
  unauthorized: 'Authentication required: use your login and an app-specific password.',
  badRequest: 'Bad request.',
  notFound: 'Not found.',
  tooLarge: 'Request body too large.',
  badGateway: 'Bad gateway: the calendar and contacts server could not be reached.',
  gatewayTimeout: 'Gateway timeout: the calendar and contacts server did not answer in time.',
  upstreamRejected: 'Bad gateway: the calendar and contacts server refused this account; the administrator has been told.',
  unavailable: 'Service unavailable: this account cannot be used for calendars and contacts right now.',
  destinationElsewhere: 'Bad gateway: the destination is on another server.',
  tooManyConnections: 'Service unavailable: too many connections; please try again later.',
  tooManyRequests: 'Service unavailable: too many requests pipelined on one connection.',
  requestTimeout: 'Request timeout: the request body did not arrive in time.',
  upstreamRefused: 'The calendar and contacts server refused this request for now; please try again later.',
} as const;

/** The upstream's answers postern passes on when it, not a relayed response, has to say them. */
const UPSTREAM_REFUSAL_TEXT: Record<string, string> = {
  '423': 'Locked: the calendar and contacts server says this resource is locked.',
  '429': 'Too many requests: the calendar and contacts server asks to slow down; please try again later.',
  '503': 'Service unavailable: the calendar and contacts server is unavailable right now; please try again later.',
  '507': 'Insufficient storage: the account is over its quota at the calendar and contacts server.',
};

export function sendText(req: IncomingMessage, res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(`${text}\n`, 'utf8');
  if (bodyStillComing(req) || unauthenticatedTooLong(req.socket)) res.shouldKeepAlive = false;
  if (res.shouldKeepAlive) expectRestOfBody(req);
  res.writeHead(status, { ...headers, 'content-type': TEXT, 'content-length': String(body.length), 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** Unread request bodies up to this size are drained (Node does it) to keep the connection. */
const DRAINABLE_BODY_BYTES = 64 * 1024;

/**
 * Whether answering now leaves a large or unknown request body unread: then the connection is
 * closed rather than read to its end (RFC 9112 §9.6). A bodyless request, or a small body such as
 * the PROPFIND a client sends before it has seen the challenge, keeps the connection, so the retry
 * with credentials needs no new TLS handshake — provided the rest of it arrives promptly
 * (slow-clients.ts). A client waiting for 100 Continue has not sent its body at all, so that
 * connection closes too.
 */
function bodyStillComing(req: IncomingMessage): boolean {
  if (req.complete) return false;
  if (req.headers.expect !== undefined || req.headers['transfer-encoding'] !== undefined) return true;
  return Number(req.headers['content-length'] ?? 0) > DRAINABLE_BODY_BYTES;
}

/**
 * A request postern will not serve as asked (a target or Destination that is not a plain path on
 * this server, a path-confusion attempt): 400 with a text body, and the connection is closed, as
 * whatever sent it is not a DAV client worth a kept connection (RFC 9110 §15.5.1).
 */
export function sendBadRequest(req: IncomingMessage, res: ServerResponse): void {
  res.shouldKeepAlive = false;
  sendText(req, res, 400, REPLY_TEXT.badRequest);
}

/** A connection over the connection caps gets this for its first request, then is closed. */
export function sendTooManyConnections(req: IncomingMessage, res: ServerResponse): void {
  res.shouldKeepAlive = false;
  sendText(req, res, 503, REPLY_TEXT.tooManyConnections, { 'retry-after': '10' });
}

/** A connection with too many unanswered pipelined requests gets this for the next, then closes. */
export function sendTooManyRequests(req: IncomingMessage, res: ServerResponse): void {
  res.shouldKeepAlive = false;
  sendText(req, res, 503, REPLY_TEXT.tooManyRequests, { 'retry-after': '1' });
}

export function sendChallenge(req: IncomingMessage, res: ServerResponse, realm: string, text: string = REPLY_TEXT.unauthorized): void {
  sendText(req, res, 401, text, { 'www-authenticate': basicChallenge(realm) });
}

/** A non-accepted authentication outcome on the wire. */
export function sendRefusal(req: IncomingMessage, res: ServerResponse, outcome: Exclude<AuthOutcome, { kind: 'accepted' }>, realm: string): void {
  switch (outcome.kind) {
    case 'primary-refused':
      return sendChallenge(req, res, realm, outcome.hint ? PRIMARY_PASSWORD_REFUSED_TEXT : REPLY_TEXT.unauthorized);
    case 'credential-unusable':
    case 'store-unavailable':
      return sendText(req, res, 503, REPLY_TEXT.unavailable);
    case 'failed':
    case 'throttled':
      return sendChallenge(req, res, realm);
  }
}

/**
 * A sign-in (src/auth/sign-in.ts) that did not end in a relayed answer: a refusal is the 401
 * challenge, a master login Basic cannot carry is 503, a refusal of the stored credentials by the
 * upstream is 502 (never 401: the client's password was right, asking again cannot help).
 */
export function sendSignInFailure(req: IncomingMessage, res: ServerResponse, result: SignInFailure, realm: string): void {
  switch (result.kind) {
    case 'refused':
      return sendRefusal(req, res, result.outcome, realm);
    case 'unsupported':
      return sendText(req, res, 503, REPLY_TEXT.unavailable);
    default:
      return sendUpstreamFailure(req, res, result);
  }
}

/** The part of sendSignInFailure after the password was admitted (forward.ts, the probes). */
export function sendUpstreamFailure(req: IncomingMessage, res: ServerResponse, result: UpstreamFailure): void {
  switch (result.kind) {
    case 'upstream-rejected':
      return sendText(req, res, 502, REPLY_TEXT.upstreamRejected);
    case 'upstream-refused':
      // The upstream's own status, with postern's sentence for it (its body may be any HTML).
      return sendText(req, res, Number(result.refusal.code), UPSTREAM_REFUSAL_TEXT[result.refusal.code] ?? REPLY_TEXT.upstreamRefused);
    case 'upstream-fault':
      return sendUpstreamFault(req, res, result.error);
    case 'cancelled':
      return; // the client is gone: nobody to answer
  }
}

/** An upstream transport fault (see src/upstream/classify.ts) on the wire. */
export function sendUpstreamFault(req: IncomingMessage, res: ServerResponse, err: unknown): void {
  // Postern's own descriptor limit: the service is overloaded, not the gateway's upstream (RFC 9110 §15.6.4).
  if (isPosternError(err, 'DESCRIPTORS_EXHAUSTED')) sendText(req, res, 503, TOO_BUSY_TEXT, { 'retry-after': '30' });
  else if (isPosternError(err, 'UPSTREAM_TIMEOUT')) sendText(req, res, 504, REPLY_TEXT.gatewayTimeout);
  else sendText(req, res, 502, REPLY_TEXT.badGateway);
}
