/**
 * The second step of sign-in, and enrolment when the account has no second factor yet (required
 * before any app-specific password can be created, as Apple requires): an authenticator app or a
 * passkey, the user's choice (a passkey needs JavaScript; without it the page offers the app).
 * Whichever comes first brings the ten recovery codes; an app can be added later beside passkeys
 * (/two-factor/app, a recent sign-in as for any change to how the account is signed in to). A session allows
 * MAX_CODE_FAILURES wrong codes and is then ended: every further guess needs the password again,
 * which the throttle counts, so codes cannot be brute-forced behind one password sign-in.
 */
import QRCode from 'qrcode';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { groupedKey } from '../../second-factor/totp.js';
import type { PortalContext } from '../context.js';
import { validateLabel } from '../../accounts/validation.js';
import { isPosternError } from '../../errors.js';
import { COOKIE_OPTIONS, field, guard, SESSION_COOKIE, where } from '../request.js';
import type { LiveSession } from '../sessions.js';
import { askPasswordAgain } from './sign-in.js';

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

  // A passkey as the first factor: the registration ceremony from the set-up page, at stage
  // `password` (the password was typed moments ago, at sign-in; the recent-auth rule still holds).
  const setupPasskeyAllowed = async (live: LiveSession) => ctx.passkeys.rp !== null && recent(ctx, live) && !await enrolled(live.account.id);

  app.post('/two-factor/setup/passkey/options', async (req, reply) => {
    const live = await guard(sessions, req, reply, 'password', enrolled);
    if (!live) return reply;
    if (!await setupPasskeyAllowed(live)) return reply.code(409).header('cache-control', 'no-store').send({ error: 'no passkey set-up' });
    return reply.header('cache-control', 'no-store').send(await ctx.passkeys.registrationOptions(live.account, live.session.id));
  });

  app.post('/two-factor/setup/passkey', async (req, reply) => {
    const live = await guard(sessions, req, reply, 'password', enrolled);
    if (!live) return reply;
    if (!await setupPasskeyAllowed(live)) return reply.redirect('/two-factor/setup', 303);
    let name: string;
    try {
      name = validateLabel(field(req, 'name'));
    } catch (err) {
      if (!isPosternError(err, 'LABEL_INVALID')) throw err;
      return sendEnrolment(ctx, live, reply, undefined, err.message);
    }
    const recovery = factors.newRecoveryCodes();
    const enrolment = await ctx.passkeys.register(live.account, live.session.id, field(req, 'response'), name, where(req), recovery.digests);
    if (!enrolment.ok) return sendEnrolment(ctx, live, reply, undefined, t.passkeyAddFailed);
    await complete(ctx, live, reply, 'enrolment', where(req));
    if (!enrolment.firstFactor) return reply.redirect('/passwords', 303);
    return pages.send(reply, 'recovery-codes', { title: t.recoveryTitle, login: live.account.login, codes: recovery.codes });
  });

  // An authenticator app added later, beside the passkeys the account was set up with.
  const signedIn = (req: Parameters<typeof guard>[1], reply: FastifyReply) => guard(sessions, req, reply, 'complete', enrolled);

  app.get('/two-factor/app', async (req, reply) => {
    const live = await signedIn(req, reply);
    if (!live) return reply;
    if ((await factors.factorsOf(live.account.id)).authenticatorApp) return reply.redirect('/passkeys', 303);
    if (!recent(ctx, live)) return askPasswordAgain(ctx, req, reply, live.account.login, '/two-factor/app');
    return sendEnrolment(ctx, live, reply, undefined, undefined, '/two-factor/app');
  });

  app.post('/two-factor/app', async (req, reply) => {
    const live = await signedIn(req, reply);
    if (!live) return reply;
    if ((await factors.factorsOf(live.account.id)).authenticatorApp || !live.session.pendingTotpBox) return reply.redirect('/two-factor/app', 303);
    if (!recent(ctx, live)) return askPasswordAgain(ctx, req, reply, live.account.login, '/two-factor/app');
    const codes = await factors.confirm(live.account, live.session.id, live.session.pendingTotpBox, field(req, 'code'), where(req));
    if (!codes) {
      if (await codeFailed(ctx, live, reply, where(req).address)) return reply;
      return sendEnrolment(ctx, live, reply, t.codeWrong, undefined, '/two-factor/app');
    }
    return reply.redirect('/passkeys?done=app', 303);
  });
}

const recent = (ctx: PortalContext, live: LiveSession) => ctx.clock() - live.session.passwordAt <= ctx.recentAuthMs;

async function sendChallenge(ctx: PortalContext, live: LiveSession, reply: FastifyReply, error?: string): Promise<FastifyReply> {
  const factors = await ctx.factors.factorsOf(live.account.id);
  const passkeys = ctx.passkeys.rp !== null && factors.passkeys > 0;
  return ctx.pages.send(reply, 'challenge', { title: ctx.pages.t.challengeTitle, error, passkeys, webauthn: passkeys, app: factors.authenticatorApp }, error ? 401 : 200);
}

/**
 * The set-up page (or, at `action` /two-factor/app, adding the app later): the TOTP key proposed
 * to this session, and at set-up the passkey alternative. `error` belongs to the code form,
 * `passkeyError` to the passkey form.
 */
async function sendEnrolment(ctx: PortalContext, live: LiveSession, reply: FastifyReply, error?: string, passkeyError?: string, action = '/two-factor/setup'): Promise<FastifyReply> {
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
  const later = action !== '/two-factor/setup';
  const passkey = !later && ctx.passkeys.rp !== null;
  return ctx.pages.send(reply, 'enrol', {
    title: later ? ctx.pages.t.appAddTitle : ctx.pages.t.enrolTitle, login: live.account.login, nav: later ? 'passkeys' : undefined, later, action,
    qrSvg, key: groupedKey(base32), error, passkey, webauthn: passkey, passkeyError,
  }, error ? 401 : passkeyError ? 400 : 200);
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
