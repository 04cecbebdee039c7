/**
 * The login's one query (issue 15): the password's row and the shared throttle's counts are read
 * together (AppPasswordRepo.findForLogin), so a login that changes nothing reads once. Pinned here,
 * on two services (two worker processes) sharing one SQLite file:
 * - guess spreading attack: app-password-shaped guesses alternated over both processes block the
 *   address on both after blockAfterFailures, the right password included, and the owner, from a
 *   clean address, still gets in;
 * - penalty-hold race: the row is read again after an attempt's penalty hold, so a revoke
 *   committed during the hold is in force (the combined read happened before the hold);
 * - a clean success reads the counts and writes nothing to them.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, expect, it } from 'vitest';
import { createAuthFixture, type AuthFixture } from '../../test/helpers/auth-fixture.js';
import { silentLogger } from '../log.js';
import { openStore, sqliteDb, type Store } from '../store/index.js';
import { openWriterStore, WriteQueue } from '../store/write-queue.js';
import { inlinePrimaryChecker } from './primary-checker.js';
import { PenaltyThrottle } from './penalty-throttle.js';
import { AuthService } from './service.js';
import { SharedThrottle } from './shared-throttle.js';

const PRIMARY = 'correct horse battery staple';
const ATTACKER = '198.51.100.7';
const OWNER = '203.0.113.20';
const repeatKey = randomBytes(32);

let fixture: AuthFixture | undefined;
let other: { auth: AuthService; writes: WriteQueue; reader: Store; writer: Store } | undefined;
afterEach(async () => {
  if (other) {
    await other.auth.close();
    await other.writes.close();
    await other.writer.close();
    await other.reader.close();
  }
  other = undefined;
  await fixture?.close();
  fixture = undefined;
});

type Policy = { baseDelayMs: number; maxDelayMs: number; blockAfterFailures: number; blockMs: number; windowMs: number };

function shared(policy: Policy, store: Store, writes: WriteQueue): SharedThrottle {
  return new SharedThrottle(new PenaltyThrottle(policy), store.throttle, writes, { ...policy, repeatKey });
}

/** The fixture's service, and a second one on the same file with its own connections, queue and throttle. */
function twoProcesses(policy: Policy): { f: AuthFixture; b: AuthService } {
  const f = createAuthFixture({ throttle: (_log, on) => shared(policy, on.store, on.writes) });
  fixture = f;
  const reader = openStore(f.dbPath);
  const writer = openWriterStore(f.dbPath);
  const writes = new WriteQueue(writer, { log: silentLogger() });
  const auth = new AuthService({ store: reader, writes, digestKey: f.digestKey, primaryChecker: inlinePrimaryChecker(), throttle: shared(policy, reader, writes), log: silentLogger() });
  other = { auth, writes, reader, writer };
  return { f, b: auth };
}

/** A wrong password in the app-password shape: it takes the login-query path, not the shortcut for malformed ones. */
const guess = (i: number) => `wron-gues-sxxx-xxx${String.fromCharCode(97 + i)}`;

it('guess spreading attack through the login query: guesses over two processes block the address on both, the right password included', async () => {
  const { f, b } = twoProcesses({ baseDelayMs: 0, maxDelayMs: 0, blockAfterFailures: 4, blockMs: 60_000, windowMs: 60_000 });
  await f.addUser('alice', PRIMARY);
  const { password } = await f.newPassword('alice', PRIMARY);
  for (let i = 0; i < 4; i++) {
    f.secrets.add(guess(i));
    const outcome = await (i % 2 === 0 ? f.auth : b).authenticate({ login: 'alice', password: guess(i), clientAddress: ATTACKER, protocol: 'imap' });
    expect(outcome, `guess ${i + 1}`).toEqual({ kind: 'failed' });
  }
  expect(await f.attempt('alice', password, ATTACKER)).toEqual({ kind: 'throttled' });
  expect(await b.authenticate({ login: 'alice', password, clientAddress: ATTACKER, protocol: 'imap' })).toEqual({ kind: 'throttled' });
  expect((await b.authenticate({ login: 'alice', password, clientAddress: OWNER, protocol: 'imap' })).kind).toBe('accepted');
});

it('penalty-hold race: a revoke committed while an attempt is held for its penalty is in force when the hold ends', async () => {
  const { f } = twoProcesses({ baseDelayMs: 400, maxDelayMs: 400, blockAfterFailures: 10, blockMs: 60_000, windowMs: 60_000 });
  await f.addUser('bob', PRIMARY);
  const { password, publicId } = await f.newPassword('bob', PRIMARY);
  f.secrets.add(guess(0));
  // The failure's answer is held for the penalty; its count is written at once.
  const failure = f.attempt('bob', guess(0), ATTACKER);
  await f.writes.flushed();
  await new Promise((r) => setTimeout(r, 50));
  // The address's next attempt is held for the rest of the penalty; its row was read (still active) before the hold.
  const held = f.attempt('bob', password, ATTACKER);
  await new Promise((r) => setTimeout(r, 50));
  await f.accounts.revokePassword('bob', publicId);
  expect(await failure).toEqual({ kind: 'failed' });
  expect(await held).toEqual({ kind: 'failed' });
  expect(f.logs.events('auth.refused').at(-1)).toMatchObject({ reason: 'password_revoked', ip: ATTACKER });
});

it('a clean success reads the counts with the row and writes nothing to them', async () => {
  const { f, b } = twoProcesses({ baseDelayMs: 0, maxDelayMs: 0, blockAfterFailures: 4, blockMs: 60_000, windowMs: 60_000 });
  await f.addUser('carol', PRIMARY);
  const { password } = await f.newPassword('carol', PRIMARY);
  for (let i = 0; i < 3; i++) expect((await (i % 2 ? b : f.auth).authenticate({ login: 'carol', password, clientAddress: OWNER, protocol: 'imap' })).kind).toBe('accepted');
  await f.writes.flushed();
  await other!.writes.flushed();
  expect(sqliteDb(f.store).prepare('SELECT count(*) AS n FROM throttle_counts').get()).toEqual({ n: 0 });
  expect(other!.writes.stats().queued).toBe(0);
});
