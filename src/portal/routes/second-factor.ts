/**
 * The second step of sign-in, and enrolment when the account has no second factor yet (required
 * before any app-specific password can be created, as Apple requires). A session allows
 * MAX_CODE_FAILURES wrong codes and is then ended: every further guess needs the password again,
 * which the throttle counts, so codes cannot be brute-forced behind one password sign-in.
 */
import QRCode from 'qrcode';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { groupedKey } from '../../second-factor/totp.js';
import type { PortalContext } from '../context.js';
import { COOKIE_OPTIONS, field, guard, SESSION_COOKIE, where } from '../request.js';
import type { LiveSession } from '../sessions.js';

export const MAX_CODE_FAILURES = 5;

export function secondFactorRoutes(app: FastifyInstance, ctx: PortalContext): void {
  const { pages, sessions, factors } = ctx;
  const t = pages.t;
  const enrolled = (id: number) => factors.isEnrolled(id);

  app.get('/two-factor', async (req, reply) => {
    const live = await guard(sessions, req, reply, 'password', enrolled);
    if (!live) return reply;
    if (live.session.stage === 'complete') return reply.redirect('/passwords', 303);
    if (!await enrolled(live.account.id)) return reply.redirect('/two-factor/setup', 303);
    return pages.send(reply, 'challenge', { title: t.challengeTitle });
  });

  app.post('/two-factor', async (req, reply) => {
    const live = await guard(sessions, req, reply, 'password', enrolled);
    if (!live) return reply;
    if (live.session.stage === 'complete') return reply.redirect('/passwords', 303);
    if (!await enrolled(live.account.id)) return reply.redirect('/two-factor/setup', 303);
    const check = await factors.verify(live.account, field(req, 'code'), where(req));
    if (check.ok) {
      await complete(ctx, live, check.via, where(req));
      return reply.redirect('/passwords', 303);
    }
    if (await codeFailed(ctx, live, reply, where(req).address)) return reply;
    return pages.send(reply, 'challenge', { title: t.challengeTitle, error: t.codeWrong }, 401);
  });

  app.get('/two-factor/setup', async (req, reply) => {
    const live = await guard(sessions, req, reply, 'password', enrolled);
    if (!live) return reply;
    if (await enrolled(live.account.id)) return reply.redirect(live.session.stage === 'complete' ? '/passwords' : '/two-factor', 303);
    return sendEnrolment(ctx, live, reply);
  });

  app.post('/two-factor/setup', async (req, reply) => {
    const live = await guard(sessions, req, reply, 'password', enrolled);
    if (!live) return reply;
    if (await enrolled(live.account.id) || !live.session.pendingTotpBox) return reply.redirect('/two-factor/setup', 303);
    const codes = await factors.confirm(live.account, live.session.id, live.session.pendingTotpBox, field(req, 'code'), where(req));
    if (!codes) {
      if (await codeFailed(ctx, live, reply, where(req).address)) return reply;
      return sendEnrolment(ctx, live, reply, t.codeWrong);
    }
    await complete(ctx, live, 'enrolment', where(req));
    return pages.send(reply, 'recovery-codes', { title: t.recoveryTitle, login: live.account.login, codes });
  });
}

async function sendEnrolment(ctx: PortalContext, live: LiveSession, reply: FastifyReply, error?: string): Promise<FastifyReply> {
  const { factors, store } = ctx;
  let base32: string;
  let uri: string;
  if (live.session.pendingTotpBox) {
    base32 = factors.openProposal(live.account, live.session.id, live.session.pendingTotpBox);
    uri = factors.uriFor(live.account, base32);
  } else {
    const proposal = factors.propose(live.account, live.session.id);
    await store.portalSessions.setPendingTotp(live.session.id, proposal.box);
    ({ base32, uri } = proposal);
  }
  const qrSvg = await QRCode.toString(uri, { type: 'svg', margin: 2, errorCorrectionLevel: 'M' });
  return ctx.pages.send(reply, 'enrol', { title: ctx.pages.t.enrolTitle, login: live.account.login, qrSvg, key: groupedKey(base32), error }, error ? 401 : 200);
}

/** Counts a wrong code; at the limit the session ends and the reply is the sign-in page. */
async function codeFailed(ctx: PortalContext, live: LiveSession, reply: FastifyReply, ip: string): Promise<boolean> {
  const failures = await ctx.store.portalSessions.codeFailed(live.session.id);
  ctx.log.warn({ event: 'portal.code_refused', ip, user: live.account.login, failures }, 'a wrong second-factor code on the account page');
  if (failures < MAX_CODE_FAILURES) return false;
  await ctx.sessions.end(live.session.id);
  void reply.clearCookie(SESSION_COOKIE, COOKIE_OPTIONS);
  void ctx.pages.send(reply, 'sign-in', { title: ctx.pages.t.signInTitle, error: ctx.pages.t.tooManyCodes }, 401);
  return true;
}

/** Both steps done: the session may now create and revoke (with a recent password). */
async function complete(ctx: PortalContext, live: LiveSession, via: string, from: { address: string; browser: string }): Promise<void> {
  await ctx.sessions.complete(live);
  await ctx.store.events.append({ type: 'portal.signed_in', at: ctx.clock(), accountId: live.account.id, login: live.account.login, address: from.address, detail: { via, browser: from.browser } });
  ctx.log.info({ event: 'portal.signed_in', ip: from.address, user: live.account.login, via }, 'signed in to the account page');
}
