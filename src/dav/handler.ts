/**
 * One DAV request, start to end: target → route → credentials → the sign-in sequence of every
 * protocol (src/auth/sign-in.ts): its first half here (authenticate, refuse a master login Basic
 * cannot carry, watch for revocation), then DAV's own scope check (scope-check.ts, the kind of
 * collection at source and Destination), then its second half in forward.ts, where the forwarded
 * request is the upstream login. Every request is verified afresh (HTTP clients send the password
 * each time); there is no session and no cache of positive answers, so a revoke is in force for
 * the very next request.
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
import { clientAddressOf } from '../auth/client-address.js';
import { authenticate, upstreamFailure, type Admitted, type SignInDeps } from '../auth/sign-in.js';
import type { Authenticator } from '../auth/types.js';
import type { DavCredential } from './headers.js';
import type { Logger } from '../log.js';
import type { HttpUpstream } from '../upstream/http.js';
import { parseBasicAuthorization } from './basic-auth.js';
import type { ConnectionWatches } from './connections.js';
import { forward } from './forward.js';
import { publicOriginFor } from './public-origin.js';
import type { CollectionKinds } from './collection-kind.js';
import { davSendable } from './headers.js';
import { REPLY_TEXT, sendBadRequest, sendChallenge, sendSignInFailure, sendText } from './replies.js';
import { parseDestination, parseRequestTarget, safeTargetForLog } from './request-target.js';
import { markAuthenticated } from './slow-clients.js';
import { evidentScope, upstreamPathOf, type DavRoutes, type DavScope, type Route } from './routes.js';

type Placed = Exclude<Route, { kind: 'none' }>;
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
  trusted: boolean;
}

export type DavHandler = (req: IncomingMessage, res: ServerResponse, expectContinue?: boolean) => void;

/**
 * Methods after which a path may be a different kind of collection than before. PROPPATCH is one:
 * Radicale lets it set `resourcetype`, turning a calendar into an address book and back.
 */
const COLLECTION_CHANGING = new Set(['MKCOL', 'MKCALENDAR', 'PROPPATCH', 'DELETE', 'MOVE', 'COPY']);

export function createDavHandler(deps: DavHandlerDeps): DavHandler {
  return (req, res, expectContinue = false) => {
    // A client resetting mid-upload must not become an unhandled 'error' event.
    req.on('error', () => undefined);
    const started = performance.now();
    res.once('finish', () => {
      deps.log.debug({ event: 'dav.request', method: req.method, status: res.statusCode, ms: Math.round(performance.now() - started) }, 'dav request');
    });
    handle(deps, req, res, expectContinue).catch((err: unknown) => {
      deps.log.error({ event: 'internal.error', err }, 'DAV request failed inside postern');
      if (!res.headersSent) sendText(req, res, 500, 'Internal server error.');
      else res.destroy();
    });
  };
}

async function handle(deps: DavHandlerDeps, req: IncomingMessage, res: ServerResponse, expectContinue: boolean): Promise<void> {
  const target = parseRequestTarget(req.url ?? '');
  if ('refused' in target) {
    deps.log.info({ event: 'dav.target_refused', reason: target.refused, method: req.method, target: safeTargetForLog(req.url ?? ''), ip: clientAddressOf(req.socket) }, 'request target is not a plain path on this server');
    return sendBadRequest(req, res);
  }
  const method = req.method ?? 'GET';
  const route = deps.routes.route({ method, path: target.path, contentType: req.headers['content-type'] });
  if (route.kind === 'none') return sendText(req, res, 404, REPLY_TEXT.notFound);

  const authorized = await authorize(deps, req, res, route);
  if (!authorized) return;
  const { admitted, scope } = authorized;
  if (COLLECTION_CHANGING.has(method)) forgetKinds(deps, req, route);

  const clientAddress = clientAddressOf(req.socket);
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
    mount: route.mount,
    // A well-known request (or `/` standing in for one, routes.ts) goes to the upstream's well-known URL.
    upstreamPath: /^\/\.well-known\/(?:caldav|carddav)$/.test(route.path) ? route.path : upstreamPathOf(target.upstreamPath, route.prefixed),
    scope,
    admitted,
    clientAddress,
    publicOrigin,
    trusted: deps.trusted,
    routes: deps.routes,
    upstream: deps.upstream,
    bodyIdleMs: deps.upstreamTimeoutMs,
    auth: deps.auth,
    firstSignIn: () => deps.watches.firstSignIn(req.socket, admitted.accepted.passwordId),
    log: deps.log.child({ ip: clientAddress, user: admitted.accepted.login }),
  });
}

