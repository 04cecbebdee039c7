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
    return sendChallenge(ctx, live, reply);
  });

  app.post('/two-factor', async (req, reply) => {
    const live = await guard(sessions, req, reply, 'password', enrolled);
    if (!live) return reply;
    if (live.session.stage === 'complete') return reply.redirect('/passwords', 303);
    if (!await enrolled(live.account.id)) return reply.redirect('/two-factor/setup', 303);
    const check = await factors.verify(live.account, field(req, 'code'), where(req));
    if (check.ok) {
      await complete(ctx, live, reply, check.via, where(req));
      return reply.redirect('/passwords', 303);
    }
    if (await codeFailed(ctx, live, reply, where(req).address)) return reply;
    return sendChallenge(ctx, live, reply, t.codeWrong);
  });

  // The passkey as the second step (src/second-factor/passkeys.ts): options for the page script,
  // then the posted assertion. A refused assertion counts as a wrong code.
  app.post('/two-factor/passkey/options', async (req, reply) => {
    const live = await guard(sessions, req, reply, 'password', enrolled);
    if (!live) return reply;
    if (live.session.stage === 'complete' || !ctx.passkeys.rp || (await ctx.passkeys.count(live.account.id)) === 0) {
      return reply.code(409).header('cache-control', 'no-store').send({ error: 'no passkey step' });
    }
    return reply.header('cache-control', 'no-store').send(await ctx.passkeys.authenticationOptions(live.account, live.session.id));
  });

  app.post('/two-factor/passkey', async (req, reply) => {
    const live = await guard(sessions, req, reply, 'password', enrolled);
    if (!live) return reply;
    if (live.session.stage === 'complete') return reply.redirect('/passwords', 303);
    if (!await enrolled(live.account.id)) return reply.redirect('/two-factor/setup', 303);
    if (ctx.passkeys.rp && await ctx.passkeys.authenticate(live.account, live.session.id, field(req, 'response'), where(req))) {
      await complete(ctx, live, reply, 'passkey', where(req));
      return reply.redirect('/passwords', 303);
    }
    if (await codeFailed(ctx, live, reply, where(req).address)) return reply;
    return sendChallenge(ctx, live, reply, t.passkeyRefused);
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
    await complete(ctx, live, reply, 'enrolment', where(req));
    return pages.send(reply, 'recovery-codes', { title: t.recoveryTitle, login: live.account.login, codes });
  });
}

async function sendChallenge(ctx: PortalContext, live: LiveSession, reply: FastifyReply, error?: string): Promise<FastifyReply> {
  const passkeys = ctx.passkeys.rp !== null && (await ctx.passkeys.count(live.account.id)) > 0;
  return ctx.pages.send(reply, 'challenge', { title: ctx.pages.t.challengeTitle, error, passkeys, webauthn: passkeys }, error ? 401 : 200);
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

/** Both steps done: the session, under a new cookie, may now create and revoke (with a recent password). */
async function complete(ctx: PortalContext, live: LiveSession, reply: FastifyReply, via: string, from: { address: string; browser: string }): Promise<void> {
  const token = await ctx.sessions.complete(live);
  if (token) void reply.setCookie(SESSION_COOKIE, token, COOKIE_OPTIONS);
  await ctx.store.events.append({ type: 'portal.signed_in', at: ctx.clock(), accountId: live.account.id, login: live.account.login, address: from.address, detail: { via, browser: from.browser } });
  ctx.log.info({ event: 'portal.signed_in', ip: from.address, user: live.account.login, via }, 'signed in to the account page');
}
