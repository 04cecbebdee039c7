/**
 * One DAV request, start to end: target → route → credentials → authenticate → watch for
 * revocation → scope (scope-check.ts, the kind of collection at source and Destination) → forward. Every request is verified afresh through the authentication service (HTTP clients
 * send the password each time); there is no session and no cache of positive answers, so a
 * revoke is in force for the very next request.
 *
 * Nothing reaches the upstream without a verified app password, not even OPTIONS or the
 * well-known URLs: the upstream is never exposed to anonymous traffic through postern.
 * A request with `Expect: 100-continue` gets its 100 only after authentication, so unauthenticated
 * clients cannot make postern read large bodies (RFC 9110 §10.1.1).
 *
 * The target is parsed once (request-target.ts) into the canonical path routing and authorisation
 * judge and the same path as it goes upstream; only origin-form is served (`//host`, absolute-form,
 * `OPTIONS *`, backslashes → 400, `dav.target_refused`), as postern is no forward proxy and the
 * upstream URL must never name a host the client chose.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AcceptedAuth, Authenticator } from '../auth/types.js';
import type { Logger } from '../log.js';
import type { HttpUpstream } from '../upstream/http.js';
import { parseBasicAuthorization } from './basic-auth.js';
import type { ConnectionWatches } from './connections.js';
import { forward } from './forward.js';
import { publicOriginFor } from './public-origin.js';
import { isPosternError } from '../errors.js';
import type { CollectionKinds } from './collection-kind.js';
import { REPLY_TEXT, sendBadRequest, sendChallenge, sendRefusal, sendText, sendUpstreamFault } from './replies.js';
import { parseDestination, parseRequestTarget, safeTargetForLog } from './request-target.js';
import { markAuthenticated } from './slow-clients.js';
import { evidentScope, type DavRoutes, type DavScope, type Route } from './routes.js';
import { actingScope, type ScopeQuestion } from './scope-check.js';

export interface DavHandlerDeps {
  auth: Authenticator;
  routes: DavRoutes;
  upstream: HttpUpstream;
  watches: ConnectionWatches;
  kinds: CollectionKinds;
  log: Logger;
  realm: string;
  /** dav.upstreamTimeoutMs: also the longest pause allowed in an XML body postern buffers. */
  upstreamTimeoutMs: number;
  /** Configured public origin, normalised; undefined → derived per request. */
  publicOrigin: string | undefined;
  /** Origin of the listener itself, when neither config nor Host can say. */
  fallbackOrigin(): string;
  /** Upstream origins rewritten to the public one: every target plus `upstreamAliases`. */
  upstreamOrigins: readonly string[];
  trusted: boolean;
}

export type DavHandler = (req: IncomingMessage, res: ServerResponse, expectContinue?: boolean) => void;

/**
 * Methods after which a path may be a different kind of collection than before. PROPPATCH is one:
 * Radicale lets it set `resourcetype`, turning a calendar into an address book and back.
 */
const COLLECTION_CHANGING = new Set(['MKCOL', 'MKCALENDAR', 'PROPPATCH', 'DELETE', 'MOVE', 'COPY']);

/** Upstream-accepted marks are a database write; once a minute per account is plenty. */
const ACCEPTED_REPORT_INTERVAL_MS = 60_000;

export function createDavHandler(deps: DavHandlerDeps): DavHandler {
  const lastAcceptedReport = new Map<number, number>();
  const onUpstreamAccepted = (accepted: AcceptedAuth) => {
    const now = Date.now();
    const last = lastAcceptedReport.get(accepted.accountId);
    if (last !== undefined && now - last < ACCEPTED_REPORT_INTERVAL_MS) return;
    lastAcceptedReport.set(accepted.accountId, now);
    deps.auth.reportUpstreamAccepted(accepted);
  };
  return (req, res, expectContinue = false) => {
    // A client resetting mid-upload must not become an unhandled 'error' event.
    req.on('error', () => undefined);
    const started = performance.now();
    res.once('finish', () => {
      deps.log.debug({ event: 'dav.request', method: req.method, status: res.statusCode, ms: Math.round(performance.now() - started) }, 'dav request');
    });
    handle(deps, req, res, expectContinue, onUpstreamAccepted).catch((err: unknown) => {
      deps.log.error({ event: 'dav.internal_error', err }, 'DAV request failed inside postern');
      if (!res.headersSent) sendText(req, res, 500, 'Internal server error.');
      else res.destroy();
    });
  };
}

async function handle(deps: DavHandlerDeps, req: IncomingMessage, res: ServerResponse, expectContinue: boolean, onUpstreamAccepted: (a: AcceptedAuth) => void): Promise<void> {
  const target = parseRequestTarget(req.url ?? '');
  if ('refused' in target) {
    deps.log.info({ event: 'dav.target_refused', reason: target.refused, method: req.method, target: safeTargetForLog(req.url ?? ''), ip: clientAddressOf(req) }, 'request target is not a plain path on this server');
    return sendBadRequest(req, res);
  }
  const { path, upstreamPath } = target;
  const method = req.method ?? 'GET';
  const route = deps.routes.route({ method, path, contentType: req.headers['content-type'] });
  if (route.kind === 'none') return sendText(req, res, 404, REPLY_TEXT.notFound);

  const authorized = await authorize(deps, req, res, route, path);
  if (!authorized) return;
  const { accepted, scope } = authorized;
  if (COLLECTION_CHANGING.has(method)) forgetKinds(deps, req, route.target.origin, path);

  const clientAddress = clientAddressOf(req);
  const publicOrigin = publicOriginFor(req, deps.publicOrigin, deps.fallbackOrigin());
  if (route.kind === 'redirect') {
    res.writeHead(301, { location: publicOrigin + route.location, 'content-length': '0', 'cache-control': 'no-store' });
    res.end();
    return;
  }
  if (expectContinue) res.writeContinue();
  await forward({
    req, res,
    target: route.target,
    upstreamPath,
    scope,
    accepted,
    clientAddress,
    publicOrigin,
    upstreamOrigins: deps.upstreamOrigins,
    trusted: deps.trusted,
    routes: deps.routes,
    upstream: deps.upstream,
    bodyIdleMs: deps.upstreamTimeoutMs,
    auth: deps.auth,
    log: deps.log.child({ user: accepted.login }),
    onUpstreamAccepted,
  });
}

