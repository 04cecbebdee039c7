/**
 * Sign-in (login + primary password through the authentication service: the same throttle, hash
 * pool, failure log line and history as the mail protocols), sign-out, and the password asked
 * again when a change needs a recent sign-in. Every refusal gets the one sentence, whatever the
 * reason (unknown login, wrong password, throttled, an app-specific password), so the page does
 * not tell which logins exist.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { PortalContext } from '../context.js';
import { COOKIE_OPTIONS, field, guard, SESSION_COOKIE, where } from '../request.js';

const sleep = (ms: number) => (ms > 0 ? new Promise<void>((resolve) => setTimeout(resolve, ms)) : Promise.resolve());

/** Where the password-again form may send the user back to: the pages that asked for it. */
const NEXT = /^\/(?:passwords(?:\/new|\/revoke-all|\/[0-9a-f]{8}\/revoke)?|passkeys\/(?:new|[1-9]\d{0,15}\/remove)|two-factor\/app|connect)$/;

export function signInRoutes(app: FastifyInstance, ctx: PortalContext): void {
  const { pages, sessions, factors, t } = { ...ctx, t: ctx.pages.t };

  app.get('/', async (req, reply) => reply.redirect(await sessions.load(req.cookies[SESSION_COOKIE]) ? '/passwords' : '/sign-in', 303));

  app.get('/sign-in', async (req, reply) => {
    if (await sessions.load(req.cookies[SESSION_COOKIE])) return reply.redirect('/passwords', 303);
    return pages.send(reply, 'sign-in', { title: t.signInTitle });
  });

  app.post('/sign-in', async (req, reply) => {
    const login = field(req, 'login');
    const password = field(req, 'password');
    const from = where(req);
    const started = ctx.clock();
    const outcome = await ctx.auth.signInWithPrimary({ login, password, clientAddress: from.address, browser: from.browser });
    // A blocked address is not let through to the provider either.
    const account = outcome.kind === 'accepted' ? outcome.account
      : outcome.kind === 'failed' ? await ctx.providerCheck(login, password) ?? await ctx.selfEnrol?.enrol(login, password) ?? null : null;
    if (!account) {
      // With self-enrolment on, some refusals waited for the provider: every refusal waits as long
      // at least, so the time to answer does not tell an unknown login from a wrong password.
      if (ctx.selfEnrol) await sleep(started + ctx.selfEnrol.minRefusalMs - ctx.clock());
      return pages.send(reply, 'sign-in', { title: t.signInTitle, error: t.signInFailed, loginValue: login.slice(0, 254) }, 401);
    }
    if (outcome.kind !== 'accepted') ctx.auth.acceptedByProvider(from.address, account.login);
    const { token } = await sessions.create(account, 'password', password, from);
    void reply.setCookie(SESSION_COOKIE, token, COOKIE_OPTIONS);
    return reply.redirect(await factors.isEnrolled(account.id) ? '/two-factor' : '/two-factor/setup', 303);
  });

  app.post('/sign-out', async (req, reply) => {
    const live = await sessions.load(req.cookies[SESSION_COOKIE]);
    if (live) {
      await sessions.end(live.session.id);
      const from = where(req);
      await ctx.store.events.append({ type: 'portal.signed_out', at: ctx.clock(), accountId: live.account.id, login: live.account.login, address: from.address, detail: { browser: from.browser } });
    }
    void reply.clearCookie(SESSION_COOKIE, COOKIE_OPTIONS);
    return pages.send(reply, 'sign-in', { title: t.signInTitle, notice: t.sessionEnded });
  });

  app.post('/confirm-password', async (req, reply) => {
    const live = await guard(sessions, req, reply, 'complete', (id) => factors.isEnrolled(id));
    if (!live) return reply;
    const next = NEXT.test(field(req, 'next')) ? field(req, 'next') : '/passwords';
    const password = field(req, 'password');
    const from = where(req);
    const outcome = await ctx.auth.signInWithPrimary({ login: live.account.login, password, clientAddress: from.address, browser: from.browser });
    if (outcome.kind !== 'accepted' || outcome.account.id !== live.account.id) {
      return pages.send(reply, 'reauth', { title: t.reauthTitle, login: live.account.login, next, error: t.signInFailed }, 401);
    }
    await sessions.passwordTyped(live, password);
    return reply.redirect(next, 303);
  });
}

/** The password-again page, in place of what was asked for (`next` brings the user back to it). */
export function askPasswordAgain(ctx: PortalContext, req: FastifyRequest, reply: FastifyReply, login: string, next: string): FastifyReply {
  return ctx.pages.send(reply, 'reauth', { title: ctx.pages.t.reauthTitle, login, next: NEXT.test(next) ? next : '/passwords' });
}
