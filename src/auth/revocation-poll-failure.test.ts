/**
 * The authentication service's revocation watcher while the database cannot be read (issue 14:
 * "while the database is unreachable … live sessions continue; when it returns, pending
 * revocations take effect at once"). Pins: a failing poll neither ends the session nor throws
 * out of the timer; it is logged as `auth.revocation_poll_failed` once, not every 250 ms; the
 * first poll that succeeds afterwards applies the revoke committed meanwhile.
 */
import { afterEach, expect, it, vi } from 'vitest';
import { createAuthFixture, type AuthFixture } from '../../test/helpers/auth-fixture.js';

const PRIMARY = 'correct horse battery staple';
let fixture: AuthFixture | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await fixture?.close();
  fixture = undefined;
});

it('a failing poll keeps the session, logs once, and the revoke lands when the database answers again', async () => {
  const f = (fixture = createAuthFixture({}));
  await f.addUser('erin@example.test', PRIMARY);
  const { password, publicId } = await f.newPassword('erin@example.test', PRIMARY);
  const outcome = await f.attempt('erin@example.test', password);
  expect(outcome.kind).toBe('accepted');
  const ended: string[] = [];
  f.auth.watchRevocation(outcome.kind === 'accepted' ? outcome.passwordId : -1, (reason) => ended.push(reason));

  const unreachable = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
  const revision = vi.spyOn(f.store.passwords, 'revision').mockRejectedValue(unreachable);
  await f.accounts.revokePassword('erin@example.test', publicId);
  await expect.poll(() => revision.mock.calls.length, { timeout: 3000 }).toBeGreaterThanOrEqual(4);
  expect(ended).toEqual([]);
  const failed = f.logs.events('auth.revocation_poll_failed');
  expect(failed).toHaveLength(1);
  expect(failed[0]).toMatchObject({ level: 40, code: 'ECONNREFUSED' });

  revision.mockRestore();
  await expect.poll(() => ended, { timeout: 1000 }).toEqual(['admin']);
});
