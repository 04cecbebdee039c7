/**
 * The brute-force throttle, in the style of Dovecot's auth penalty, with the holes of that design
 * closed where it costs a legitimate user nothing:
 *
 * - Each counted failure from an address (IPv6: its /64) and against an account adds a growing
 *   delay: base, 2×base, 4×base… capped. The failure answer is held that long, and the address's
 *   next attempt is held until the penalty has run out (an attacker who hangs up early and
 *   reconnects gains nothing). Failures older than `windowMs` no longer count.
 * - `blockAfterFailures` counted failures from an address inside the window block it for `blockMs`:
 *   refused without a check. The account's own count blocks only addresses that have failed
 *   against it themselves, so a correct app password from a clean address still works while the
 *   account is attacked from elsewhere (an attacker must not be able to lock the owner out).
 * - The same wrong password from the same address for the same login (a client with a stale saved
 *   password reconnecting every few minutes) is not counted again. Only a keyed digest of it is
 *   kept, under a per-process random key, in memory: nothing an attacker could use offline.
 * - A success clears that address's failures against that login and the account's failures from
 *   that address. Only those: an attacker with an account of their own must not be able to wipe
 *   their record for other accounts by logging in to theirs between guesses.
 * - Trusted networks are exempt. Memory is bounded: records expire, and the oldest go past a cap.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { ThrottleConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import { parseTrustedNetworks, throttleKey, type TrustedNetworks } from './client-address.js';
import type { Throttle, ThrottleGate, ThrottleVerdict } from './throttle.js';

export const DEFAULT_MAX_RECORDS = 20_000;
/** Distinct wrong passwords remembered per address (for the repeat rule). */
const REMEMBERED_PASSWORDS = 8;

export interface PenaltyThrottleOptions extends ThrottleConfig {
  trustedNetworks?: readonly string[];
  clock?: () => number;
  /** Cap on address records and (separately) on account records. */
  maxRecords?: number;
  log?: Logger;
}

interface AddressRecord {
  failures: Array<{ at: number; login: string }>;
  wrongPasswords: Array<{ digest: string; login: string; at: number }>;
  blockedUntil: number;
  /** The address's next attempt is held until then. */
  penaltyUntil: number;
  touched: number;
}

interface AccountRecord {
  failures: Array<{ at: number; address: string }>;
  touched: number;
}

export class PenaltyThrottle implements Throttle {
  private readonly addresses = new Map<string, AddressRecord>();
  private readonly accounts = new Map<string, AccountRecord>();
  private readonly trusted: TrustedNetworks;
  private readonly clock: () => number;
  private readonly maxRecords: number;
  private readonly digestKey = randomBytes(32);

  constructor(private readonly options: PenaltyThrottleOptions) {
    this.trusted = parseTrustedNetworks(options.trustedNetworks ?? []);
    this.clock = options.clock ?? Date.now;
    this.maxRecords = options.maxRecords ?? DEFAULT_MAX_RECORDS;
  }

  before(clientAddress: string, login: string): ThrottleGate {
    if (this.trusted.has(clientAddress)) return { blocked: false, delayMs: 0 };
    const now = this.clock();
    const address = this.addresses.get(throttleKey(clientAddress));
    if (!address) return { blocked: false, delayMs: 0 };
    this.prune(address, now);
    if (this.isBlocked(address, login, now)) return { blocked: true, delayMs: 0 };
    return { blocked: false, delayMs: Math.max(0, address.penaltyUntil - now) };
  }

  failed(clientAddress: string, login: string, password: string): ThrottleVerdict {
    const now = this.clock();
    this.expireOldest(now);
    if (this.trusted.has(clientAddress)) return { delayMs: 0, cleanRecord: this.accountCount(login, now) === 0 };
    const key = throttleKey(clientAddress);
    const address = this.touchAddress(key, now);
    const account = this.touchAccount(login, now);
    if (this.isBlocked(address, login, now)) return { delayMs: this.options.maxDelayMs, cleanRecord: false };
    const addressBefore = address.failures.length;
    const accountBefore = account.failures.length;
    const digest = this.passwordDigest(login, password);
    if (address.wrongPasswords.some((w) => w.digest === digest)) {
      // Not penalised again; still "clean" if this very password is the only failure on record.
      const delayMs = Math.max(this.delayFor(addressBefore), this.delayFor(accountBefore));
      return { delayMs, cleanRecord: addressBefore <= 1 && accountBefore <= 1 };
    }
    pushCapped(address.failures, { at: now, login }, this.options.blockAfterFailures);
    pushCapped(address.wrongPasswords, { digest, login, at: now }, REMEMBERED_PASSWORDS);
    pushCapped(account.failures, { at: now, address: key }, this.options.blockAfterFailures);
    const addressDelay = this.delayFor(address.failures.length);
    address.penaltyUntil = now + addressDelay;
    if (address.failures.length >= this.options.blockAfterFailures) this.block(key, address, now);
    return {
      delayMs: Math.max(addressDelay, this.delayFor(account.failures.length)),
      cleanRecord: addressBefore === 0 && accountBefore === 0,
    };
  }

