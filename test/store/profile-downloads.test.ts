/**
 * The one-time profile downloads' storage (src/onboarding/profile-download.ts and the two engines'
 * repositories). Pins:
 * - an offer made on one connection is taken once from another (another worker, same database);
 * - a sealed box moved to another row (another password's, by someone who can write the database)
 *   does not open: the offer is gone, not served with the wrong password;
 * - the stored row holds neither the token nor the password in any form a byte scan finds;
 * - the prune deletes expired offers and keeps live ones;
 * - on PostgreSQL, with the DDL handed to the coordinator, eight connections racing to take one
 *   token get it exactly once, for each of twenty tokens.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AccountService } from '../../src/accounts/service.js';
import { silentLogger } from '../../src/log.js';
import { ProfileDownloads } from '../../src/onboarding/profile-download.js';
import { openStore, sqliteDb, type Store } from '../../src/store/index.js';
import { MIGRATION_SET } from '../../src/store/migrations.js';
import { PgProfileDownloadRepo } from '../../src/store/postgres/profile-downloads.js';
import { startProfileDownloadPrune } from '../../src/store/profile-download-prune.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';

const PRIMARY = 'primary-Secret-for-profiles';
let dir: string;
let file: string;
let store: Store;
let accounts: AccountService;

beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'postern-profiles-'));
  file = path.join(dir, 'p.db');
  store = openStore(file);
  accounts = new AccountService(store, Buffer.alloc(32, 7));
  await accounts.addAccount('alice', PRIMARY, { mode: 'password', secret: 'upstream-Secret-alice' });
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function offerFor(downloads: ProfileDownloads, label: string): Promise<{ token: string; password: string; passwordId: number }> {
  const created = await accounts.createPassword('alice', PRIMARY, { label });
  const account = await accounts.getAccount('alice');
  const passwordId = (await store.passwords.findByPublicId(created.publicId))!.id;
  return downloads.offer({ accountId: account.id, passwordId, publicId: created.publicId, profile: { login: 'alice', address: 'alice@example.org', password: created.password, label, scopes: created.scopes } })
    .then((token) => ({ token, password: created.password, passwordId }));
}

describe('one-time profile downloads on SQLite', () => {
  it('an offer made on one connection is taken once, from another', async () => {
    const other = openStore(file);
    try {
      const offer = await offerFor(new ProfileDownloads(store, 60_000), 'iPhone');
      const taken = await new ProfileDownloads(other, 60_000).take(offer.token);
      expect(taken).toMatchObject({ kind: 'ok', profile: { password: offer.password, login: 'alice' } });
      expect(await new ProfileDownloads(store, 60_000).take(offer.token)).toEqual({ kind: 'gone' });
      expect(await new ProfileDownloads(other, 60_000).take(offer.token)).toEqual({ kind: 'gone' });
    } finally {
      await other.close();
    }
  });

  it('attack: sealed box moved to another password’s row — it does not open', async () => {
    const downloads = new ProfileDownloads(store, 60_000);
    const offer = await offerFor(downloads, 'iPhone');
    const otherId = (await store.passwords.findByPublicId((await accounts.createPassword('alice', PRIMARY, { label: 'Other' })).publicId))!.id;
    sqliteDb(store).prepare('UPDATE profile_downloads SET password_id = ?').run(otherId);
    expect(await downloads.take(offer.token)).toEqual({ kind: 'gone' });
  });

  it('attack: stolen database — the pending row holds neither the token nor the password', async () => {
    const offer = await offerFor(new ProfileDownloads(store, 60_000), 'iPhone');
    sqliteDb(store).pragma('wal_checkpoint(TRUNCATE)');
    const bytes = readFileSync(file);
    for (const secret of [offer.token, offer.password, offer.password.replaceAll('-', '')]) expect(bytes.includes(Buffer.from(secret))).toBe(false);
    expect(sqliteDb(store).prepare('SELECT count(*) AS n FROM profile_downloads').get()).toEqual({ n: 1 });
  });

  it('the prune deletes expired offers and keeps live ones', async () => {
    const now = Date.now();
    const expired = await offerFor(new ProfileDownloads(store, 1_000, () => now - 5_000), 'Old');
    const live = await offerFor(new ProfileDownloads(store, 60_000, () => now), 'New');
    const prune = startProfileDownloadPrune(store, silentLogger(), { everyMs: 60_000, clock: () => now });
    try {
      await expect.poll(() => (sqliteDb(store).prepare('SELECT count(*) AS n FROM profile_downloads').get() as { n: number }).n).toBe(1);
    } finally {
      prune.stop();
    }
    const downloads = new ProfileDownloads(store, 60_000, () => now);
    expect(await downloads.take(expired.token)).toEqual({ kind: 'gone' });
    expect((await downloads.take(live.token)).kind).toBe('ok');
  });
});

describe('one-time profile downloads on PostgreSQL', () => {
  let server: PostgresServer;
  let pool: pg.Pool;
  beforeAll(async () => {
    server = await startPostgres();
    pool = new pg.Pool({ connectionString: await server.createDatabase(), max: 8 });
    // The server's shutdown at the end reaches clients still closing (57P01): not a failure here.
    pool.on('error', () => undefined);
    // The two tables the DDL refers to, reduced to their keys (the full set is the coordinator's).
    await pool.query('CREATE TABLE accounts (id BIGINT PRIMARY KEY); CREATE TABLE app_passwords (id BIGINT PRIMARY KEY)');
    await pool.query(MIGRATION_SET.find((m) => m.postgres.includes('CREATE TABLE profile_downloads'))!.postgres);
    await pool.query('INSERT INTO accounts VALUES (1); INSERT INTO app_passwords VALUES (1)');
  }, 60_000);
  afterAll(async () => {
    await pool?.end();
    await server?.stop();
  });

  it('attack: racing downloads across connections — eight takes of one token, exactly one gets it, twenty times over', async () => {
    const repo = new PgProfileDownloadRepo(pool);
    for (let i = 0; i < 20; i++) {
      const digest = Buffer.alloc(32, i);
      await repo.insert({ tokenDigest: digest, accountId: 1, passwordId: 1, sealed: Buffer.from('box'), expiresAt: 2 ** 41 });
      const results = await Promise.all(Array.from({ length: 8 }, () => repo.take(digest)));
      const winners = results.filter((r) => r !== undefined);
      expect(winners).toEqual([{ accountId: 1, passwordId: 1, sealed: Buffer.from('box'), expiresAt: 2 ** 41 }]);
    }
  });

  it('prunes expired rows only, and the password’s removal cascades to its offer', async () => {
    const repo = new PgProfileDownloadRepo(pool);
    await repo.insert({ tokenDigest: Buffer.from('old'), accountId: 1, passwordId: 1, sealed: Buffer.from('x'), expiresAt: 1_000 });
    await repo.insert({ tokenDigest: Buffer.from('new'), accountId: 1, passwordId: 1, sealed: Buffer.from('y'), expiresAt: 3_000 });
    expect(await repo.pruneExpired(2_000)).toBe(1);
    await pool.query('DELETE FROM app_passwords WHERE id = 1');
    expect(await repo.take(Buffer.from('new'))).toBeUndefined();
  });
});
