/**
 * The name resolution the provider-shaped upstreams rely on (test/helpers/dav-hosts.ts): names in the
 * map resolve to their loopback address in both callback forms net/tls/http use; IP literals resolve
 * to themselves; any other name fails with ENOTFOUND and never falls back to real DNS.
 */
import { describe, expect, it } from 'vitest';
import { hostLookup } from '../../helpers/dav-hosts.js';

const lookup = hostLookup({ 'caldav.fastmail.test': '127.0.0.11' });
const resolve = (name: string, all: boolean) =>
  new Promise<{ err: NodeJS.ErrnoException | null; address: unknown }>((done) => lookup(name, { all }, (err, address) => done({ err, address })));

describe('hostLookup', () => {
  it('answers names in the map, case-insensitively, in the single and the `all` form', async () => {
    expect(await resolve('CalDAV.fastmail.test', false)).toEqual({ err: null, address: '127.0.0.11' });
    expect(await resolve('caldav.fastmail.test', true)).toEqual({ err: null, address: [{ address: '127.0.0.11', family: 4 }] });
    expect((await resolve('127.0.0.5', false)).address).toBe('127.0.0.5');
  });

  it('refuses every other name with ENOTFOUND instead of asking DNS', async () => {
    const { err } = await resolve('caldav.fastmail.com', false);
    expect(err?.code).toBe('ENOTFOUND');
    expect((await resolve('localhost', true)).err?.code).toBe('ENOTFOUND');
  });
});
