/**
 * The origin clients use to reach postern, which upstream URLs are rewritten to: `dav.publicOrigin`
 * when configured (recommended behind a port mapping or a load balancer), else `https://` plus the
 * Host the client sent, else the listener's own address.
 *
 * A client choosing its Host only changes URLs in answers to itself (postern caches nothing), so
 * a forged Host gains nothing; it is still checked to be a plain host[:port] before use, because
 * it ends up in headers and XML.
 */
import type { IncomingMessage } from 'node:http';

const HOST = /^(?:[a-z0-9.-]{1,253}|\[[0-9a-f:.]{2,45}\])(?::\d{1,5})?$/i;

export function normalizeOrigin(value: string): string {
  return new URL(value).origin;
}

export function publicOriginFor(req: IncomingMessage, configured: string | undefined, fallback: string): string {
  if (configured) return configured;
  const host = req.headers.host;
  if (host && HOST.test(host)) {
    try {
      return new URL(`https://${host}`).origin;
    } catch {
      // fall through to the listener's address
    }
  }
  return fallback;
}
