/**
 * The signed-in account's passkeys: list, add (the registration ceremony, src/portal/static/
 * passkeys.js in the browser, src/second-factor/passkeys.ts on the server), remove. Adding and
 * removing change how the account can be signed in to, so both need the primary password typed
 * within the recent-auth window, as creating an app-specific password does (a session left open
 * must not let someone else add a passkey of their own). The options endpoint answers JSON for
 * the script; everything that changes state is a posted form with its CSRF token.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { validateLabel } from '../../accounts/validation.js';
import { isPosternError } from '../../errors.js';
import { MAX_PASSKEYS } from '../../second-factor/passkeys.js';
import type { PasskeyRow } from '../../store/index.js';
import type { PortalContext } from '../context.js';
import { field, guard, where } from '../request.js';
import type { LiveSession } from '../sessions.js';
import { formatTime } from './format.js';
import { askPasswordAgain } from './sign-in.js';

const PASSKEY_ID = /^[1-9]\d{0,15}$/;

export function passkeyRoutes(app: FastifyInstance, ctx: PortalContext): void {
  const { pages, sessions, factors, passkeys } = ctx;
  const t = pages.t;
  const signedIn = (req: FastifyRequest, reply: FastifyReply) => guard(sessions, req, reply, 'complete', (id) => factors.isEnrolled(id));
  const recent = (live: LiveSession) => ctx.clock() - live.session.passwordAt <= ctx.recentAuthMs;

  app.get('/passkeys', async (req, reply) => {
    const live = await signedIn(req, reply);
    if (!live) return reply;
    const done = (req.query as Record<string, string | undefined>).done;
    return sendList(ctx, reply, live, done === 'added' ? t.passkeyAdded : done === 'removed' ? t.passkeyRemoved : done === 'app' ? t.appAdded : undefined);
  });

  app.get('/passkeys/new', async (req, reply) => {
    const live = await signedIn(req, reply);
    if (!live) return reply;
    if (!passkeys.rp) return reply.redirect('/passkeys', 303);
    if (!recent(live)) return askPasswordAgain(ctx, req, reply, live.account.login, '/passkeys/new');
    return sendForm(ctx, reply, live);
  });

  app.post('/passkeys/new/options', async (req, reply) => {
    const live = await signedIn(req, reply);
    if (!live) return reply;
    if (!passkeys.rp || !recent(live)) return reply.code(403).header('cache-control', 'no-store').send({ error: 'reauth' });
    return reply.header('cache-control', 'no-store').send(await passkeys.registrationOptions(live.account, live.session.id));
  });

  app.post('/passkeys/new', async (req, reply) => {
    const live = await signedIn(req, reply);
    if (!live) return reply;
    if (!passkeys.rp) return reply.redirect('/passkeys', 303);
    if (!recent(live)) return askPasswordAgain(ctx, req, reply, live.account.login, '/passkeys/new');
    const typed = field(req, 'name');
    let name: string;
    try {
      name = validateLabel(typed);
    } catch (err) {
      if (!isPosternError(err, 'LABEL_INVALID')) throw err;
      return sendForm(ctx, reply, live, err.message, typed, 400);
    }
    const enrolment = await passkeys.register(live.account, live.session.id, field(req, 'response'), name, where(req));
    if (!enrolment.ok) {
      const message = enrolment.reason === 'limit' ? t.passkeyLimit(MAX_PASSKEYS) : enrolment.reason === 'duplicate' ? t.passkeyDuplicate : t.passkeyAddFailed;
      return sendForm(ctx, reply, live, message, name, 400);
    }
    return reply.redirect('/passkeys?done=added', 303);
  });

  app.get<{ Params: { id: string } }>('/passkeys/:id/remove', async (req, reply) => {
    const live = await signedIn(req, reply);
    if (!live) return reply;
    const passkey = await owned(ctx, live, req.params.id);
    if (!passkey) return notFound(ctx, reply, live);
    if (!recent(live)) return askPasswordAgain(ctx, req, reply, live.account.login, `/passkeys/${passkey.id}/remove`);
    return pages.send(reply, 'confirm', {
      title: t.passkeyRemoveTitle, login: live.account.login, nav: 'passkeys', heading: t.passkeyRemoveTitle,
      intro: t.passkeyRemoveIntro(passkey.name), action: `/passkeys/${passkey.id}/remove`, button: t.passkeyRemove, cancel: '/passkeys',
    });
  });

  app.post<{ Params: { id: string } }>('/passkeys/:id/remove', async (req, reply) => {
    const live = await signedIn(req, reply);
    if (!live) return reply;
    const passkey = await owned(ctx, live, req.params.id);
    if (!passkey) return notFound(ctx, reply, live);
    if (!recent(live)) return askPasswordAgain(ctx, req, reply, live.account.login, `/passkeys/${passkey.id}/remove`);
    const removal = await passkeys.remove(live.account, passkey.id, where(req));
    if (removal === 'absent') return notFound(ctx, reply, live);
    if (removal === 'last') return sendList(ctx, reply, live, undefined, t.passkeyLast, 409);
    return reply.redirect('/passkeys?done=removed', 303);
  });
}

/** The list, with the authenticator app's state beside it (an app can be added to a passkey-only account). */
async function sendList(ctx: PortalContext, reply: FastifyReply, live: LiveSession, notice?: string, error?: string, status = 200): Promise<FastifyReply> {
  const t = ctx.pages.t;
  return ctx.pages.send(reply, 'passkeys', {
    title: t.passkeysTitle, login: live.account.login, nav: 'passkeys', available: ctx.passkeys.rp !== null, max: MAX_PASSKEYS,
    rows: (await ctx.passkeys.list(live.account.id)).map((p) => describe(p, t.neverUsed)), notice, error,
    app: (await ctx.factors.factorsOf(live.account.id)).authenticatorApp,
  }, status);
}

function sendForm(ctx: PortalContext, reply: FastifyReply, live: LiveSession, error?: string, nameValue?: string, status = 200): FastifyReply {
  return ctx.pages.send(reply, 'passkey-new', { title: ctx.pages.t.passkeyAddTitle, login: live.account.login, nav: 'passkeys', webauthn: true, error, nameValue }, status);
}

async function owned(ctx: PortalContext, live: LiveSession, id: string): Promise<PasskeyRow | undefined> {
  if (!PASSKEY_ID.test(id)) return undefined;
  return (await ctx.passkeys.list(live.account.id)).find((p) => p.id === Number(id));
}

function notFound(ctx: PortalContext, reply: FastifyReply, live: LiveSession): FastifyReply {
  return ctx.pages.send(reply, 'error', { title: ctx.pages.t.errorTitle, login: live.account.login, nav: 'passkeys', message: ctx.pages.t.errorNotFound }, 404);
}

function describe(p: PasskeyRow, neverUsed: string) {
  return { id: p.id, name: p.name, created: formatTime(p.createdAt), lastUsed: p.lastUsedAt === null ? neverUsed : formatTime(p.lastUsedAt) };
}
