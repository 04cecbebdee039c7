/** The account's history, newest first, paged; what the CLI's `password history` shows, in words. */
import type { FastifyInstance } from 'fastify';
import type { EventRow } from '../../store/index.js';
import type { PortalContext } from '../context.js';
import { guard } from '../request.js';
import { formatTime, PROTOCOL_NAMES } from './format.js';

export const HISTORY_PAGE = 20;
const MAX_PAGE = 10_000;

export function historyRoutes(app: FastifyInstance, ctx: PortalContext): void {
  app.get('/history', async (req, reply) => {
    const live = await guard(ctx.sessions, req, reply, 'complete', (id) => ctx.factors.isEnrolled(id));
    if (!live) return reply;
    const asked = Number((req.query as Record<string, string | undefined>).page ?? 0);
    const page = Number.isInteger(asked) && asked >= 0 && asked <= MAX_PAGE ? asked : 0;
    const found = await ctx.store.events.listPage(live.account.id, HISTORY_PAGE + 1, page * HISTORY_PAGE);
    const t = ctx.pages.t;
    const labels = new Map((await ctx.store.passwords.listForAccount(live.account.id)).map((p) => [p.publicId, p.label]));
    return ctx.pages.send(reply, 'history', {
      title: t.historyTitle, login: live.account.login, nav: 'history',
      rows: found.slice(0, HISTORY_PAGE).map((e) => describe(ctx, e, labels)),
      newer: page > 0 ? page - 1 : null, older: found.length > HISTORY_PAGE ? page + 1 : null,
    });
  });
}

function describe(ctx: PortalContext, e: EventRow, labels: ReadonlyMap<string, string>) {
  const d = e.detail ?? {};
  const { reasons } = ctx.pages.t;
  const words = (key: string) => reasons[key] ?? key.replace(/[-_]/g, ' ');
  const details: string[] = [];
  const label = typeof d.label === 'string' ? d.label : e.passwordId ? labels.get(e.passwordId) : undefined;
  if (label !== undefined) details.push(`“${label}”`);
  if (typeof d.name === 'string') details.push(`“${d.name}”`);
  if (e.protocol) details.push(e.protocol === 'portal' ? ctx.pages.t.portalName : PROTOCOL_NAMES[e.protocol as keyof typeof PROTOCOL_NAMES] ?? e.protocol);
  if (typeof d.via === 'string') details.push(words(d.via));
  if (typeof d.method === 'string') details.push(words(d.method));
  if (typeof d.reason === 'string') details.push(words(d.reason));
  const from = [e.address, typeof d.browser === 'string' ? d.browser : null].filter(Boolean).join(' · ');
  return {
    type: e.type, what: ctx.pages.t.events[e.type] ?? e.type, when: formatTime(e.at), iso: new Date(e.at).toISOString(),
    details: details.join(' · '), from,
  };
}
