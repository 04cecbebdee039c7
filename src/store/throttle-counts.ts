/**
 * The throttle's shared counts (migration 5; the policy is src/auth/shared-throttle.ts). Reads
 * run on the proxy's reader connection (WAL: never waiting for a writer) and are one statement:
 * a range seek on the primary key per key, plus the block's point lookup. Every change is applied
 * by the write queue (queued-writes.ts), in its batches, never on a login's path.
 */
import type { Db } from './database.js';

export interface SharedCount {
  failures: number;
  /** Time of the latest failure counted, 0 if none. */
  lastAt: number;
}

export interface SharedRead {
  /** Keyed as asked; a key without failures in the window is absent. */
  counts: Map<string, SharedCount>;
  /** The address's block, if one is in force (0 otherwise). */
  blockedUntil: number;
}

/**
 * What the throttle needs to know before a login, read in the login's own lookup
 * (AppPasswordRepo.findForLogin): the keys of the address (also its block's), the account and the pair.
 */
export interface GateQuery {
  address: string;
  account: string;
  pair: string;
  /** First slice of the window. */
  sinceBucket: number;
  now: number;
}

/** The answer to a GateQuery: failures in the window per key (0 if none), and the address's block. */
export interface GateRead {
  addressFailures: number;
  /** Time of the address's latest failure counted, 0 if none. */
  addressLastAt: number;
  accountFailures: number;
  pairFailures: number;
  /** The address's block, if one is in force (0 otherwise). */
  blockedUntil: number;
}

/** Keys per read: the address, the account, the pair, the repeat digest (unused ones are ''). */
export type ReadKeys = readonly [string, string, string, string];

export class ThrottleCountRepo {
  private readonly readStmt;
  private readonly addStmt;
  private readonly blockStmt;
  private readonly clearPairStmt;
  private readonly deleteKeyStmt;
  private readonly deleteRangeStmt;
  private readonly pruneCountsStmt;
  private readonly pruneBlocksStmt;

  constructor(db: Db) {
    this.readStmt = db.prepare<[string, string, string, string, number, string, number], { key: string; failures: number; lastAt: number }>(
      `SELECT key, SUM(failures) AS failures, MAX(last_at) AS lastAt FROM throttle_counts
        WHERE key IN (?, ?, ?, ?) AND bucket >= ? GROUP BY key
       UNION ALL
       SELECT '', 0, until FROM throttle_blocks WHERE key = ? AND until > ?`,
    );
    this.addStmt = db.prepare<{ key: string; bucket: number; at: number }>(
      `INSERT INTO throttle_counts (key, bucket, failures, last_at) VALUES (@key, @bucket, 1, @at)
       ON CONFLICT (key, bucket) DO UPDATE SET failures = failures + 1, last_at = MAX(last_at, excluded.last_at)`,
    );
    this.blockStmt = db.prepare<[string, number]>(
      `INSERT INTO throttle_blocks (key, until) VALUES (?, ?)
       ON CONFLICT (key) DO UPDATE SET until = MAX(until, excluded.until)`,
    );
    // A success takes the pair's failures off the address's and the account's counts, slice by slice.
    this.clearPairStmt = db.prepare<{ pair: string; address: string; account: string }>(
      `UPDATE throttle_counts AS t
          SET failures = MAX(0, t.failures - (SELECT p.failures FROM throttle_counts AS p WHERE p.key = @pair AND p.bucket = t.bucket))
        WHERE t.key IN (@address, @account)
          AND t.bucket IN (SELECT bucket FROM throttle_counts WHERE key = @pair)`,
    );
    this.deleteKeyStmt = db.prepare<[string]>('DELETE FROM throttle_counts WHERE key = ?');
    this.deleteRangeStmt = db.prepare<[string, string]>('DELETE FROM throttle_counts WHERE key >= ? AND key < ?');
    this.pruneCountsStmt = db.prepare<[number, number]>(
      'DELETE FROM throttle_counts WHERE (key, bucket) IN (SELECT key, bucket FROM throttle_counts WHERE bucket < ? LIMIT ?)',
    );
    this.pruneBlocksStmt = db.prepare<[number]>('DELETE FROM throttle_blocks WHERE until <= ?');
  }

  read(keys: ReadKeys, sinceBucket: number, blockKey: string, now: number): SharedRead {
    const counts = new Map<string, SharedCount>();
    let blockedUntil = 0;
    for (const row of this.readStmt.all(...keys, sinceBucket, blockKey, now)) {
      if (row.key === '') blockedUntil = row.lastAt;
      else counts.set(row.key, { failures: row.failures, lastAt: row.lastAt });
    }
    return { counts, blockedUntil };
  }

  /** One counted failure under each key, in the slice starting at `bucket`. */
  add(keys: readonly string[], bucket: number, at: number): void {
    for (const key of keys) this.addStmt.run({ key, bucket, at });
  }

  block(key: string, until: number): void {
    this.blockStmt.run(key, until);
  }

  /** After a success: the pair's failures leave the address's and the account's counts; its wrong-password digests go. */
  clearPair(keys: { pair: string; address: string; account: string; wrongPrefix: string }): void {
    this.clearPairStmt.run(keys);
    this.deleteKeyStmt.run(keys.pair);
    // Logins hold no control characters: every digest key of the pair sorts between these two.
    this.deleteRangeStmt.run(keys.wrongPrefix, keys.wrongPrefix + '\u007f');
  }

  /** Deletes at most `limit` slices older than `beforeBucket`, and blocks over by `now`; says how many slices went. */
  prune(beforeBucket: number, now: number, limit: number): number {
    this.pruneBlocksStmt.run(now);
    return this.pruneCountsStmt.run(beforeBucket, limit).changes;
  }
}
