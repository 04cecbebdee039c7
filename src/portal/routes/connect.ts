/**
 * "Connect your account" (issue 13) for accounts in upstream mode `oauth2`: the connection's
 * status (connected, or refused by the provider — the account flagged REJECTED) and the one
 * button that fixes it, which runs authorization code + PKCE with this page's own callback as
 * redirect_uri and, on return, replaces the grant (AccountService.replaceOAuth2Grant: sealed
 * under the existing data key, so every app password keeps working; rejected flag cleared;
 * history entry).
 *
 * - Recent sign-in: starting needs the primary password typed within the recent-auth window, as
 *   creating a password does — it unwraps the data key the new tokens are sealed under.
 * - The callback is bound to the page session that started it (connect-flows.ts: state, single
 *   use across instances, short expiry; the PKCE verifier stays on the server, sealed in the
 *   session's row), so the provider's redirect back may reach any instance.
 * - The session cookie is SameSite=Strict, so the browser does not send it on the provider's
 *   cross-site redirect to the callback (RFC 6265bis §5.6.7.1). A callback without it is answered
 *   with a page that asks again from this site (a same-origin meta refresh, no script needed),
 *   which does carry it; only when that one has no session either is the callback refused. The
 *   code travels in the URL both times, as it does in any redirect; it is single use and useless
 *   without the verifier. `Referrer-Policy: no-referrer` keeps it off other sites.
 * - Providers without an authorization endpoint (a generic provider offering the device flow
 *   only): the page does not run the device flow. Showing a user code on a web page and waiting is
 *   the pattern device-code phishing relies on, and here the user already has a browser, where a
 *   redirect binds the answer to this session; the page says to ask the administrator, who runs
 *   `postern user reauth`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { portalUrl } from '../../accounts/server-settings.js';
import type { ResolvedConfig } from '../../config/load.js';
import { isPosternError } from '../../errors.js';
import type { AccountRow } from '../../store/index.js';
import type { PortalContext } from '../context.js';
import { guard, SESSION_COOKIE, where } from '../request.js';
import type { LiveSession } from '../sessions.js';
import { askPasswordAgain } from './sign-in.js';

export const CALLBACK_PATH = '/connect/callback';
/** The one query parameter the page adds itself (the hop that brings the session cookie). */
const HOP = 'hop';
const SAFE_CODE = /^[a-z_]{1,64}$/;

export interface Connection {
  state: 'connected' | 'rejected';
  provider: string;
}

/** The status card of an oauth2 account (null for other modes), for the passwords page too. */
export function connectionOf(account: AccountRow): Connection | null {
  if (account.upstreamMode !== 'oauth2') return null;
  return { state: account.upstreamStatus === 'rejected' ? 'rejected' : 'connected', provider: account.oauth2Provider ?? '' };
}

/**
 * The redirect URI to register at the provider: the page's address (portal.publicUrl, else
 * https://<first hostname>:<port>/, as `user add` tells the admin) + connect/callback. From the
 * config, never from the request's Host header: what the provider is asked to send the code to
 * is not the client's to choose.
 */
export function callbackUrl(config: ResolvedConfig): string | null {
  const page = portalUrl(config);
  return page === null ? null : new URL(CALLBACK_PATH.slice(1), page.endsWith('/') ? page : `${page}/`).href;
}

