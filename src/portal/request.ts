/**
 * What the routes need of a request: the client's address and browser (for the history), the
 * session cookie, and the guards that send a request without the right session elsewhere.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { clientAddressOf } from '../auth/client-address.js';
import type { LiveSession, PortalSessions } from './sessions.js';

/** `__Host-`: the browser keeps it only if Secure, Path=/ and without Domain (RFC 6265bis §4.1.3.2). */
export const SESSION_COOKIE = '__Host-postern_session';
export const COOKIE_OPTIONS = { path: '/', secure: true, httpOnly: true, sameSite: 'strict' } as const;

const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/gu;

export function where(req: FastifyRequest): { address: string; browser: string } {
  const ua = req.headers['user-agent'] ?? '';
  return { address: clientAddressOf(req.socket), browser: ua.replace(UNSAFE_CHARS, '').slice(0, 200) };
}

/** A field of a urlencoded form as one string (absent or repeated → ''). */
export function field(req: FastifyRequest, name: string): string {
  const value = (req.body as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'string' ? value : '';
}

/** A field that may repeat (checkboxes). */
export function fields(req: FastifyRequest, name: string): string[] {
  const value = (req.body as Record<string, unknown> | undefined)?.[name];
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

export type Guarded = LiveSession | null;

/**
 * The session of a request that needs one at `stage`: otherwise the reply is already a redirect
 * (to sign in, or to the second factor still owed) and null comes back.
 */
export async function guard(sessions: PortalSessions, req: FastifyRequest, reply: FastifyReply, stage: 'password' | 'complete', enrolled: (accountId: number) => Promise<boolean>): Promise<Guarded> {
  const live = await sessions.load(req.cookies[SESSION_COOKIE]);
  if (!live) {
    void reply.clearCookie(SESSION_COOKIE, COOKIE_OPTIONS).redirect('/sign-in', 303);
    return null;
  }
  if (stage === 'complete' && live.session.stage !== 'complete') {
    void reply.redirect(await enrolled(live.account.id) ? '/two-factor' : '/two-factor/setup', 303);
    return null;
  }
  return live;
}