  succeeded(clientAddress: string, login: string): void {
    if (this.trusted.has(clientAddress)) return;
    const key = throttleKey(clientAddress);
    const address = this.addresses.get(key);
    if (address) {
      address.failures = address.failures.filter((f) => f.login !== login);
      address.wrongPasswords = address.wrongPasswords.filter((w) => w.login !== login);
      if (address.failures.length === 0) address.penaltyUntil = 0;
      if (address.failures.length === 0 && address.wrongPasswords.length === 0 && address.blockedUntil <= this.clock()) this.addresses.delete(key);
    }
    const account = this.accounts.get(login);
    if (account) {
      account.failures = account.failures.filter((f) => f.address !== key);
      if (account.failures.length === 0) this.accounts.delete(login);
    }
  }

  /** Record counts, for tests and metrics. */
  get size(): { addresses: number; accounts: number } {
    return { addresses: this.addresses.size, accounts: this.accounts.size };
  }

  private isBlocked(address: AddressRecord, login: string, now: number): boolean {
    if (address.blockedUntil > now) return true;
    const triedThisAccount = address.failures.some((f) => f.login === login);
    return triedThisAccount && this.accountCount(login, now) >= this.options.blockAfterFailures;
  }

  private block(key: string, address: AddressRecord, now: number): void {
    address.blockedUntil = now + this.options.blockMs;
    this.options.log?.warn({ event: 'auth.blocked', ip: key, failures: address.failures.length, blockMs: this.options.blockMs },
      `blocking ip=${key} for ${Math.round(this.options.blockMs / 1000)} s after ${address.failures.length} failed logins`);
  }

  /** base × 2^(n−1), capped; no failures, no delay. */
  private delayFor(failures: number): number {
    if (failures <= 0) return 0;
    const { baseDelayMs, maxDelayMs } = this.options;
    return Math.min(maxDelayMs, baseDelayMs * 2 ** Math.min(failures - 1, 30));
  }

  private accountCount(login: string, now: number): number {
    const account = this.accounts.get(login);
    if (!account) return 0;
    this.pruneAccount(account, now);
    return account.failures.length;
  }

  private passwordDigest(login: string, password: string): string {
    return createHmac('sha256', this.digestKey).update(login).update('\0').update(password).digest('base64');
  }

  private touchAddress(key: string, now: number): AddressRecord {
    const record = this.addresses.get(key) ?? { failures: [], wrongPasswords: [], blockedUntil: 0, penaltyUntil: 0, touched: now };
    this.prune(record, now);
    record.touched = now;
    touch(this.addresses, key, record, this.maxRecords);
    return record;
  }

  private touchAccount(login: string, now: number): AccountRecord {
    const record = this.accounts.get(login) ?? { failures: [], touched: now };
    this.pruneAccount(record, now);
    record.touched = now;
    touch(this.accounts, login, record, this.maxRecords);
    return record;
  }

  private prune(record: AddressRecord, now: number): void {
    const since = now - this.options.windowMs;
    if (record.failures[0] && record.failures[0].at <= since) record.failures = record.failures.filter((f) => f.at > since);
    if (record.wrongPasswords[0] && record.wrongPasswords[0].at <= since) record.wrongPasswords = record.wrongPasswords.filter((w) => w.at > since);
  }

  private pruneAccount(record: AccountRecord, now: number): void {
    const since = now - this.options.windowMs;
    if (record.failures[0] && record.failures[0].at <= since) record.failures = record.failures.filter((f) => f.at > since);
  }

  /** Maps are in least-recently-touched order: drop expired records from the front, a few per call. */
  private expireOldest(now: number): void {
    const horizon = Math.max(this.options.windowMs, this.options.blockMs);
    for (const map of [this.addresses, this.accounts] as Array<Map<string, { touched: number; blockedUntil?: number }>>) {
      for (let i = 0; i < 4; i++) {
        const first = map.entries().next();
        if (first.done) break;
        const [key, record] = first.value;
        if (record.touched + horizon > now || (record.blockedUntil ?? 0) > now) break;
        map.delete(key);
      }
    }
  }
}

function touch<T>(map: Map<string, T>, key: string, value: T, max: number): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > max) map.delete(map.keys().next().value!);
}

function pushCapped<T>(list: T[], item: T, cap: number): void {
  list.push(item);
  if (list.length > cap) list.splice(0, list.length - cap);
}
