/**
 * A database copied off disk — the .db file and its -wal, plus the key file — holds none of the
 * secrets that went in: primary passwords, upstream secrets (equal to the primary or not),
 * app-specific passwords (with or without hyphens, any case), those of a master-mode account too.
 * The scan reads raw bytes, in UTF-8 and UTF-16, while the writer still has the files open (WAL
 * not yet checkpointed) and again after a checkpoint, and the copy is shown to be a working database.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { openDatabase } from './database.js';
import { createAuthFixture, type AuthFixture } from '../../test/helpers/auth-fixture.js';
import { sqliteDb } from './index.js';

let f: AuthFixture;
let copyDir: string;
beforeEach(() => {
  f = createAuthFixture({ clock: 'movable' });
  copyDir = mkdtempSync(path.join(tmpdir(), 'postern-stolen-'));
});
afterEach(async () => {
  await f.close();
  rmSync(copyDir, { recursive: true, force: true });
});

function forms(secret: string): string[] {
  const variants = new Set([secret, secret.replace(/-/g, ''), secret.toUpperCase(), secret.replace(/-/g, '').toUpperCase()]);
  return [...variants];
}

function assertNoSecretIn(files: string[], secrets: Iterable<string>): void {
  for (const file of files) {
    const bytes = readFileSync(file);
    for (const secret of secrets) {
      for (const form of forms(secret)) {
        for (const needle of [Buffer.from(form, 'utf8'), Buffer.from(form, 'utf16le')]) {
          expect(bytes.includes(needle), `${path.basename(file)} contains a secret`).toBe(false);
        }
      }
    }
  }
}

function steal(): string[] {
  const names = ['postern.db', 'postern.db-wal', 'postern.db-shm', 'postern.key'].filter((n) => existsSync(path.join(f.dir, n)));
  for (const n of names) copyFileSync(path.join(f.dir, n), path.join(copyDir, n));
  return names.map((n) => path.join(copyDir, n));
}

it('the .db and -wal files and the key file contain none of the secrets the test used', async () => {
  const primaries: Record<string, string> = { alice: 'alice primary password', bob: 'bob primary password', carol: 'carol primary password' };
  const secrets = [...Object.values(primaries), 'bob provider secret ✓'];
  await f.accounts.addAccount('alice', primaries.alice!, { mode: 'password', secret: primaries.alice });
  await f.accounts.addAccount('bob', primaries.bob!, { mode: 'password', secret: 'bob provider secret ✓' });
  await f.accounts.addAccount('carol', primaries.carol!, { mode: 'master' });
  const made: Array<{ login: string; password: string }> = [];
  for (const login of ['alice', 'bob', 'carol']) {
    for (let i = 0; i < 3; i++) made.push({ login, password: (await f.accounts.createPassword(login, primaries[login]!, { label: `${login} ${i}` })).password });
  }
  secrets.push(...made.map((m) => m.password));
  // Every write path runs: uses recorded, primary refused, failures, revoke-all, primary change.
  for (const m of made.filter((m) => m.login !== 'carol')) expect((await f.login(m.login, m.password)).kind).toBe('accepted');
  expect((await f.login('alice', primaries.alice!)).kind).toBe('primary-refused');
  expect((await f.login('bob', made[0]!.password)).kind).toBe('failed');
  await f.writes.idle();
  await f.accounts.revokeAll('bob');
  await f.accounts.setPrimaryPassword('carol', 'carol new primary');
  secrets.push('carol new primary');

  expect(existsSync(path.join(f.dir, 'postern.db-wal'))).toBe(true);
  const hot = steal();
  assertNoSecretIn(hot, secrets);

  sqliteDb(f.store).pragma('wal_checkpoint(TRUNCATE)');
  rmSync(copyDir, { recursive: true, force: true });
  copyDir = mkdtempSync(path.join(tmpdir(), 'postern-stolen-'));
  const cold = steal();
  assertNoSecretIn(cold, secrets);

  // The copy is a real database with every account in it: the scan looked at real data.
  const stolen = openDatabase(path.join(copyDir, 'postern.db'), { readonly: true });
  try {
    expect(stolen.prepare('SELECT login FROM accounts ORDER BY login').all()).toEqual([{ login: 'alice' }, { login: 'bob' }, { login: 'carol' }]);
    expect((stolen.prepare('SELECT count(*) AS n FROM app_passwords').get() as { n: number }).n).toBe(9);
  } finally {
    stolen.close();
  }
});
