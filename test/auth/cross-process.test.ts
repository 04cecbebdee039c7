/**
 * Admin changes made by ANOTHER PROCESS on the same database file. Pins: there is no cache of
 * positive answers, so the very next login after the other process commits is refused; and
 * watchRevocation signs live sessions out within a second (250 ms polling of the shared file).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, expect, it } from 'vitest';
import { primaryCheckPool } from '../../src/auth/primary-check-pool.js';
import type { AcceptedAuth } from '../../src/auth/types.js';
import { counting, createAuthFixture, type AuthFixture } from '../helpers/auth-fixture.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('./admin-script.ts', import.meta.url));
const PRIMARY = 'primary password of the account';

let fixture: AuthFixture | undefined;
afterEach(async () => {
  await fixture?.close();
  fixture = undefined;
});

async function inAnotherProcess(...args: string[]): Promise<number> {
  await run(process.execPath, ['--import', 'tsx', SCRIPT, ...args], { timeout: 30_000 });
  return Date.now();
}

it('a revoke committed by another process refuses the very next login and fires the watcher within 1 s', async () => {
  fixture = createAuthFixture({ checker: counting(primaryCheckPool({ workers: 1 })) });
  const f = fixture;
  await f.addUser('alice', PRIMARY);
  const { password, publicId } = await f.newPassword('alice', PRIMARY);
  const other = await f.newPassword('alice', PRIMARY);
  const accepted = (await f.attempt('alice', password)) as AcceptedAuth;
  expect(accepted.kind).toBe('accepted');
  let firedAt = 0;
  let firedReason = '';
  f.auth.watchRevocation(accepted.passwordId, (reason) => {
    firedAt = Date.now();
    firedReason = reason;
  });
  // Still accepted while the session is watched: watching changes nothing.
  expect((await f.attempt('alice', password)).kind).toBe('accepted');

  const committedAt = await inAnotherProcess(f.dbPath, 'revoke', 'alice', publicId);
  expect(await f.attempt('alice', password)).toEqual({ kind: 'failed' });
  expect(f.logs.events('auth.refused').at(-1)).toMatchObject({ reason: 'password_revoked' });
  // The account's other password is untouched.
  expect((await f.attempt('alice', other.password)).kind).toBe('accepted');
  await expect.poll(() => firedReason, { timeout: 1500, interval: 20 }).toBe('admin');
  // Measured from when the other process had exited (so after its commit): generous, not a benchmark.
  expect(firedAt - committedAt).toBeLessThan(1000);
});

it('removing the account in another process signs its sessions out', async () => {
  fixture = createAuthFixture({ checker: counting(primaryCheckPool({ workers: 1 })) });
  const f = fixture;
  await f.addUser('bob', PRIMARY);
  const { password } = await f.newPassword('bob', PRIMARY);
  const accepted = (await f.attempt('bob', password)) as AcceptedAuth;
  const reasons: string[] = [];
  f.auth.watchRevocation(accepted.passwordId, (reason) => reasons.push(reason));
  await inAnotherProcess(f.dbPath, 'remove', 'bob');
  expect(await f.attempt('bob', password)).toEqual({ kind: 'failed' });
  expect(f.logs.events('auth.refused').at(-1)).toMatchObject({ reason: 'unknown_user' });
  await expect.poll(() => reasons, { timeout: 1500, interval: 20 }).toEqual(['account-removed']);
});
