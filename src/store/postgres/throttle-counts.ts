/**
 * The throttle's shared counts on PostgreSQL: the statements of src/store/throttle-counts.ts. A
 * failure is one INSERT … ON CONFLICT DO UPDATE per key, which is atomic per row, so instances
 * counting the same key at once add up instead of overwriting each other; add() sends all keys of
 * one failure in a single statement (one round trip).
 */
import type { Async } from '../api.js';
import type { ReadKeys, SharedCount, SharedRead, ThrottleCountRepo } from '../throttle-counts.js';
import type { Queryable } from './queryable.js';

export class PgThrottleCountRepo implements Async<ThrottleCountRepo> {
  constructor(private readonly db: Queryable) {}

  async read(keys: ReadKeys, sinceBucket: number, blockKey: string, now: number): Promise<SharedRead> {
    const { rows } = await this.db.query<{ key: string; failures: number; lastAt: number }>(
      `SELECT key, SUM(failures)::bigint AS failures, MAX(last_at) AS "lastAt" FROM throttle_counts
        WHERE key IN ($1, $2, $3, $4) AND bucket >= $5 GROUP BY key
       UNION ALL
       SELECT '', 0, until FROM throttle_blocks WHERE key = $6 AND until > $7`,
      [...keys, sinceBucket, blockKey, now],
    );
    const counts = new Map<string, SharedCount>();
    let blockedUntil = 0;
    for (const row of rows) {
      if (row.key === '') blockedUntil = row.lastAt;
      else counts.set(row.key, { failures: row.failures, lastAt: row.lastAt });
    }
    return { counts, blockedUntil };
  }

  async add(keys: readonly string[], bucket: number, at: number): Promise<void> {
    if (keys.length === 0) return;
    // DISTINCT: ON CONFLICT cannot touch one row twice in a statement; SQLite's loop would count a
    // repeated key twice, which the callers never ask for (the four keys differ by their prefix).
    await this.db.query(
      `INSERT INTO throttle_counts AS t (key, bucket, failures, last_at)
         SELECT k, $2, 1, $3 FROM (SELECT DISTINCT unnest($1::text[]) AS k) AS ks
       ON CONFLICT (key, bucket) DO UPDATE SET failures = t.failures + 1, last_at = GREATEST(t.last_at, excluded.last_at)`,
      [keys, bucket, at],
    );
  }

  async block(key: string, until: number): Promise<void> {
    await this.db.query(
      `INSERT INTO throttle_blocks AS b (key, until) VALUES ($1, $2)
       ON CONFLICT (key) DO UPDATE SET until = GREATEST(b.until, excluded.until)`,
      [key, until],
    );
  }

  async clearPair(keys: { pair: string; address: string; account: string; wrongPrefix: string }): Promise<void> {
    // One statement (data-modifying CTEs see the same snapshot): the subtraction reads the pair's
    // slices before the DELETE beside it removes them.
    await this.db.query(
      `WITH cleared AS (
         UPDATE throttle_counts AS t
            SET failures = GREATEST(0, t.failures - p.failures)
           FROM throttle_counts AS p
          WHERE p.key = $1 AND p.bucket = t.bucket AND t.key IN ($2, $3)
       ), pair AS (
         DELETE FROM throttle_counts WHERE key = $1
       )
       DELETE FROM throttle_counts WHERE key >= $4 AND key < $5`,
      [keys.pair, keys.address, keys.account, keys.wrongPrefix, keys.wrongPrefix + '\u007f'],
    );
  }

  async prune(beforeBucket: number, now: number, limit: number): Promise<number> {
    await this.db.query('DELETE FROM throttle_blocks WHERE until <= $1', [now]);
    const r = await this.db.query(
      'DELETE FROM throttle_counts WHERE (key, bucket) IN (SELECT key, bucket FROM throttle_counts WHERE bucket < $1 LIMIT $2)',
      [beforeBucket, limit],
    );
    return r.rowCount ?? 0;
  }
}