/**
 * Credentials → an accepted app password and the scope it acts under, or null once postern has
 * answered (challenge, refusal, fault) itself.
 */
async function authorize(deps: DavHandlerDeps, req: IncomingMessage, res: ServerResponse, route: Exclude<Route, { kind: 'none' }>, path: string): Promise<{ accepted: AcceptedAuth; scope: DavScope } | null> {
  const credentials = parseBasicAuthorization(req.headers.authorization);
  if (credentials.kind !== 'basic') {
    if (credentials.kind === 'malformed') deps.log.info({ event: 'auth.malformed', reason: credentials.reason, ip: clientAddressOf(req) }, 'malformed Authorization header');
    sendChallenge(req, res, deps.realm);
    return null;
  }
  const clientAddress = clientAddressOf(req);
  const outcome = await deps.auth.authenticate({
    login: credentials.login,
    password: credentials.password,
    protocol: route.scopes[0]!,
    acceptScopes: route.scopes,
    clientAddress,
  });
  if (outcome.kind !== 'accepted') {
    sendRefusal(req, res, outcome, deps.realm);
    return null;
  }
  markAuthenticated(req.socket);
  if (outcome.credential.authzid !== undefined) {
    // Basic carries no authorization identity, so SASL-style master login cannot be expressed.
    deps.log.error({ event: 'upstream.mode_unsupported', user: outcome.login, protocol: 'dav' }, 'accounts in master mode cannot use DAV: HTTP Basic has no authorization identity; give the account upstream mode "password"');
    sendText(req, res, 503, REPLY_TEXT.unavailable);
    return null;
  }
  deps.watches.watch(req.socket, outcome.passwordId, outcome.login, outcome.publicId);
  try {
    const scope = await actingScope(deps.kinds, scopeQuestion(deps, req, route, path), outcome);
    if (scope !== 'refused') return { accepted: outcome, scope };
    deps.log.info({ event: 'dav.scope_refused', user: outcome.login, passwordId: outcome.publicId, method: req.method }, 'app password lacks the scope for this collection');
    sendChallenge(req, res, deps.realm);
  } catch (err) {
    probeFailed(deps, req, res, outcome, route.scopes[0]!, err);
  }
  return null;
}

/** The places a request touches and what it claims to be: the question scope-check.ts answers. */
function scopeQuestion(deps: DavHandlerDeps, req: IncomingMessage, route: Exclude<Route, { kind: 'none' }>, path: string): ScopeQuestion {
  const source = { target: route.target, path, scopes: route.scopes };
  // A redirect is postern's own answer: the well-known name is all that it needs.
  if (route.kind === 'redirect') return { source, destination: null, claimed: null };
  const claimed = evidentScope({ method: req.method ?? 'GET', path, contentType: req.headers['content-type'] });
  const raw = req.headers.destination;
  const parsed = typeof raw === 'string' ? parseDestination(raw) : 'bad';
  // An unusable Destination is answered by forward.ts (400/502) before anything is sent.
  const destTarget = typeof parsed === 'string' ? null : deps.routes.targetFor(parsed.path);
  const destination = destTarget && typeof parsed !== 'string' ? { target: destTarget, path: parsed.path, scopes: destTarget.scopes } : null;
  return { source, destination, claimed };
}

/** A MOVE or COPY also replaces whatever was at its Destination (RFC 4918 §9.8.4, §9.9.3). */
function forgetKinds(deps: DavHandlerDeps, req: IncomingMessage, origin: string, path: string): void {
  deps.kinds.forget(origin, path);
  const destination = req.headers.destination;
  if (typeof destination !== 'string') return;
  // A malformed one is answered 400 by forward.ts; nothing is moved.
  const parsed = parseDestination(destination);
  if (typeof parsed !== 'string') deps.kinds.forget(origin, parsed.path);
}

function probeFailed(deps: DavHandlerDeps, req: IncomingMessage, res: ServerResponse, accepted: AcceptedAuth, scope: DavScope, err: unknown): void {
  if (isPosternError(err, 'UPSTREAM_AUTH_REJECTED')) {
    deps.auth.reportUpstreamRejected(accepted, scope);
    return sendText(req, res, 502, REPLY_TEXT.upstreamRejected);
  }
  deps.log.warn({ event: 'upstream.fault', code: (err as { code?: string }).code, probe: 'collection-kind' }, 'DAV collection probe failed');
  sendUpstreamFault(req, res, err);
}

/** The peer address without the IPv4-mapped prefix (what throttling and history should see). */
function clientAddressOf(req: IncomingMessage): string {
  const address = req.socket.remoteAddress ?? '';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
