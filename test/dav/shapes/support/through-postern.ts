// What every provider-shape test does the same way: one user's three app passwords (both DAV
// scopes, CalDAV only, CardDAV only), and the check that a client only ever talked to postern.
import { expect } from 'vitest';
import type { HostFetch } from '../../../helpers/dav-fetch.js';
import type { PosternHarness } from '../../../helpers/postern.js';

export interface ScopedPasswords {
  both: string;
  caldav: string;
  carddav: string;
}

export async function scopedPasswords(postern: PosternHarness, user: { name: string; primary: string }): Promise<ScopedPasswords> {
  return {
    both: (await postern.newPassword(user.name, user.primary, { label: 'both' })).password,
    caldav: (await postern.newPassword(user.name, user.primary, { label: 'cal', scopes: ['caldav'] })).password,
    carddav: (await postern.newPassword(user.name, user.primary, { label: 'card', scopes: ['carddav'] })).password,
  };
}

/** Every request the client made went to postern's origin: it never learnt an upstream's address. */
export function expectOnlyPostern(client: HostFetch, origin: string): void {
  for (const request of client.requests) expect(request.url.startsWith(`${origin}/`), request.url).toBe(true);
}
