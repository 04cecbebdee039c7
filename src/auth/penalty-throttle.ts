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
 * - Trusted networks are exempt.
 *
 * Memory (issue 9, item 3): records sit in two tiers (throttle-pools.ts). Whatever concerns a
 * real account (`known`, from the service's account lookup) is kept apart from what concerns
 * names that do not exist, so a flood of made-up names cannot push a real account's failures out
 * of memory and restart its "clean record". An address that is blocked adds nothing at all: no
 * record is created or reordered for it. Caps, and costs measured by bench/throttle-memory.ts
 * (V8 heap, Node 20, 64-character logins, every list full: ~2.2 KB a record, whatever its kind):
 * - address records: two tiers of `maxRecords` (addresses that have failed against a real
 *   account; the others);
 * - records of names that are not accounts: `maxRecords`;
 * - real accounts' records: at most one per account (accounts are finite and made by an admin),
 *   never evicted by size, only expired.
 * At the default 20,000 the worst flood holds ~124 MiB (every tier full), plus ~2 KB per account.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { ThrottleConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import { parseTrustedNetworks, throttleKey, type TrustedNetworks } from './client-address.js';
import type { Throttle, ThrottleGate, ThrottleVerdict } from './throttle.js';
import { TieredPool } from './throttle-pools.js';

export const DEFAULT_MAX_RECORDS = 20_000;
/** Distinct wrong passwords remembered per address (for the repeat rule). */
const REMEMBERED_PASSWORDS = 8;
/** Expired records dropped per failure and tier: the sweep keeps pace with any flood that adds them. */
const EXPIRE_PER_CALL = 4;

export interface PenaltyThrottleOptions extends Omit<ThrottleConfig, 'maxRecords'> {
  trustedNetworks?: readonly string[];
  clock?: () => number;
  /** Cap on each evictable tier: known and unknown address records, unknown-name records. */
  maxRecords?: number;
  log?: Logger;
  /** Called for every block (the metrics' throttle-block count). */
  onBlock?: () => void;
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
  private readonly addresses: TieredPool<AddressRecord>;
  private readonly accounts: TieredPool<AccountRecord>;
  private readonly trusted: TrustedNetworks;
  private readonly clock: () => number;
  private readonly digestKey = randomBytes(32);

  constructor(private readonly options: PenaltyThrottleOptions) {
    this.trusted = parseTrustedNetworks(options.trustedNetworks ?? []);
    this.clock = options.clock ?? Date.now;
    const cap = options.maxRecords ?? DEFAULT_MAX_RECORDS;
    this.addresses = new TieredPool({ known: cap, unknown: cap });
    this.accounts = new TieredPool({ known: Infinity, unknown: cap });
  }

  before(clientAddress: string, login: string): ThrottleGate {
    if (this.trusted.has(clientAddress)) return { blocked: false, delayMs: 0 };
    const now = this.clock();
    const key = throttleKey(clientAddress);
    const address = this.address(key, now);
    if (this.isBlocked(key, address, login, now)) return { blocked: true, delayMs: 0 };
    return { blocked: false, delayMs: address ? Math.max(0, address.penaltyUntil - now) : 0 };
  }

  failed(clientAddress: string, login: string, password: string, known: boolean): ThrottleVerdict {
    const now = this.clock();
    this.addresses.expire(now, this.horizon(), EXPIRE_PER_CALL);
    this.accounts.expire(now, this.horizon(), EXPIRE_PER_CALL);
    if (this.trusted.has(clientAddress)) return { delayMs: 0, cleanRecord: this.accountCount(login, now) === 0 };
    const key = throttleKey(clientAddress);
    const existing = this.address(key, now);
    // Blocked: not counted, and nothing stored or reordered, so its flood can push nothing out.
    if (this.isBlocked(key, existing, login, now)) return { delayMs: this.options.maxDelayMs, cleanRecord: false };
    const address = existing ?? { failures: [], wrongPasswords: [], blockedUntil: 0, penaltyUntil: 0, touched: now };
    address.touched = now;
    this.addresses.touch(key, address, known);
    const account = this.account(login, now) ?? { failures: [], touched: now };
    account.touched = now;
    this.accounts.touch(login, account, known);
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

  /** Record counts per tier, for tests and metrics. */
  get size(): { addresses: { known: number; unknown: number }; accounts: { known: number; unknown: number } } {
    return { addresses: this.addresses.size, accounts: this.accounts.size };
  }

  /**
   * Blocked: the address itself, or an account with a full window of failures against an address
   * that took part in them. The account's own list names its last failing addresses, so the block
   * holds for them even once their address records are gone.
   */
  private isBlocked(key: string, address: AddressRecord | undefined, login: string, now: number): boolean {
    if (address && address.blockedUntil > now) return true;
    if (this.accountCount(login, now) < this.options.blockAfterFailures) return false;
    const account = this.accounts.get(login)!;
    return account.failures.some((f) => f.address === key) || (address?.failures.some((f) => f.login === login) ?? false);
  }

  private block(key: string, address: AddressRecord, now: number): void {
    address.blockedUntil = now + this.options.blockMs;
    this.options.onBlock?.();
    this.options.log?.warn({ event: 'auth.blocked', ip: key, failures: address.failures.length, blockMs: this.options.blockMs },
      `blocking ip=${key} for ${Math.round(this.options.blockMs / 1000)} s after ${address.failures.length} failed logins`);
  }

  private delayFor(failures: number): number {
    return penaltyDelay(failures, this.options);
  }

  private accountCount(login: string, now: number): number {
    return this.account(login, now)?.failures.length ?? 0;
  }

  private horizon(): number {
    return Math.max(this.options.windowMs, this.options.blockMs);
  }

  private passwordDigest(login: string, password: string): string {
    return createHmac('sha256', this.digestKey).update(login).update('\0').update(password).digest('base64');
  }

  /** The address's record with failures outside the window dropped, if it has one. */
  private address(key: string, now: number): AddressRecord | undefined {
    const record = this.addresses.get(key);
    if (!record) return undefined;
    const since = now - this.options.windowMs;
    if (record.failures[0] && record.failures[0].at <= since) record.failures = record.failures.filter((f) => f.at > since);
    if (record.wrongPasswords[0] && record.wrongPasswords[0].at <= since) record.wrongPasswords = record.wrongPasswords.filter((w) => w.at > since);
    return record;
  }

  private account(login: string, now: number): AccountRecord | undefined {
    const record = this.accounts.get(login);
    if (!record) return undefined;
    const since = now - this.options.windowMs;
    if (record.failures[0] && record.failures[0].at <= since) record.failures = record.failures.filter((f) => f.at > since);
    return record;
  }
}

/** base × 2^(n−1), capped; no failures, no delay. */
export function penaltyDelay(failures: number, options: { baseDelayMs: number; maxDelayMs: number }): number {
  if (failures <= 0) return 0;
  return Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.min(failures - 1, 30));
}

function pushCapped<T>(list: T[], item: T, cap: number): void {
  list.push(item);
  if (list.length > cap) list.splice(0, list.length - cap);
}
