/**
 * The throttle's counts shared by every process serving from one database (issue 15: N workers;
 * issue 14: N instances), layered over the in-process PenaltyThrottle. Without it, an attacker
 * whose connections are spread over N workers by the round-robin accept gets N times the
 * failures before a block, and N times the shorter delays.
 *
 * The policy is PenaltyThrottle's, applied to counts in the database (src/store/throttle-counts.ts):
 * per address (IPv6: its /64) and per real account, with the account's count blocking only
 * addresses that failed against it, the same wrong password from the same address not counted
 * twice, and a success forgiving that address's failures against that account. The database is
 * the one record: the in-process throttle is kept informed but is heeded only while the counts
 * cannot be read, or lag behind this process's own queued records (a held write lock); always
 * heeding it would disagree as soon as a success on another worker forgave something. Unlike the in-process pools, nothing is evicted by a flood of made-up
 * names: their failures add to the address's count and one repeat digest each, pruned with
 * the window (src/store/throttle-prune.ts).
 *
 * Cost and discipline (issue 9, item 4): nothing waits for the write lock on the event loop. Each
 * attempt is one read on the reader connection (WAL: never waits for a writer), one statement of
 * indexed seeks; a counted failure is one record in the write queue, and its answer (held for the
 * penalty anyway) waits until the record is written, up to SHARED_WAIT_MS, so that the client's
 * next attempt, on whichever worker, sees it. A success writes only if it forgives something.
 *
 * The repeat rule needs a digest of the wrong password in the database: it is keyed under a
 * random key that lives only in memory (given by the primary to all its workers), so a copy of
 * the database is no help in guessing it, and every digest is gone within the window.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { ThrottleConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Async } from '../store/api.js';
import type { GateQuery, GateRead, ThrottleCountRepo, SharedRead } from '../store/throttle-counts.js';
import type { WriteQueue } from '../store/write-queue.js';
import { parseTrustedNetworks, throttleKey, type TrustedNetworks } from './client-address.js';
import { penaltyDelay } from './penalty-throttle.js';
import type { Throttle, ThrottleGate, ThrottleVerdict } from './throttle.js';

/** The longest a failure answer waits for its count to reach the database (it is written regardless). */
export const SHARED_WAIT_MS = 1_000;
const READ_WARNING_INTERVAL_MS = 60_000;

export interface SharedThrottleOptions extends Omit<ThrottleConfig, 'maxRecords'> {
  trustedNetworks?: readonly string[];
  /** Keys the wrong-password digests; the same in every process that shares the counts. */
  repeatKey?: Buffer;
  clock?: () => number;
  log?: Logger;
  /** Told about every block (the metrics' throttle-block counter). */
  onBlock?: () => void;
}

interface Keys {
  address: string;
  account: string;
  pair: string;
  wrongPrefix: string;
}

function stricter(shared: ThrottleVerdict, local: ThrottleVerdict): ThrottleVerdict {
  return { ...shared, delayMs: Math.max(shared.delayMs, local.delayMs), cleanRecord: shared.cleanRecord && local.cleanRecord };
}

/** Time slice of the counts: a window is read as its slices, so it is at most one slice too long. */
export function sliceMs(windowMs: number): number {
  return Math.max(1_000, Math.ceil(windowMs / 16));
}

export class SharedThrottle implements Throttle {
  private readonly trusted: TrustedNetworks;
  private readonly clock: () => number;
  private readonly repeatKey: Buffer;
  private readonly slice: number;
  private lastReadWarning = -Infinity;

  constructor(
    private readonly local: Throttle,
    private readonly counts: Async<ThrottleCountRepo>,
    private readonly writes: WriteQueue,
    private readonly options: SharedThrottleOptions,
  ) {
    this.trusted = parseTrustedNetworks(options.trustedNetworks ?? []);
    this.clock = options.clock ?? Date.now;
    this.repeatKey = options.repeatKey ?? randomBytes(32);
    this.slice = sliceMs(options.windowMs);
  }

  /** The gate's keys and window, for the login's own query: see Throttle.gateQuery. */
  gateQuery(clientAddress: string, login: string): GateQuery | null {
    if (this.trusted.has(clientAddress)) return null;
    const now = this.clock();
    const { address, account, pair } = this.keys(clientAddress, login);
    return { address, account, pair, sinceBucket: this.bucket(now - this.options.windowMs), now };
  }

  /** Not async: with the counts already read (the usual login), the gate costs no promise. */
  before(clientAddress: string, login: string, read?: GateRead): ThrottleGate | Promise<ThrottleGate> {
    if (this.trusted.has(clientAddress)) return this.local.before(clientAddress, login);
    if (read) return this.gate(read, clientAddress, login, this.clock());
    return this.readGate(clientAddress, login);
  }

  private async readGate(clientAddress: string, login: string): Promise<ThrottleGate> {
    const now = this.clock();
    const keys = this.keys(clientAddress, login);
    const shared = await this.read(keys, '', now);
    if (!shared) return this.local.before(clientAddress, login);
    const count = (key: string) => shared.counts.get(key);
    const read: GateRead = {
      addressFailures: count(keys.address)?.failures ?? 0, addressLastAt: count(keys.address)?.lastAt ?? 0,
      accountFailures: count(keys.account)?.failures ?? 0, pairFailures: count(keys.pair)?.failures ?? 0, blockedUntil: shared.blockedUntil,
    };
    return this.gate(read, clientAddress, login, now);
  }

