/**
 * What URL heads become in each direction, given the namespace of routes.ts (the mechanics of
 * finding them are origin-rewrite.ts).
 *
 * Upstream → client (`toPublic`), for an answer from mount M:
 * - an absolute URL on a mounted origin (or an alias of the root one) → postern's public origin
 *   plus that mount's prefix; on an unmounted origin that M's `follow` patterns allow, the origin
 *   is mounted first (routes.ts `learn`): this is how iCloud's `pNN-caldav` host is followed;
 * - a path-absolute href → M's prefix in front (nothing to do on the root mount);
 * - anything else (a host the admin did not allow) stays as the upstream wrote it: the client may
 *   see it, but postern never sends credentials there.
 * Client → upstream (`toUpstream`), for a request to mount T:
 * - an absolute URL on the public origin → the origin its mount names (or the root mount's);
 * - a path-absolute `/@host/…` → `/…` when it is T, the other mount's absolute URL otherwise;
 * - anything else is left alone. Nothing a client writes ever mounts an origin.
 */
import { normalOrigin, type HeadMap } from './origin-rewrite.js';
import type { DavRoutes, Mount } from './routes.js';

export function toPublic(routes: DavRoutes, from: Mount, publicOrigin: string): HeadMap {
  return (head) => {
    if (head.origin !== undefined) {
      const origin = normalOrigin(head.origin);
      if (origin === null || origin === publicOrigin) return null;
      const mount = routes.mountOf(origin) ?? routes.learn(origin, from);
      return mount ? publicOrigin + mount.prefix + (head.mount ?? '') : null;
    }
    if (!head.pathAbsolute || from.prefix === '') return null;
    return from.prefix + (head.mount ?? '');
  };
}

export function toUpstream(routes: DavRoutes, to: Mount, publicOrigin: string): HeadMap {
  return (head) => {
    const named = head.mount === undefined ? undefined : routes.mountNamed(head.mount.slice(1));
    if (head.origin !== undefined) {
      if (normalOrigin(head.origin) !== publicOrigin) return null;
      const mount = named ?? routes.root();
      return mount ? mount.origin + (named ? '' : head.mount ?? '') : null;
    }
    if (!head.pathAbsolute || !named) return null;
    return named === to ? '' : named.origin;
  };
}
