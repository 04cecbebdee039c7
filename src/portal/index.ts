/**
 * The account page's listener: HTTPS (the listeners' certificate, renewed on SIGHUP through
 * setSecureContext) served by fastify, chosen over a hand-written HTTP layer for its maintained
 * security plugins: @fastify/helmet (strict CSP without inline script, HSTS, frame-ancestors
 * 'none'), @fastify/cookie, @fastify/formbody (pages work without JavaScript) and
 * @fastify/csrf-protection (a token in every form, checked on every POST).
 *
 * Module map: sessions.ts (cookie ↔ database row, idle/absolute/primary-change rules, the
 * recent-auth password held in memory), request.ts (guards, form fields), render.ts + views/
 * (eta), strings.ts (every sentence), routes/ (one file per page group), static/ (CSS and the
 * copy button's script, served as files), connect-flows.ts ("Connect your account" requests).
 * Of the pages people open, only the one-time profile download (routes/profile.ts) needs no
 * session: the phone that scans its QR code has none.
 */
import { readFileSync } from 'node:fs';
import type https from 'node:https';
import Fastify, { type FastifyInstance } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifyCsrf from '@fastify/csrf-protection';
import fastifyFormbody from '@fastify/formbody';
import fastifyHelmet from '@fastify/helmet';
import fastifyStatic from '@fastify/static';
import { AccountService } from '../accounts/service.js';
import type { AuthService } from '../auth/service.js';
import type { ResolvedConfig } from '../config/load.js';
import type { PortalConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import { clientAddressOf } from '../auth/client-address.js';
import { bind } from '../net/listener.js';
import type { BoundAddress, ProtocolService } from '../net/service.js';
import type { TlsMaterial } from '../net/tls-material.js';
import { PasskeyService, relyingPartyOf } from '../second-factor/passkeys.js';
import { ProfileDownloads } from '../onboarding/profile-download.js';
import { SecondFactorService } from '../second-factor/service.js';
import { portalUrl } from '../accounts/server-settings.js';
import type { Store } from '../store/index.js';
import type { PortalContext } from './context.js';
import { Pages, STATIC_DIR, WEBAUTHN_BROWSER_BUNDLE } from './render.js';
import { COOKIE_OPTIONS } from './request.js';
import { historyRoutes } from './routes/history.js';
import { passkeyRoutes } from './routes/passkeys.js';
import { onboardingRoutes } from './routes/onboarding.js';
import { loggablePath, profileRoutes } from './routes/profile.js';
import { passwordRoutes } from './routes/passwords.js';
import { secondFactorRoutes } from './routes/second-factor.js';
import { signInRoutes } from './routes/sign-in.js';
import { PortalSessions } from './sessions.js';
import { providerPasswordChange } from './provider-change.js';
import { selfEnrolment } from './self-enrol.js';
import { checkTarget } from '../cli/upstream-check.js';
import { oauth2Clients } from '../oauth2/index.js';
import { ConnectFlows } from './connect-flows.js';
import { connectRoutes } from './routes/connect.js';

export interface PortalDeps {
  config: ResolvedConfig;
  /** The portal's own connection: its writes (sessions, history, passwords) are an admin's kind. */
  store: Store;
  auth: Pick<AuthService, 'signInWithPrimary' | 'acceptedByProvider'>;
  tls: TlsMaterial;
  digestKey: Buffer;
  log: Logger;
  /** The addresses the proxy's listeners are bound to (for the settings shown with a new password). */
  listeners: () => readonly BoundAddress[];
  clock?: () => number;
}

/** Forms are a login, a password, a label: nothing legitimate comes near this. */
const BODY_LIMIT = 16 * 1024;

export async function startPortal(portal: PortalConfig, deps: PortalDeps): Promise<ProtocolService> {
  const log = deps.log.child({ listener: 'portal' });
  const clock = deps.clock ?? Date.now;
  const minute = 60_000;
  const sessions = new PortalSessions(deps.store, {
    idleMs: portal.sessions.idleMinutes * minute,
    absoluteMs: portal.sessions.absoluteHours * 60 * minute,
    recentAuthMs: portal.sessions.recentAuthMinutes * minute,
  }, clock);
  const accounts = new AccountService(deps.store, deps.digestKey, clock);
  let boundPort: number | undefined;
  const ctx: PortalContext = {
    config: deps.config, store: deps.store, auth: deps.auth, log, clock, sessions, listeners: deps.listeners, accounts,
    pageUrl: () => portalUrl(deps.config, boundPort)!,
    providerCheck: providerPasswordChange({ store: deps.store, accounts, upstream: checkTarget(deps.config), serverName: deps.config.hostnames[0]!, enabled: portal.providerPasswordChange, log }),
    selfEnrol: selfEnrolment({ store: deps.store, accounts, upstream: checkTarget(deps.config), serverName: deps.config.hostnames[0]!, domains: portal.enrol?.domains ?? [], minRefusalMs: portal.enrol?.minRefusalMs ?? 0, log, clock }),
    factors: new SecondFactorService(deps.store, deps.digestKey, portal.issuer, clock),
    passkeys: new PasskeyService(deps.store, relyingPartyOf(portalUrl(deps.config), portal.issuer), clock),
    pages: new Pages(),
    recentAuthMs: portal.sessions.recentAuthMinutes * minute,
    oauth2Clients: oauth2Clients(deps.config), connectFlows: new ConnectFlows(deps.store, clock),
    profiles: portal.appleProfile.enabled ? new ProfileDownloads(deps.store, portal.appleProfile.validSeconds * 1000, clock) : null,
    tls: deps.tls,
  };
  const app = await buildPortalApp(ctx, deps.tls);
  const server = app.server as unknown as https.Server;
  const stopReload = deps.tls.onReload((options) => server.setSecureContext(options));
  let address;
  try {
    await app.ready();
    address = await bind(server, { key: 'portal.listener', host: portal.listener.host, port: portal.listener.port, proxyProtocol: portal.listener.proxyProtocol, log });
    boundPort = address.port;
  } catch (err) {
    stopReload();
    await app.close();
    throw err;
  }
  let closing: Promise<void> | null = null;
  const close = () => (closing ??= (async () => {
    stopReload();
    server.closeAllConnections();
    await app.close();
  })());
  return {
    addresses: [{ name: 'portal', host: address.address, port: address.port }],
    // Drain: page requests are short and a browser simply asks again, so the page closes at once.
    stopAccepting: () => void close(),
    connections: () => 0,
    close,
  };
}

export async function buildPortalApp(ctx: PortalContext, tls: TlsMaterial): Promise<FastifyInstance> {
  const app = Fastify({
    https: tls.secureContextOptions(),
    bodyLimit: BODY_LIMIT,
    logger: false,
    requestTimeout: 30_000,
    connectionTimeout: 60_000,
  }) as unknown as FastifyInstance;
  await app.register(fastifyHelmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"], scriptSrc: ["'self'"], styleSrc: ["'self'"], imgSrc: ["'self'"], connectSrc: ["'self'"],
        formAction: ["'self'"], frameAncestors: ["'none'"], baseUri: ["'none'"],
      },
    },
    strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true },
    referrerPolicy: { policy: 'no-referrer' },
    frameguard: { action: 'deny' },
  });
  await app.register(fastifyCookie);
  await app.register(fastifyFormbody);
  await app.register(fastifyCsrf, { cookieKey: '__Host-postern_csrf', cookieOpts: COOKIE_OPTIONS, sessionPlugin: '@fastify/cookie' });
  await app.register(fastifyStatic, { root: STATIC_DIR, prefix: '/static/', decorateReply: false, index: false, maxAge: 3_600_000 });
  // Every POST, whatever its route, carries the form's token (double submit with the cookie).
  // Autodiscover (routes/onboarding.ts) opts out: mail clients post it, with no page session.
  // @simplewebauthn/browser's own bundle, as published (the page script, static/passkeys.js, uses its global).
  const webauthnBundle = readFileSync(WEBAUTHN_BROWSER_BUNDLE);
  app.get('/vendor/simplewebauthn-browser.js', (_req, reply) => reply.type('text/javascript; charset=utf-8').header('cache-control', 'public, max-age=3600').send(webauthnBundle));
  app.addHook('preHandler', (req, reply, done) => (req.method === 'POST' && (req.routeOptions.config as { csrf?: boolean }).csrf !== false ? app.csrfProtection(req, reply, done) : done()));
  const t = ctx.pages.t;
  app.setNotFoundHandler((_req, reply) => ctx.pages.send(reply, 'error', { title: t.errorTitle, message: t.errorNotFound }, 404));
  app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, req, reply) => {
    if (err.code?.startsWith('FST_CSRF')) {
      ctx.log.info({ event: 'portal.csrf_refused', ip: clientAddressOf(req.socket), path: loggablePath(req.url) }, 'a form was posted without a valid CSRF token');
      return ctx.pages.send(reply, 'error', { title: t.errorTitle, message: t.errorForbidden }, 403);
    }
    if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
      return ctx.pages.send(reply, 'error', { title: t.errorTitle, message: t.errorBadRequest }, err.statusCode);
    }
    ctx.log.error({ event: 'internal.error', hook: 'portal', err }, 'the account page failed to answer a request');
    return ctx.pages.send(reply, 'error', { title: t.errorTitle, message: t.errorInternal }, 500);
  });
  signInRoutes(app, ctx);
  secondFactorRoutes(app, ctx);
  passwordRoutes(app, ctx);
  passkeyRoutes(app, ctx);
  historyRoutes(app, ctx);
  onboardingRoutes(app, ctx);
  connectRoutes(app, ctx);
  profileRoutes(app, ctx);
  return app;
}
