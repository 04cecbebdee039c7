/**
 * The app-specific passwords of the signed-in account: list, Generate, Revoke one, Revoke all,
 * through the same AccountService as the CLI (label rules, scopes, expiry, the limit of 25, the
 * history entries; revocation ends live sessions within a second through the proxies' watchers).
 * Creating needs the primary password typed within the recent-auth window (it unseals the data
 * key the new password carries); revoking needs the same recency. Otherwise the password is asked
 * again (routes/sign-in.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { servers } from '../../accounts/server-settings.js';
import { MAX_ACTIVE_PASSWORDS } from '../../accounts/validation.js';
import { isPosternError } from '../../errors.js';
import { isActive, PROTOCOLS, type AppPasswordRow, type Protocol } from '../../store/index.js';
import type { PortalContext } from '../context.js';
import { field, fields, guard } from '../request.js';
import type { LiveSession } from '../sessions.js';
import { offerProfile } from './profile.js';
import { askPasswordAgain } from './sign-in.js';
import { connectionOf } from './connect.js';
import { formatTime, PROTOCOL_NAMES } from './format.js';

const PUBLIC_ID = /^[0-9a-f]{8}$/;
/** Refusals of a request whose message is written for the person who made it. */
const USER_ERRORS = ['LABEL_INVALID', 'SCOPE_INVALID', 'EXPIRY_INVALID', 'PASSWORD_LIMIT_REACHED'] as const;

export function passwordRoutes(app: FastifyInstance, ctx: PortalContext): void {
  const { pages, sessions, accounts, factors } = ctx;
  const t = pages.t;
  const signedIn = (req: FastifyRequest, reply: FastifyReply) => guard(sessions, req, reply, 'complete', (id) => factors.isEnrolled(id));
  const recent = (live: LiveSession) => ctx.clock() - live.session.passwordAt <= ctx.recentAuthMs;

  app.get('/passwords', async (req, reply) => {
    const live = await signedIn(req, reply);
    if (!live) return reply;
    const now = ctx.clock();
    const rows = (await accounts.listPasswords(live.account.login)).map((p) => describe(ctx, p, now));
    const query = req.query as Record<string, string | undefined>;
    const n = Number(query.n);
    const notice = query.done === 'revoked' ? t.revoked : query.done === 'revoked-all' && Number.isInteger(n) && n >= 0 ? t.revokedAll(n)
      : query.done === 'connected' ? t.connectDone : undefined;
    return pages.send(reply, 'passwords', {
      title: t.passwordsTitle, login: live.account.login, nav: 'passwords', rows, notice,
      activeCount: rows.filter((r) => r.status === 'active').length, max: MAX_ACTIVE_PASSWORDS,
      connection: connectionOf(live.account),
    });
  });

  app.get('/passwords/new', async (req, reply) => {
    const live = await signedIn(req, reply);
    if (!live) return reply;
    if (!(await sessions.recentPassword(live))) return askPasswordAgain(ctx, req, reply, live.account.login, '/passwords/new');
    return sendForm(ctx, reply, live);
  });

  app.post('/passwords/new', async (req, reply) => {
    const live = await signedIn(req, reply);
    if (!live) return reply;
    const primary = await sessions.recentPassword(live);
    if (!primary) return askPasswordAgain(ctx, req, reply, live.account.login, '/passwords/new');
    const scopes = fields(req, 'scopes');
    const expires = field(req, 'expires');
    const label = field(req, 'label');
    try {
      const created = await accounts.createPassword(live.account.login, primary, { label, scopes: scopes.length ? scopes : undefined, expires: expires || undefined });
      return pages.send(reply, 'generated', {
        title: t.generatedTitle, login: live.account.login, nav: 'passwords',
        label: created.label, password: created.password, groups: created.password.split('-'),
        servers: servers(ctx.config, created.scopes, ctx.listeners()),
        profile: await offerProfile(ctx, live.account, created),
      });
    } catch (err) {
      if (!USER_ERRORS.some((code) => isPosternError(err, code))) throw err;
      return sendForm(ctx, reply, live, (err as Error).message, label, 400);
    }
  });

  app.get<{ Params: { id: string } }>('/passwords/:id/revoke', async (req, reply) => {
    const live = await signedIn(req, reply);
    if (!live) return reply;
    const row = await activePassword(ctx, live, req.params.id);
    if (!row) return notFound(ctx, reply, live);
    if (!recent(live)) return askPasswordAgain(ctx, req, reply, live.account.login, `/passwords/${row.publicId}/revoke`);
    return pages.send(reply, 'confirm', {
      title: t.revokeTitle, login: live.account.login, nav: 'passwords', heading: t.revokeTitle,
      intro: t.revokeIntro(row.label), action: `/passwords/${row.publicId}/revoke`, button: t.revokeButton,
    });
  });

  app.post<{ Params: { id: string } }>('/passwords/:id/revoke', async (req, reply) => {
    const live = await signedIn(req, reply);
    if (!live) return reply;
    const row = await activePassword(ctx, live, req.params.id);
    if (!row) return notFound(ctx, reply, live);
    if (!recent(live)) return askPasswordAgain(ctx, req, reply, live.account.login, `/passwords/${row.publicId}/revoke`);
    try {
      await accounts.revokePassword(live.account.login, row.publicId, 'user');
    } catch (err) {
      if (!isPosternError(err, 'PASSWORD_NOT_FOUND')) throw err;
      return notFound(ctx, reply, live);
    }
    return reply.redirect('/passwords?done=revoked', 303);
  });

  app.get('/passwords/revoke-all', async (req, reply) => {
    const live = await signedIn(req, reply);
    if (!live) return reply;
    if (!recent(live)) return askPasswordAgain(ctx, req, reply, live.account.login, '/passwords/revoke-all');
    return pages.send(reply, 'confirm', {
      title: t.revokeAllTitle, login: live.account.login, nav: 'passwords', heading: t.revokeAllTitle,
      intro: t.revokeAllIntro, action: '/passwords/revoke-all', button: t.revokeAllButton,
    });
  });

  app.post('/passwords/revoke-all', async (req, reply) => {
    const live = await signedIn(req, reply);
    if (!live) return reply;
    if (!recent(live)) return askPasswordAgain(ctx, req, reply, live.account.login, '/passwords/revoke-all');
    const revoked = await accounts.revokeAll(live.account.login, 'user');
    return reply.redirect(`/passwords?done=revoked-all&n=${revoked.length}`, 303);
  });
}

