/**
 * Every login's one query (AppPasswordRepo.findForLogin, issue 15) stays one indexed query on
 * both engines: the password by its UNIQUE digest index, its account by primary key, and each of
 * the throttle's counts and its block by primary key — never a scan, however large the tables
 * grow. PostgreSQL is asked with sequential scans disabled, so that a plan chosen for tiny test
 * tables cannot hide an index the query could not use (it would still show a Seq Scan).
 */
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FIND_FOR_LOGIN_SQL } from '../../src/store/app-passwords.js';
import { openStore, sqliteDb } from '../../src/store/index.js';
import { FIND_FOR_LOGIN } from '../../src/store/postgres/app-passwords.js';
import { openPostgresStore } from '../../src/store/postgres/index.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const DIGEST = Buffer.alloc(32, 1);
const KEYS = { address: 'a:192.0.2.1', account: 'l:alice', pair: 'p:192.0.2.1\nalice', sinceBucket: 0, now: 1000 };

let server: PostgresServer | undefined;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server?.stop();
});

it('SQLite: the login query searches the digest index and primary keys only', async () => {
  const dir = await makeTempDir('postern-plan-');
  const store = openStore(path.join(dir, 'p.db'));
  try {
    const args = [KEYS.address, 0, KEYS.address, 0, KEYS.account, 0, KEYS.pair, 0, KEYS.address, KEYS.now, DIGEST];
    const plan = (sqliteDb(store).prepare(`EXPLAIN QUERY PLAN ${FIND_FOR_LOGIN_SQL}`).all(...args) as Array<{ detail: string }>).map((p) => p.detail);
    expect(plan).toContainEqual(expect.stringMatching(/^SEARCH p USING (COVERING )?INDEX sqlite_autoindex_app_passwords_\d \(digest=\?\)/));
    expect(plan).toContainEqual(expect.stringMatching(/^SEARCH a USING INTEGER PRIMARY KEY/));
    expect(plan.filter((d) => /^SEARCH throttle_counts USING PRIMARY KEY \(key=\? AND bucket>\?\)/.test(d))).toHaveLength(4);
    expect(plan).toContainEqual(expect.stringMatching(/^SEARCH throttle_blocks USING PRIMARY KEY \(key=\?\)/));
    // The one-row derived table of the bound digest is the only thing scanned.
    expect(plan.filter((d) => /^SCAN/.test(d) && !/^SCAN (d|CONSTANT ROW)/.test(d))).toEqual([]);
  } finally {
    await store.close();
    await removeTempDir(dir);
  }
});

it('PostgreSQL: the login query is index scans only', async () => {
  const store = await openPostgresStore(await server!.createDatabase());
  const client = await store.pool.connect();
  try {
    await client.query('SET enable_seqscan = off');
    const { rows } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${FIND_FOR_LOGIN.text}`, [KEYS.address, KEYS.account, KEYS.pair, KEYS.sinceBucket, KEYS.now, DIGEST]);
    const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(plan).not.toMatch(/Seq Scan/);
    // An index scan, or a bitmap scan of the same index (the planner's pick for the range seeks).
    const uses = (index: string) => plan.match(new RegExp(`(Index (Only )?Scan using|Bitmap Index Scan on) ${index}\\b`, 'g'))?.length ?? 0;
    expect(uses('app_passwords_digest_key')).toBe(1);
    expect(uses('accounts_pkey')).toBe(1);
    expect(uses('throttle_counts_pkey')).toBe(4);
    expect(uses('throttle_blocks_pkey')).toBe(1);
  } finally {
    client.release();
    await store.close();
  }
});