  private gate(read: GateRead, clientAddress: string, login: string, now: number): ThrottleGate | Promise<ThrottleGate> {
    if (read.blockedUntil > now || (read.accountFailures >= this.options.blockAfterFailures && read.pairFailures > 0)) return { blocked: true, delayMs: 0 };
    const delayMs = read.addressFailures > 0 ? Math.max(0, read.addressLastAt + this.delay(read.addressFailures) - now) : 0;
    const gate = { blocked: false, delayMs, pairFailures: read.pairFailures };
    if (!this.behind()) return gate;
    return this.heedLocal(gate, clientAddress, login);
  }

  private async heedLocal(gate: ThrottleGate, clientAddress: string, login: string): Promise<ThrottleGate> {
    const local = await this.local.before(clientAddress, login);
    return local.blocked ? { blocked: true, delayMs: 0 } : { ...gate, delayMs: Math.max(gate.delayMs ?? 0, local.delayMs ?? 0) };
  }

  async failed(clientAddress: string, login: string, password: string, known: boolean): Promise<ThrottleVerdict> {
    // Always told, so that it is ready should the database become unreadable.
    const local = await this.local.failed(clientAddress, login, password, known);
    if (this.trusted.has(clientAddress)) return local;
    const now = this.clock();
    const keys = this.keys(clientAddress, login);
    const wrong = keys.wrongPrefix + createHmac('sha256', this.repeatKey).update(login).update('\0').update(password).digest('base64url');
    const shared = await this.read(keys, wrong, now);
    if (!shared) return local;
    if (this.blocked(shared, keys, now)) return { delayMs: this.options.maxDelayMs, cleanRecord: false };
    const addressBefore = shared.counts.get(keys.address)?.failures ?? 0;
    const accountBefore = known ? shared.counts.get(keys.account)?.failures ?? 0 : 0;
    const behind = this.behind();
    if (shared.counts.has(wrong)) {
      // A repeat (e.g. a stale saved password, maybe first tried on another worker): not counted again.
      const verdict = { delayMs: Math.max(this.delay(addressBefore), this.delay(accountBefore)), cleanRecord: addressBefore <= 1 && accountBefore <= 1 };
      return behind ? stricter(verdict, local) : verdict;
    }
    // A name that is no account gets no account count (made-up names must not block anyone), but
    // its pair count is kept: a later success of that login (the account page's self-enrolment
    // makes the account) takes exactly these failures back off the address's count.
    const counted = known ? [keys.address, keys.account, keys.pair, wrong] : [keys.address, keys.pair, wrong];
    const earnsBlock = addressBefore + 1 >= this.options.blockAfterFailures && this.options.blockMs > 0;
    this.writes.enqueue({
      kind: 'throttle-failure', keys: counted, bucket: this.bucket(now), at: now,
      block: earnsBlock ? { key: keys.address, until: now + this.options.blockMs } : undefined,
    });
    if (earnsBlock) this.logBlock(keys.address, addressBefore + 1);
    const verdict = {
      delayMs: Math.max(this.delay(addressBefore + 1), this.delay(accountBefore + 1)),
      cleanRecord: addressBefore === 0 && accountBefore === 0,
      shared: this.writes.flushed(),
    };
    return behind ? stricter(verdict, local) : verdict;
  }

  /**
   * Records of this process still wait in the write queue (the database is locked, or busy): the
   * shared counts lag behind what this process knows, so its own counts are heeded too.
   */
  private behind(): boolean {
    return this.writes.stats().queued > 0;
  }

  succeeded(clientAddress: string, login: string, gate?: ThrottleGate): void {
    this.local.succeeded(clientAddress, login, gate);
    if (this.trusted.has(clientAddress) || gate?.pairFailures === 0) return;
    const keys = this.keys(clientAddress, login);
    this.writes.enqueue({ kind: 'throttle-success', pair: keys.pair, address: keys.address, account: keys.account, wrongPrefix: keys.wrongPrefix });
  }

  /** The address's own block, or the account's full count against an address that took part in it. */
  private blocked(shared: SharedRead, keys: Keys, now: number): boolean {
    if (shared.blockedUntil > now) return true;
    const account = shared.counts.get(keys.account)?.failures ?? 0;
    return account >= this.options.blockAfterFailures && (shared.counts.get(keys.pair)?.failures ?? 0) > 0;
  }

  private async read(keys: Keys, wrong: string, now: number): Promise<SharedRead | null> {
    try {
      return await this.counts.read([keys.address, keys.account, keys.pair, wrong], this.bucket(now - this.options.windowMs), keys.address, now);
    } catch (err) {
      // The reader never waits for a lock; failing means the file is gone or broken. The in-process layer still holds.
      if (now - this.lastReadWarning >= READ_WARNING_INTERVAL_MS) {
        this.lastReadWarning = now;
        this.options.log?.warn({ event: 'auth.shared_throttle_unavailable', err: (err as Error).message }, 'the shared throttle counts could not be read; throttling with this process\'s counts only');
      }
      return null;
    }
  }

  /** Logins hold no whitespace or control characters, so `\n` separates the parts unambiguously. */
  private keys(clientAddress: string, login: string): Keys {
    const address = throttleKey(clientAddress);
    return { address: `a:${address}`, account: `l:${login}`, pair: `p:${address}\n${login}`, wrongPrefix: `w:${address}\n${login}\n` };
  }

  private bucket(at: number): number {
    return Math.floor(at / this.slice) * this.slice;
  }

  private delay(failures: number): number {
    return penaltyDelay(failures, this.options);
  }

  private logBlock(addressKey: string, failures: number): void {
    this.options.onBlock?.();
    const ip = addressKey.slice(2);
    this.options.log?.warn({ event: 'auth.blocked', ip, failures, blockMs: this.options.blockMs },
      `blocking ip=${ip} for ${Math.round(this.options.blockMs / 1000)} s after ${failures} failed logins`);
  }
}