/**
 * Credentials → an admitted app password (src/auth/sign-in.ts, first half) and the scope it acts
 * under, or null once postern has answered (challenge, refusal, fault) itself.
 */
async function authorize(deps: DavHandlerDeps, req: IncomingMessage, res: ServerResponse, route: Placed): Promise<{ admitted: Admitted<DavCredential>; scope: DavScope } | null> {
  const credentials = parseBasicAuthorization(req.headers.authorization);
  if (credentials.kind !== 'basic') {
    if (credentials.kind === 'malformed') deps.log.info({ event: 'auth.malformed', reason: credentials.reason, ip: clientAddressOf(req.socket) }, 'malformed Authorization header');
    sendChallenge(req, res, deps.realm);
    return null;
  }
  const signIn: SignInDeps = { auth: deps.auth, log: deps.log };
  const admission = await authenticate(signIn, {
    login: credentials.login,
    password: credentials.password,
    protocol: route.scopes[0]!,
    acceptScopes: route.scopes,
    clientAddress: clientAddressOf(req.socket),
  }, davSendable);
  if (admission.kind !== 'refused') markAuthenticated(req.socket);
  if (admission.kind !== 'admitted') {
    sendSignInFailure(req, res, admission, deps.realm);
    return null;
  }
  const { accepted, credential } = admission;
  deps.watches.watch(req.socket, accepted.passwordId, admission.watch);
  try {
    const scope = await actingScope(deps.kinds, scopeQuestion(deps, req, route), accepted, credential);
    if (scope !== 'refused') return { admitted: admission, scope };
    deps.log.info({ event: 'dav.scope_refused', user: accepted.login, passwordId: accepted.publicId, method: req.method }, 'app password lacks the scope for this collection');
    sendChallenge(req, res, deps.realm);
  } catch (err) {
    sendSignInFailure(req, res, upstreamFailure(signIn, accepted, route.scopes[0]!, err, { stage: 'probe', probe: 'collection-kind' }), deps.realm);
  }
  return null;
}

/** The places a request touches and what it claims to be: the question scope-check.ts answers. */
function scopeQuestion(deps: DavHandlerDeps, req: IncomingMessage, route: Placed): ScopeQuestion {
  const source = { target: route.target, path: route.path, scopes: route.scopes };
  // A redirect is postern's own answer: the well-known name is all that it needs.
  if (route.kind === 'redirect') return { source, destination: null, claimed: null };
  const claimed = evidentScope({ method: req.method ?? 'GET', path: route.path, contentType: req.headers['content-type'] });
  const placed = destinationOf(deps, req);
  const destination = placed ? { target: placed.target, path: placed.path, scopes: placed.scopes } : null;
  return { source, destination, claimed };
}

/** Where a Destination lands; null when absent or unusable (forward.ts answers that, 400/502). */
function destinationOf(deps: DavHandlerDeps, req: IncomingMessage): ReturnType<DavRoutes['resolve']> {
  const raw = req.headers.destination;
  const parsed = typeof raw === 'string' ? parseDestination(raw) : 'bad';
  return typeof parsed === 'string' ? null : deps.routes.resolve(parsed.path);
}

/** A MOVE or COPY also replaces whatever was at its Destination (RFC 4918 §9.8.4, §9.9.3). */
function forgetKinds(deps: DavHandlerDeps, req: IncomingMessage, route: Placed): void {
  deps.kinds.forget(route.mount.origin, route.path);
  const destination = destinationOf(deps, req);
  if (destination) deps.kinds.forget(destination.mount.origin, destination.path);
}
