/**
 * The penalty throttle on an injected clock. Invariants pinned here:
 * - failures add a growing delay (base, ×2 …) that caps, holds the next attempt, and lifts after its time;
 * - a success clears the address's record for that login (and only that login);
 * - the same wrong password repeated is not counted again, and keeps a "clean" record clean;
 * - past the limit an address is blocked, and the block lifts after blockMs;
 * - an attacked account still admits a clean address; it blocks only addresses that failed against it;
 * - trusted networks are exempt; IPv6 counts per /64, IPv4-mapped IPv6 as IPv4;
 * - memory stays bounded under a spray of addresses.
 */
import { describe, expect, it } from 'vitest';
import { plainAddress, parseTrustedNetworks, throttleKey } from '../../src/auth/client-address.js';
import { PenaltyThrottle, type PenaltyThrottleOptions } from '../../src/auth/penalty-throttle.js';
import { isPosternError } from '../../src/errors.js';

const DEFAULTS = { baseDelayMs: 2000, maxDelayMs: 15_000, blockAfterFailures: 10, blockMs: 15 * 60_000, windowMs: 15 * 60_000 };

function setup(overrides: Partial<PenaltyThrottleOptions> = {}) {
  const clock = { now: 1_700_000_000_000 };
  const throttle = new PenaltyThrottle({ ...DEFAULTS, clock: () => clock.now, ...overrides });
  return { clock, throttle };
}

const ATTACKER = '198.51.100.7';
const OWNER = '203.0.113.20';

