/**
 * Which DAV scope an accepted app password acts under for one request, or a refusal.
 *
 * Requirements only ever accumulate, from three sources:
 * - the path: a single-scope route (a base path of its own, a well-known name) needs its scope;
 *   on a root shared by calendars and address books, a password lacking one of the two is held to
 *   the kind of collection the path is in (collection-kind.ts), whatever the method;
 * - the Destination of MOVE/COPY, judged the same way (RFC 4918 §9.8, §9.9: it writes there);
 * - what the request says of itself on a shared root (routes.ts `evidentScope`: Content-Type,
 *   MKCALENDAR, `.ics`/`.vcf` names), which is the client's claim and so can only add: it counts
 *   where the source's kind leaves the scope open (a new collection, a PUT outside any calendar or
 *   address book). Where the kind decides, the claim adds nothing the upstream would honour, and
 *   counting it would lock a calendar app out of an event someone named `x.vcf`.
 * The password must hold every requirement. Issue 9, item 2: the claim used to *replace* the kind
 * check, and a contacts-only password read calendars by sending `Content-Type: text/vcard`.
 *
 * A password holding every scope of a place needs no probe there: no kind can refuse it.
 */
import type { AcceptedAuth } from '../auth/types.js';
import type { DavCredential } from './headers.js';
import type { CollectionKinds } from './collection-kind.js';
import type { DavScope, UpstreamTarget } from './routes.js';

export interface Place {
  target: UpstreamTarget;
  /** Routing path (request-target.ts). */
  path: string;
  /** Scopes any one of which the place admits, before its kind is known. */
  scopes: readonly DavScope[];
}

export interface ScopeQuestion {
  source: Place;
  destination: Place | null;
  /** What the request claims to be (evidentScope); null if it claims nothing. */
  claimed: DavScope | null;
}

export async function actingScope(kinds: CollectionKinds, question: ScopeQuestion, accepted: AcceptedAuth, credential: DavCredential): Promise<DavScope | 'refused'> {
  const holds = (scope: DavScope) => accepted.scopes?.includes(scope) ?? true;
  const atSource = await requiredAt(kinds, question.source, holds, credential);
  const required = new Set<DavScope>(atSource);
  if (question.destination) for (const scope of await requiredAt(kinds, question.destination, holds, credential)) required.add(scope);
  if (question.claimed && atSource.length === 0 && question.source.scopes.length > 1) required.add(question.claimed);
  for (const scope of required) if (!holds(scope)) return 'refused';
  return [...required][0] ?? question.source.scopes.find(holds) ?? 'refused';
}

async function requiredAt(kinds: CollectionKinds, place: Place, holds: (s: DavScope) => boolean, credential: DavCredential): Promise<DavScope[]> {
  if (place.scopes.length === 1) return [place.scopes[0]!];
  if (place.scopes.every(holds)) return [];
  const kind = await kinds.kindAt(place.target.origin, place.path, credential, place.target.basePath);
  if (kind === 'calendar') return ['caldav'];
  if (kind === 'addressbook') return ['carddav'];
  if (kind === 'undecidable') return ['caldav', 'carddav'];
  return [];
}