export function connectRoutes(app: FastifyInstance, ctx: PortalContext): void {
  const { pages, sessions, factors } = ctx;
  const t = pages.t;
  const signedIn = (req: FastifyRequest, reply: FastifyReply) => guard(sessions, req, reply, 'complete', (id) => factors.isEnrolled(id));

  app.get('/connect', async (req, reply) => {
    const live = await signedIn(req, reply);
    if (!live) return reply;
    const connection = connectionOf(live.account);
    if (!connection) return reply.redirect('/passwords', 303);
    return pages.send(reply, 'connect', { title: t.connectTitle, login: live.account.login, nav: 'passwords', connection });
  });

  app.post('/connect', async (req, reply) => {
    const live = await signedIn(req, reply);
    if (!live) return reply;
    const connection = connectionOf(live.account);
    if (!connection) return reply.redirect('/passwords', 303);
    if (!(await sessions.recentPassword(live))) return askPasswordAgain(ctx, req, reply, live.account.login, '/connect');
    const client = ctx.oauth2Clients.get(connection.provider);
    if (!client) return failed(ctx, reply, live, t.connectAskAdmin(live.account.login), 503);
    const redirectUri = callbackUrl(ctx.config);
    if (!redirectUri) return failed(ctx, reply, live, t.errorBadRequest, 400);
    try {
      if (!(await client.offersRedirect())) return failed(ctx, reply, live, t.connectAskAdmin(live.account.login), 409);
      const start = await client.startPkce(redirectUri);
      await ctx.connectFlows.begin(live, connection.provider, start);
      // Not a 303: CSP form-action 'self' also governs a form's redirects, so the page steps out itself.
      return pages.send(reply, 'connect-hop', { title: t.connectTitle, next: start.url, message: t.connectLeaving });
    } catch (err) {
      if (!isPosternError(err, 'OAUTH2_FAILED')) throw err;
      refused(ctx, req, live, 'provider_unreachable');
      return failed(ctx, reply, live, t.connectUnreachable, 503);
    }
  });

  app.get(CALLBACK_PATH, async (req, reply) => {
    const query = new URL(req.url, 'https://postern.invalid').searchParams;
    const live = await sessions.load(req.cookies[SESSION_COOKIE]);
    if (!live || live.session.stage !== 'complete') {
      if (!query.has(HOP)) {
        query.set(HOP, '1');
        return pages.send(reply, 'connect-hop', { title: t.connectTitle, next: `${CALLBACK_PATH}?${query.toString()}`, message: t.connectHop });
      }
      refused(ctx, req, null, 'no_session');
      return pages.send(reply, 'error', { title: t.errorTitle, message: t.connectNoSession }, 401);
    }
    const pending = await ctx.connectFlows.take(live, query.get('state') ?? '');
    if (!pending) {
      refused(ctx, req, live, 'state_mismatch');
      return failed(ctx, reply, live, t.connectStateRefused, 400);
    }
    const error = query.get('error');
    if (error !== null) {
      const code = SAFE_CODE.test(error) ? error : 'unprintable';
      refused(ctx, req, live, 'provider_error', code);
      return failed(ctx, reply, live, t.connectProviderError(code), 400);
    }
    const primary = await sessions.recentPassword(live);
    if (!primary) return failed(ctx, reply, live, t.connectNotRecent, 401);
    const client = ctx.oauth2Clients.get(pending.provider);
    if (!client) return failed(ctx, reply, live, t.connectAskAdmin(live.account.login), 503);
    query.delete(HOP);
    const answer = new URL(pending.start.redirectUri);
    answer.search = query.toString();
    let tokens;
    try {
      tokens = await client.finishPkce(pending.start, answer.href);
    } catch (err) {
      if (!isPosternError(err, 'OAUTH2_FAILED') && !isPosternError(err, 'OAUTH2_GRANT_REJECTED') && !isPosternError(err, 'INPUT_INVALID')) throw err;
      refused(ctx, req, live, 'exchange_failed', (err as { code: string }).code);
      return failed(ctx, reply, live, t.connectExchangeFailed, 502);
    }
    await ctx.accounts.replaceOAuth2Grant(live.account.login, primary, tokens);
    ctx.log.info({ event: 'portal.connected', ip: where(req).address, user: live.account.login, provider: pending.provider },
      'the account was connected again on the account page: new OAuth2 grant sealed');
    return reply.redirect('/passwords?done=connected', 303);
  });
}

function failed(ctx: PortalContext, reply: FastifyReply, live: LiveSession, message: string, status: number): FastifyReply {
  return ctx.pages.send(reply, 'error', { title: ctx.pages.t.connectTitle, login: live.account.login, nav: 'passwords', message }, status);
}

function refused(ctx: PortalContext, req: FastifyRequest, live: LiveSession | null, reason: string, code?: string): void {
  ctx.log.info({ event: 'portal.connect_refused', ip: where(req).address, user: live?.account.login, reason, code },
    'a "Connect your account" request or callback was refused');
}
