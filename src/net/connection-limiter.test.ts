/**
 * Connection caps per client. Pins: the per-address cap counts an IPv6 /64 as one client (one
 * subscriber line gets a whole /64 and could rotate through it), IPv4-mapped IPv6 as the IPv4
 * address; the total cap holds across clients; release is idempotent and frees the place.
 */
import { describe, expect, it } from 'vitest';
import { ConnectionLimiter } from './connection-limiter.js';

describe('connection limiter', () => {
  it('IPv6 address rotation: every address of one /64 shares a single per-address cap', () => {
    const limiter = new ConnectionLimiter({ maxConnections: 100, maxConnectionsPerAddress: 3 });
    const held = ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:ffff:ffff:ffff:ffff'].map((a) => limiter.acquire(a));
    expect(held.every((h) => 'release' in h)).toBe(true);
    expect(limiter.acquire('2001:db8:1:2:abcd::99')).toEqual({ refused: 'address' });
    expect('release' in limiter.acquire('2001:db8:1:3::1')).toBe(true); // the next /64 is another client
  });

  it('counts IPv4-mapped IPv6 as the IPv4 address', () => {
    const limiter = new ConnectionLimiter({ maxConnections: 100, maxConnectionsPerAddress: 1 });
    expect('release' in limiter.acquire('192.0.2.7')).toBe(true);
    expect(limiter.acquire('::ffff:192.0.2.7')).toEqual({ refused: 'address' });
  });

  it('holds the total across clients, and a release (once, however often called) frees a place', () => {
    const limiter = new ConnectionLimiter({ maxConnections: 2, maxConnectionsPerAddress: 2 });
    const first = limiter.acquire('192.0.2.1');
    expect('release' in limiter.acquire('2001:db8::1')).toBe(true);
    expect(limiter.acquire('198.51.100.1')).toEqual({ refused: 'total' });
    if (!('release' in first)) throw new Error('refused');
    first.release();
    first.release();
    expect('release' in limiter.acquire('198.51.100.1')).toBe(true);
    expect(limiter.acquire('198.51.100.2')).toEqual({ refused: 'total' });
  });

  it('a budget of 0 refuses everything', () => {
    expect(new ConnectionLimiter({ maxConnections: 0, maxConnectionsPerAddress: 0 }).acquire('192.0.2.1')).toEqual({ refused: 'total' });
  });
});