function sendForm(ctx: PortalContext, reply: FastifyReply, live: LiveSession, error?: string, labelValue?: string, status = 200): FastifyReply {
  const scopes = PROTOCOLS.map((p) => ({ value: p, name: PROTOCOL_NAMES[p] }));
  return ctx.pages.send(reply, 'new-password', { title: ctx.pages.t.newTitle, login: live.account.login, nav: 'passwords', scopes, error, labelValue }, status);
}

async function activePassword(ctx: PortalContext, live: LiveSession, id: string): Promise<AppPasswordRow | undefined> {
  if (!PUBLIC_ID.test(id)) return undefined;
  return (await ctx.accounts.listPasswords(live.account.login)).find((p) => p.publicId === id && isActive(p, ctx.clock()));
}

function notFound(ctx: PortalContext, reply: FastifyReply, live: LiveSession): FastifyReply {
  return ctx.pages.send(reply, 'error', { title: ctx.pages.t.errorTitle, login: live.account.login, nav: 'passwords', message: ctx.pages.t.errorNotFound }, 404);
}

function describe(ctx: PortalContext, p: AppPasswordRow, now: number) {
  const t = ctx.pages.t;
  const status = p.revokedAt !== null ? (p.revokedReason === 'expiry' ? 'expired' : 'revoked') : isActive(p, now) ? 'active' : 'expired';
  const statusText = status === 'active' ? t.statusActive : status === 'revoked' ? t.statusRevoked : t.statusExpired;
  const lastUsed = p.lastUsedAt === null ? t.neverUsed
    : [formatTime(p.lastUsedAt), p.lastUsedProtocol ? PROTOCOL_NAMES[p.lastUsedProtocol as Protocol] ?? p.lastUsedProtocol : null, p.lastUsedAddress].filter(Boolean).join(' · ');
  return {
    id: p.publicId, label: p.label, status, statusText, created: formatTime(p.createdAt), lastUsed,
    scopes: p.scopes.map((s) => PROTOCOL_NAMES[s]).join(', '), expires: p.expiresAt === null ? t.never : formatTime(p.expiresAt),
  };
}
