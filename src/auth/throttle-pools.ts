/**
 * The throttle's record storage: two tiers, so that a flood can only push out records of its own kind.
 *
 * A single LRU of N records is flushed by N attempts with distinct names (issue 9, item 3): the
 * records that keep a real account's failures on file (its block, and the "clean record" the
 * primary-password sentence depends on) were evicted by guesses at names that do not exist. Here
 * a record lives in the `known` tier once it concerns a real account (the auth service knows: it
 * looks the account up on every failure) and in the `unknown` tier otherwise. Each tier is its own
 * LRU with its own cap, so attempts against unknown names only ever evict unknown-name records.
 * Promotion is one way: a record that once concerned a real account stays in `known` until it
 * expires.
 *
 * Maps iterate in insertion order; `touch` re-inserts, so the first entry is the least recently
 * touched: eviction and expiry both take from the front, O(1) per record.
 */
export interface Touchable {
  touched: number;
  /** Records under an active block are not expired (they may still be evicted past a cap). */
  blockedUntil?: number;
}

class LruPool<T extends Touchable> {
  readonly map = new Map<string, T>();
  constructor(private readonly cap: number) {}

  touch(key: string, record: T): void {
    this.map.delete(key);
    this.map.set(key, record);
    while (this.map.size > this.cap) this.map.delete(this.map.keys().next().value!);
  }

  /** Drops up to `max` expired records from the front; stops at the first live one. */
  expire(now: number, horizon: number, max: number): void {
    for (let i = 0; i < max; i++) {
      const first = this.map.entries().next();
      if (first.done) return;
      const [key, record] = first.value;
      if (record.touched + horizon > now || (record.blockedUntil ?? 0) > now) return;
      this.map.delete(key);
    }
  }
}

export class TieredPool<T extends Touchable> {
  private readonly known: LruPool<T>;
  private readonly unknown: LruPool<T>;

  /** `knownCap` may be Infinity where the known keys are finite by construction (account logins). */
  constructor(caps: { known: number; unknown: number }) {
    this.known = new LruPool(caps.known);
    this.unknown = new LruPool(caps.unknown);
  }

  get(key: string): T | undefined {
    return this.known.map.get(key) ?? this.unknown.map.get(key);
  }

  /** Marks the record most recently used, in the known tier if `known` or if it is there already. */
  touch(key: string, record: T, known: boolean): void {
    if (known || this.known.map.has(key)) {
      this.unknown.map.delete(key);
      this.known.touch(key, record);
    } else {
      this.unknown.touch(key, record);
    }
  }

  delete(key: string): void {
    this.known.map.delete(key);
    this.unknown.map.delete(key);
  }

  expire(now: number, horizon: number, maxPerTier: number): void {
    this.known.expire(now, horizon, maxPerTier);
    this.unknown.expire(now, horizon, maxPerTier);
  }

  get size(): { known: number; unknown: number } {
    return { known: this.known.map.size, unknown: this.unknown.map.size };
  }
}
