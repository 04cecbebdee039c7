/**
 * "Install on this iPhone/iPad/Mac" (issue 16): the one-time Apple profile offered right after
 * Generate, as a link and as a QR code that opens the same link on a phone. The download itself
 * needs no page session (a phone that scans the code has none): the token in the URL is the
 * capability, valid once for a few minutes (src/onboarding/profile-download.ts). The QR code is an
 * SVG rendered here (the CSP allows no inline script, and the page works without JavaScript).
 * The link's origin comes from the config (ctx.pageUrl), never from the request's Host header: a
 * forged Host would otherwise put an attacker's origin into the QR code, and the phone would send
 * the one-time token (and fetch a "profile") there.
 * The token must never reach a log line: loggablePath() is what the page's logging shows of a URL.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import QRCode from 'qrcode';
import type { CreatedPassword } from '../../accounts/service.js';
import { clientAddressOf } from '../../auth/client-address.js';
import { appleProfile, PROFILE_CONTENT_TYPE, signProfile } from '../../onboarding/apple-profile.js';
import { publishedDomains, publishedHost, publishedServices } from '../../onboarding/services.js';
import type { AccountRow } from '../../store/index.js';
import type { PortalContext } from '../context.js';

export const PROFILE_PREFIX = '/profile/';

export interface ProfileOfferView {
  /** The link on this device. */
  path: string;
  /** The absolute URL the QR code carries. */
  url: string;
  qrSvg: string;
  /** How long the offer lasts, for the sentence under the link. */
  seconds: number;
}

/**
 * A request path as the page's log lines may show it: anything as long as a download token is cut
 * out wherever it stands (`/x/../profile/<token>`, a query), before the path is shortened.
 */
export function loggablePath(url: string): string {
  return url.replace(/[A-Za-z0-9_-]{40,}/g, '…').slice(0, 100);
}

/**
 * Offers the profile of a password just created, or null when the page offers none (turned off,
 * or no service the password may use is served). A failure to store the offer must not cost the
 * user the password shown once: the page is then sent without the offer.
 */
export async function offerProfile(ctx: PortalContext, account: AccountRow, created: CreatedPassword): Promise<ProfileOfferView | null> {
  if (!ctx.profiles) return null;
  const services = publishedServices(ctx.config, ctx.listeners());
  if (!services.some((s) => created.scopes.includes(s.protocol))) return null;
  try {
    const passwordId = (await ctx.store.passwords.findByPublicId(created.publicId))?.id;
    if (passwordId === undefined) return null;
    const token = await ctx.profiles.offer({
      accountId: account.id, passwordId, publicId: created.publicId,
      profile: { login: account.login, address: addressOf(ctx, account.login), password: created.password, label: created.label, scopes: created.scopes },
    });
    const path = `${PROFILE_PREFIX}${token}`;
    const url = new URL(path, ctx.pageUrl()).href;
    const qrSvg = await QRCode.toString(url, PROFILE_QR_OPTIONS);
    return { path, url, qrSvg, seconds: Math.round(ctx.profiles.validMs / 1000) };
  } catch (err) {
    ctx.log.error({ event: 'internal.error', hook: 'portal', err: (err as Error).message }, 'the one-time profile could not be offered; the page is sent without it');
    return null;
  }
}

/** The QR code's rendering, shared with the tests that regenerate it to compare. */
export const PROFILE_QR_OPTIONS = { type: 'svg', margin: 2, errorCorrectionLevel: 'M' } as const;

export function profileRoutes(app: FastifyInstance, ctx: PortalContext): void {
  // No automatic HEAD route: fastify would answer HEAD by running this handler, and a HEAD (a link
  // checker, a preview) would spend the one download.
  app.get<{ Params: { token: string } }>(`${PROFILE_PREFIX}:token`, { exposeHeadRoute: false }, async (req, reply) => {
    if (!ctx.profiles) return gone(ctx, req, reply, 'gone');
    const taken = await ctx.profiles.take(req.params.token);
    if (taken.kind !== 'ok') return gone(ctx, req, reply, taken.kind);
    const onboarding = ctx.config.onboarding;
    const xml = appleProfile(publishedServices(ctx.config, ctx.listeners()), taken.profile, {
      displayName: onboarding?.displayName ?? 'Mail',
      identifier: publishedHost(ctx.config).split('.').reverse().concat('postern').join('.'),
    });
    const material = ctx.tls.secureContextOptions();
    const signed = signProfile(xml, pem(material.cert), pem(material.key));
    ctx.log.info({ event: 'portal.profile_downloaded', ip: clientAddressOf(req.socket), user: taken.profile.login, password: taken.publicId, signed: signed.signed },
      'the one-time set-up profile was downloaded');
    return reply.code(200).header('cache-control', 'no-store').header('content-disposition', 'attachment; filename="postern.mobileconfig"')
      .type(PROFILE_CONTENT_TYPE).send(signed.body);
  });
}

/** TlsMaterial reads both files as bytes (src/net/tls-material.ts): PEM text. */
function pem(value: unknown): string {
  return Buffer.isBuffer(value) || typeof value === 'string' ? value.toString() : '';
}

function gone(ctx: PortalContext, req: FastifyRequest, reply: FastifyReply, reason: 'gone' | 'expired' | 'revoked'): FastifyReply {
  ctx.log.info({ event: 'portal.profile_refused', ip: clientAddressOf(req.socket), reason }, 'a one-time profile download was refused');
  const t = ctx.pages.t;
  return ctx.pages.send(reply, 'error', { title: t.profileGoneTitle, heading: t.profileGoneTitle, message: t.profileGone }, 410);
}

/** The address Mail shows and sends as: the login when it is one, else login@first domain. */
function addressOf(ctx: PortalContext, login: string): string {
  if (login.includes('@')) return login;
  const domain = publishedDomains(ctx.config)[0];
  return domain ? `${login}@${domain}` : login;
}
