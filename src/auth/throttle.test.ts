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
import { plainAddress, parseTrustedNetworks, throttleKey } from './client-address.js';
import { PenaltyThrottle, type PenaltyThrottleOptions } from './penalty-throttle.js';
import { isPosternError } from '../errors.js';

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
    const delays = Array.from({ length: 6 }, (_, i) => throttle.failed(ATTACKER, 'alice', `guess-${i}`, true).delayMs);
    expect(delays).toEqual([2000, 4000, 8000, 15_000, 15_000, 15_000]);
  });

  it('holds the next attempt for the rest of the penalty, which lifts after its time', () => {
    const { clock, throttle } = setup();
    throttle.failed(ATTACKER, 'alice', 'guess-1', true);
    throttle.failed(ATTACKER, 'alice', 'guess-2', true);
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
    for (let i = 0; i < 3; i++) throttle.failed(ATTACKER, 'alice', `guess-${i}`, true);
    clock.now += DEFAULTS.windowMs + 1;
    expect(throttle.failed(ATTACKER, 'alice', 'guess-late', true)).toEqual({ delayMs: 2000, cleanRecord: true });
  });

  it('a success resets the address record for that login', () => {
    const { throttle } = setup();
    throttle.failed(OWNER, 'alice', 'typo-1', true);
    throttle.failed(OWNER, 'alice', 'typo-2', true);
    throttle.succeeded(OWNER, 'alice');
    expect(throttle.before(OWNER, 'alice')).toEqual({ blocked: false, delayMs: 0 });
    expect(throttle.failed(OWNER, 'alice', 'typo-3', true)).toEqual({ delayMs: 2000, cleanRecord: true });
  });

  it('a success on one account does not wipe the same address\'s failures against another', () => {
    const { throttle } = setup({ blockAfterFailures: 100 });
    for (let i = 0; i < 3; i++) throttle.failed(ATTACKER, 'victim', `guess-${i}`, true);
    throttle.succeeded(ATTACKER, 'attackers-own');
    expect(throttle.failed(ATTACKER, 'victim', 'guess-4', true).delayMs).toBe(15_000);
  });

  it('the same wrong password repeated is not penalised again', () => {
    const { throttle } = setup({ blockAfterFailures: 3 });
    const first = throttle.failed(OWNER, 'alice', 'stale-saved-password', true);
    const repeats = Array.from({ length: 20 }, () => throttle.failed(OWNER, 'alice', 'stale-saved-password', true));
    expect(first).toEqual({ delayMs: 2000, cleanRecord: true });
    // No growth, no block, and the record stays "clean" (the primary-password hint keeps showing).
    for (const r of repeats) expect(r).toEqual({ delayMs: 2000, cleanRecord: true });
    expect(throttle.before(OWNER, 'alice').blocked).toBe(false);
    // A different wrong password is counted.
    expect(throttle.failed(OWNER, 'alice', 'another-guess', true)).toEqual({ delayMs: 4000, cleanRecord: false });
  });

  it('the same password for another login, or from another address, is a new failure', () => {
    const { throttle } = setup();
    throttle.failed(OWNER, 'alice', 'same-words', true);
    expect(throttle.failed(OWNER, 'bob', 'same-words', true).delayMs).toBe(4000);
    expect(throttle.failed(ATTACKER, 'alice', 'same-words', true).cleanRecord).toBe(false);
  });

  it('blocks an address past the limit, then lifts the block after blockMs', () => {
    const { clock, throttle } = setup({ blockAfterFailures: 5, blockMs: 60_000, windowMs: 30_000 });
    for (let i = 0; i < 4; i++) throttle.failed(ATTACKER, `user${i}`, `guess-${i}`, true);
    expect(throttle.before(ATTACKER, 'someone').blocked).toBe(false);
    throttle.failed(ATTACKER, 'user4', 'guess-4', true);
    expect(throttle.before(ATTACKER, 'someone').blocked).toBe(true);
    // While blocked, further failures are not counted and get the longest delay.
    expect(throttle.failed(ATTACKER, 'someone', 'guess-x', true)).toEqual({ delayMs: 15_000, cleanRecord: false });
    clock.now += 59_999;
    expect(throttle.before(ATTACKER, 'someone').blocked).toBe(true);
    clock.now += 1;
    expect(throttle.before(ATTACKER, 'someone')).toEqual({ blocked: false, delayMs: 0 });
    expect(throttle.before(OWNER, 'someone').blocked).toBe(false);
  });

  it('a clean address still gets in while the account is attacked; the attackers are blocked', () => {
    const { throttle } = setup({ blockAfterFailures: 5 });
    const attackers = Array.from({ length: 8 }, (_, i) => `198.51.100.${i + 1}`);
    for (const [i, ip] of attackers.entries()) throttle.failed(ip, 'alice', `guess-${i}`, true);
    // Each attacker made one failure only, yet the account's count blocks them from trying again.
    for (const ip of attackers) expect(throttle.before(ip, 'alice').blocked).toBe(true);
    // ... but not against other accounts, and never a clean address.
    expect(throttle.before(attackers[0]!, 'bob').blocked).toBe(false);
    expect(throttle.before(OWNER, 'alice')).toEqual({ blocked: false, delayMs: 0 });
    // The account's failures do delay a failure answer to the owner, and the record is not clean.
    expect(throttle.failed(OWNER, 'alice', 'owner-typo', true)).toEqual({ delayMs: 15_000, cleanRecord: false });
  });

  it('exempts trusted networks and still reports whether the account is clean', () => {
    const { throttle } = setup({ blockAfterFailures: 2, trustedNetworks: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.1'] });
    for (let i = 0; i < 10; i++) {
      expect(throttle.failed('10.1.2.3', 'monitor', `probe-${i}`, true)).toEqual({ delayMs: 0, cleanRecord: true });
      expect(throttle.before('10.1.2.3', 'monitor')).toEqual({ blocked: false, delayMs: 0 });
    }
    expect(throttle.failed('2001:db8:1::5', 'monitor', 'x', true).delayMs).toBe(0);
    expect(throttle.failed('::ffff:192.0.2.1', 'monitor', 'x', true).delayMs).toBe(0);
    expect(throttle.size).toEqual({ addresses: { known: 0, unknown: 0 }, accounts: { known: 0, unknown: 0 } });
    throttle.failed(ATTACKER, 'monitor', 'guess', true);
    expect(throttle.failed('10.1.2.3', 'monitor', 'probe', true).cleanRecord).toBe(false);
  });

  it('counts IPv6 per /64 and IPv4-mapped IPv6 as IPv4', () => {
    const { throttle } = setup();
    throttle.failed('2001:db8:aa:bb::1', 'alice', 'guess-1', true);
    expect(throttle.failed('2001:db8:aa:bb:ffff:1:2:3', 'alice', 'guess-2', true).delayMs).toBe(4000);
    expect(throttle.before('2001:db8:aa:bc::1', 'bob').delayMs).toBe(0);
    throttle.failed('203.0.113.99', 'carol', 'guess-1', true);
    expect(throttle.before('::ffff:203.0.113.99', 'carol').delayMs).toBe(2000);
  });

  it('keeps memory bounded under a spray of addresses and logins, expiring old records', () => {
    const { clock, throttle } = setup({ maxRecords: 500 });
    for (let i = 0; i < 5000; i++) throttle.failed(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, `user${i}`, 'pw', false);
    expect(throttle.size).toEqual({ addresses: { known: 0, unknown: 500 }, accounts: { known: 0, unknown: 500 } });
    clock.now += DEFAULTS.windowMs + 1;
    for (let i = 0; i < 200; i++) throttle.failed(OWNER, 'alice', `typo-${i % 3}`, true);
    const { addresses, accounts } = throttle.size;
    expect(addresses.known + addresses.unknown).toBeLessThan(10);
    expect(accounts.known + accounts.unknown).toBeLessThan(10);
  });

  it('stays within its caps under any mix of flood: made-up names, real accounts, blocked and fresh addresses', () => {
    const cap = 300;
    const { throttle } = setup({ maxRecords: cap, blockAfterFailures: 3 });
    const realAccounts = ['alice', 'bob', 'carol'];
    for (let i = 0; i < 20_000; i++) {
      const fresh = `2001:db8:${(i >> 8).toString(16)}:${(i & 255).toString(16)}::${i % 7}`;
      const real = realAccounts[i % 3]!;
      throttle.failed(fresh, `nobody-${i}`, `guess-${i}`, false);
      throttle.failed(fresh, real, `guess-${i}`, true);
      throttle.failed(`198.51.100.${i % 4}`, `sprayed-${i}`, 'x', false); // four addresses, blocked after their first few
    }
    const { addresses, accounts } = throttle.size;
    expect(addresses.known).toBeLessThanOrEqual(cap);
    expect(addresses.unknown).toBeLessThanOrEqual(cap);
    expect(accounts.unknown).toBeLessThanOrEqual(cap);
    expect(accounts.known).toBe(realAccounts.length); // bounded by the number of accounts
  });

  it('throttle flush attack: 25,000 made-up names from as many IPv6 /64s leave a real account\'s block and dirty record in place', () => {
    const { throttle } = setup(); // the default cap of 20,000 records per tier
    const fresh = (i: number) => `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`;
    const guessers = Array.from({ length: DEFAULTS.blockAfterFailures }, (_, i) => fresh(900_000 + i));
    // One primary-password guess per fresh /64: the first gets the clean record (and the sentence), the rest do not.
    const verdicts = guessers.map((ip, i) => throttle.failed(ip, 'alice', `primary-guess-${i}`, true));
    expect(verdicts.map((v) => v.cleanRecord)).toEqual([true, ...new Array<boolean>(guessers.length - 1).fill(false)]);
    for (const ip of guessers) expect(throttle.before(ip, 'alice').blocked).toBe(true);

    for (let i = 0; i < 25_000; i++) throttle.failed(fresh(i), `made-up-${i}`, 'flush', false);

    // A fresh /64 still finds alice's record dirty: no primary-password sentence for its guess.
    expect(throttle.failed(fresh(950_000), 'alice', 'primary-guess-next', true).cleanRecord).toBe(false);
    // The guessers are still blocked against alice.
    for (const ip of guessers) expect(throttle.before(ip, 'alice').blocked).toBe(true);
    expect(throttle.size.accounts.known).toBe(1);
  });

  it('throttle flush attack: made-up names cannot evict the record of an address that has been guessing at a real account', () => {
    const { throttle } = setup();
    for (let i = 0; i < 3; i++) throttle.failed(ATTACKER, 'alice', `guess-${i}`, true);
    for (let i = 0; i < 25_000; i++) throttle.failed(`2001:db8:${(i >> 8).toString(16)}:${(i & 255).toString(16)}::1`, `made-up-${i}`, 'flush', false);
    // The fourth guess is penalised as a fourth (15 s), not as a first (2 s).
    expect(throttle.before(ATTACKER, 'alice').delayMs).toBeGreaterThan(0);
    expect(throttle.failed(ATTACKER, 'alice', 'guess-3', true).delayMs).toBe(15_000);
  });

  it('throttle flush attack: a blocked address spraying names adds no records and evicts none', () => {
    const { throttle } = setup({ maxRecords: 500, blockAfterFailures: 3 });
    throttle.failed(OWNER, 'alice', 'owner-typo', true);
    for (let i = 0; i < 3; i++) throttle.failed(ATTACKER, `user${i}`, `guess-${i}`, false);
    expect(throttle.before(ATTACKER, 'anyone').blocked).toBe(true);
    const before = throttle.size;
    for (let i = 0; i < 5000; i++) throttle.failed(ATTACKER, `sprayed-${i}`, 'x', i % 2 === 0);
    expect(throttle.size).toEqual(before);
    expect(throttle.failed('192.0.2.99', 'alice', 'another', true).cleanRecord).toBe(false);
  });

  it('never keeps the password itself', () => {
    const { throttle } = setup();
    throttle.failed(OWNER, 'alice', 'very-distinctive-secret', true);
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
    expect(throttleKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(throttleKey('::ffff:10.0.0.1%eth0')).toBe('10.0.0.1');
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
