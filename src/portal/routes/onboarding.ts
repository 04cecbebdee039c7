/**
 * Automatic set-up documents on the account page's listener (issue 16): Thunderbird autoconfig at
 * `/.well-known/autoconfig/mail/config-v1.1.xml` and `/mail/config-v1.1.xml` (the latter for
 * `autoconfig.<domain>`), Microsoft Autodiscover at POST `/autodiscover/autodiscover.xml`.
 * Only for the configured `onboarding.domains`; any other domain gets a plain 404, and every
 * address of a configured domain gets the same answer (src/onboarding/), so nothing here says which
 * mailboxes exist. No session, no cookie, no CSRF token: these are read by mail clients, not
 * browsers, and carry nothing secret.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { autoconfigXml } from '../../onboarding/autoconfig.js';
import { autodiscoverErrorXml, autodiscoverXml, MAX_REQUEST_BYTES, parseAutodiscoverRequest } from '../../onboarding/autodiscover.js';
import { publishedDomains, publishedServices } from '../../onboarding/services.js';
import type { PortalContext } from '../context.js';

const AUTOCONFIG_PATHS = ['/.well-known/autoconfig/mail/config-v1.1.xml', '/mail/config-v1.1.xml'];
/** Outlook asks with either case (the path is case-insensitive on Exchange). */
const AUTODISCOVER_PATHS = ['/autodiscover/autodiscover.xml', '/Autodiscover/Autodiscover.xml', '/AutoDiscover/AutoDiscover.xml'];

/** Route option read by the CSRF hook (src/portal/index.ts): clients without a page session. */
export const NO_CSRF = { csrf: false } as const;

export function onboardingRoutes(app: FastifyInstance, ctx: PortalContext): void {
  const domains = new Set(publishedDomains(ctx.config));
  const onboarding = ctx.config.onboarding;
  const options = { displayName: onboarding?.displayName ?? 'Mail', username: onboarding?.username ?? 'address' } as const;
  const services = () => publishedServices(ctx.config, ctx.listeners());
  const notFound = (reply: FastifyReply) => reply.code(404).type('text/plain; charset=utf-8').send('Not found.\n');

  for (const path of AUTOCONFIG_PATHS) {
    app.get(path, (req, reply) => {
      const domain = autoconfigDomain(req);
      if (!domain || !domains.has(domain)) return notFound(reply);
      return reply.type('application/xml; charset=utf-8').header('cache-control', 'public, max-age=3600')
        .send(autoconfigXml(services(), { ...options, domain }));
    });
  }

  // Autodiscover bodies are XML; fastify parses form and JSON bodies only.
  app.addContentTypeParser(['text/xml', 'application/xml'], { parseAs: 'string', bodyLimit: MAX_REQUEST_BYTES }, (_req, body, done) => done(null, body));
  for (const path of AUTODISCOVER_PATHS) {
    app.post(path, { config: NO_CSRF, bodyLimit: MAX_REQUEST_BYTES }, (req, reply) => {
      const request = parseAutodiscoverRequest(typeof req.body === 'string' ? req.body : '');
      const xml = (body: string) => reply.type('text/xml; charset=utf-8').header('cache-control', 'no-store').send(body);
      if (request.kind === 'invalid') return xml(autodiscoverErrorXml());
      if (!domains.has(request.domain)) return notFound(reply);
      return xml(autodiscoverXml(services(), request.address, options));
    });
  }
}

/**
 * Thunderbird names the address in `emailaddress` (and, at `/mail/config-v1.1.xml`, asks the
 * `autoconfig.<domain>` host); the domain is taken from the address when given, else from the Host.
 */
function autoconfigDomain(req: FastifyRequest): string | null {
  const address = (req.query as { emailaddress?: unknown }).emailaddress;
  if (typeof address === 'string') {
    const at = address.lastIndexOf('@');
    return at > 0 ? address.slice(at + 1).toLowerCase() : null;
  }
  const host = (req.headers.host ?? '').toLowerCase().replace(/:\d+$/, '');
  return host.startsWith('autoconfig.') ? host.slice('autoconfig.'.length) : host || null;
}