describe('penalty throttle', () => {
  it('delays grow 2, 4, 8 s and cap at 15 s', () => {
    const { throttle } = setup({ blockAfterFailures: 100 });
    const delays = Array.from({ length: 6 }, (_, i) => throttle.failed(ATTACKER, 'alice', `guess-${i}`).delayMs);
    expect(delays).toEqual([2000, 4000, 8000, 15_000, 15_000, 15_000]);
  });

  it('holds the next attempt for the rest of the penalty, which lifts after its time', () => {
    const { clock, throttle } = setup();
    throttle.failed(ATTACKER, 'alice', 'guess-1');
    throttle.failed(ATTACKER, 'alice', 'guess-2');
    expect(throttle.before(ATTACKER, 'alice')).toEqual({ blocked: false, delayMs: 4000 });
    clock.now += 1500;
    expect(throttle.before(ATTACKER, 'alice').delayMs).toBe(2500);
    clock.now += 2500;
    expect(throttle.before(ATTACKER, 'alice').delayMs).toBe(0);
    // Other addresses were never held.
    expect(throttle.before(OWNER, 'alice').delayMs).toBe(0);
  });

  it('forgets failures older than the window: the delay starts again from the base', () => {
    const { clock, throttle } = setup();
    for (let i = 0; i < 3; i++) throttle.failed(ATTACKER, 'alice', `guess-${i}`);
    clock.now += DEFAULTS.windowMs + 1;
    expect(throttle.failed(ATTACKER, 'alice', 'guess-late')).toEqual({ delayMs: 2000, cleanRecord: true });
  });

  it('a success resets the address record for that login', () => {
    const { throttle } = setup();
    throttle.failed(OWNER, 'alice', 'typo-1');
    throttle.failed(OWNER, 'alice', 'typo-2');
    throttle.succeeded(OWNER, 'alice');
    expect(throttle.before(OWNER, 'alice')).toEqual({ blocked: false, delayMs: 0 });
    expect(throttle.failed(OWNER, 'alice', 'typo-3')).toEqual({ delayMs: 2000, cleanRecord: true });
  });

  it('a success on one account does not wipe the same address\'s failures against another', () => {
    const { throttle } = setup({ blockAfterFailures: 100 });
    for (let i = 0; i < 3; i++) throttle.failed(ATTACKER, 'victim', `guess-${i}`);
    throttle.succeeded(ATTACKER, 'attackers-own');
    expect(throttle.failed(ATTACKER, 'victim', 'guess-4').delayMs).toBe(15_000);
  });

  it('the same wrong password repeated is not penalised again', () => {
    const { throttle } = setup({ blockAfterFailures: 3 });
    const first = throttle.failed(OWNER, 'alice', 'stale-saved-password');
    const repeats = Array.from({ length: 20 }, () => throttle.failed(OWNER, 'alice', 'stale-saved-password'));
    expect(first).toEqual({ delayMs: 2000, cleanRecord: true });
    // No growth, no block, and the record stays "clean" (the primary-password hint keeps showing).
    for (const r of repeats) expect(r).toEqual({ delayMs: 2000, cleanRecord: true });
    expect(throttle.before(OWNER, 'alice').blocked).toBe(false);
    // A different wrong password is counted.
    expect(throttle.failed(OWNER, 'alice', 'another-guess')).toEqual({ delayMs: 4000, cleanRecord: false });
  });

  it('the same password for another login, or from another address, is a new failure', () => {
    const { throttle } = setup();
    throttle.failed(OWNER, 'alice', 'same-words');
    expect(throttle.failed(OWNER, 'bob', 'same-words').delayMs).toBe(4000);
    expect(throttle.failed(ATTACKER, 'alice', 'same-words').cleanRecord).toBe(false);
  });

  it('blocks an address past the limit, then lifts the block after blockMs', () => {
    const { clock, throttle } = setup({ blockAfterFailures: 5, blockMs: 60_000, windowMs: 30_000 });
    for (let i = 0; i < 4; i++) throttle.failed(ATTACKER, `user${i}`, `guess-${i}`);
    expect(throttle.before(ATTACKER, 'someone').blocked).toBe(false);
    throttle.failed(ATTACKER, 'user4', 'guess-4');
    expect(throttle.before(ATTACKER, 'someone').blocked).toBe(true);
    // While blocked, further failures are not counted and get the longest delay.
    expect(throttle.failed(ATTACKER, 'someone', 'guess-x')).toEqual({ delayMs: 15_000, cleanRecord: false });
    clock.now += 59_999;
    expect(throttle.before(ATTACKER, 'someone').blocked).toBe(true);
    clock.now += 1;
    expect(throttle.before(ATTACKER, 'someone')).toEqual({ blocked: false, delayMs: 0 });
    expect(throttle.before(OWNER, 'someone').blocked).toBe(false);
  });

  it('a clean address still gets in while the account is attacked; the attackers are blocked', () => {
    const { throttle } = setup({ blockAfterFailures: 5 });
    const attackers = Array.from({ length: 8 }, (_, i) => `198.51.100.${i + 1}`);
    for (const [i, ip] of attackers.entries()) throttle.failed(ip, 'alice', `guess-${i}`);
    // Each attacker made one failure only, yet the account's count blocks them from trying again.
    for (const ip of attackers) expect(throttle.before(ip, 'alice').blocked).toBe(true);
    // ... but not against other accounts, and never a clean address.
    expect(throttle.before(attackers[0]!, 'bob').blocked).toBe(false);
    expect(throttle.before(OWNER, 'alice')).toEqual({ blocked: false, delayMs: 0 });
    // The account's failures do delay a failure answer to the owner, and the record is not clean.
    expect(throttle.failed(OWNER, 'alice', 'owner-typo')).toEqual({ delayMs: 15_000, cleanRecord: false });
  });

  it('exempts trusted networks and still reports whether the account is clean', () => {
    const { throttle } = setup({ blockAfterFailures: 2, trustedNetworks: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.1'] });
    for (let i = 0; i < 10; i++) {
      expect(throttle.failed('10.1.2.3', 'monitor', `probe-${i}`)).toEqual({ delayMs: 0, cleanRecord: true });
      expect(throttle.before('10.1.2.3', 'monitor')).toEqual({ blocked: false, delayMs: 0 });
    }
    expect(throttle.failed('2001:db8:1::5', 'monitor', 'x').delayMs).toBe(0);
    expect(throttle.failed('::ffff:192.0.2.1', 'monitor', 'x').delayMs).toBe(0);
    expect(throttle.size).toEqual({ addresses: 0, accounts: 0 });
    throttle.failed(ATTACKER, 'monitor', 'guess');
    expect(throttle.failed('10.1.2.3', 'monitor', 'probe').cleanRecord).toBe(false);
  });

  it('counts IPv6 per /64 and IPv4-mapped IPv6 as IPv4', () => {
    const { throttle } = setup();
    throttle.failed('2001:db8:aa:bb::1', 'alice', 'guess-1');
    expect(throttle.failed('2001:db8:aa:bb:ffff:1:2:3', 'alice', 'guess-2').delayMs).toBe(4000);
    expect(throttle.before('2001:db8:aa:bc::1', 'bob').delayMs).toBe(0);
    throttle.failed('203.0.113.99', 'carol', 'guess-1');
    expect(throttle.before('::ffff:203.0.113.99', 'carol').delayMs).toBe(2000);
  });

  it('keeps memory bounded under a spray of addresses and logins, expiring old records', () => {
    const { clock, throttle } = setup({ maxRecords: 500 });
    for (let i = 0; i < 5000; i++) throttle.failed(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, `user${i}`, 'pw');
    expect(throttle.size).toEqual({ addresses: 500, accounts: 500 });
    clock.now += DEFAULTS.windowMs + 1;
    for (let i = 0; i < 200; i++) throttle.failed(OWNER, 'alice', `typo-${i % 3}`);
    expect(throttle.size.addresses).toBeLessThan(10);
    expect(throttle.size.accounts).toBeLessThan(10);
  });

  it('never keeps the password itself', () => {
    const { throttle } = setup();
    throttle.failed(OWNER, 'alice', 'very-distinctive-secret');
    const seen = new Set<unknown>();
    const dump = JSON.stringify(throttle, (_k, v: unknown) => {
      if (v instanceof Map) return [...v.entries()];
      if (typeof v === 'object' && v !== null) {
        if (seen.has(v)) return undefined;
        seen.add(v);
      }
      return v;
    });
    expect(dump).toContain('alice');
    expect(dump).not.toContain('very-distinctive-secret');
  });
});

describe('client addresses', () => {
  it('normalises keys', () => {
    expect(plainAddress('::ffff:192.0.2.5')).toBe('192.0.2.5');
    expect(plainAddress('fe80::1%eth0')).toBe('fe80::1');
    expect(throttleKey('2001:DB8::1')).toBe('2001:db8:0:0::/64');
    expect(throttleKey('::1')).toBe('0:0:0:0::/64');
    expect(throttleKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(throttleKey('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(throttleKey('192.0.2.1')).toBe('192.0.2.1');
  });

  it('rejects a malformed trusted network with its config path', () => {
    for (const bad of ['10.0.0.0/33', 'example.org', '10.0.0.0/8/1', '::1/129', '10.0.0.0/x', '']) {
      let caught: unknown;
      try {
        parseTrustedNetworks(['127.0.0.1', bad]);
      } catch (err) {
        caught = err;
      }
      expect(isPosternError(caught, 'CONFIG_INVALID'), bad).toBe(true);
      expect((caught as Error).message).toContain('auth.trustedNetworks.1');
    }
  });

  it('matches addresses inside trusted networks only', () => {
    const trusted = parseTrustedNetworks(['10.0.0.0/8', '2001:db8::/32', '127.0.0.1']);
    expect(trusted.has('10.255.0.1')).toBe(true);
    expect(trusted.has('::ffff:10.1.1.1')).toBe(true);
    expect(trusted.has('11.0.0.1')).toBe(false);
    expect(trusted.has('2001:db8:ffff::1')).toBe(true);
    expect(trusted.has('2001:db9::1')).toBe(false);
    expect(trusted.has('127.0.0.1')).toBe(true);
    expect(trusted.has('127.0.0.2')).toBe(false);
    expect(trusted.has('not-an-ip')).toBe(false);
  });
});
