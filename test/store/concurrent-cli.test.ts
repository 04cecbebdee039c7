/**
 * The admin CLI and the proxy share one database (the run's engine) from separate processes. Pinned here:
 *  - `postern password new/revoke` run as subprocesses in a loop while this process keeps
 *    authenticating (reads, use records, failure events) — no command fails, no write is lost
 *    to SQLITE_BUSY (writes are queued and retried: the queue's drop counter and the log are checked);
 *  - a password made by the CLI logs in here at once, and a revoke by the CLI refuses the very
 *    next login here and fires the revocation watch of a live session.
 */
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AccountService } from '../../src/accounts/service.js';
import { inlinePrimaryChecker } from '../../src/auth/primary-checker.js';
import { AuthService } from '../../src/auth/service.js';
import { noThrottle } from '../../src/auth/throttle.js';
import { readKeyFile } from '../../src/crypto/keys.js';
import type { Store } from '../../src/store/index.js';
import { WriteQueue } from '../../src/store/write-queue.js';
import { createWorkspace, type Workspace } from '../helpers/cli.js';
import { openTestStore } from '../helpers/test-database.js';
import { assertNoSecrets, createLogSink, type LogSink } from '../helpers/log-sink.js';

const PRIMARY = 'alice primary for the concurrency test';
const ROUNDS = 4;
let ws: Workspace;
let store: Store;
let writer: Store;
let writes: WriteQueue;
let auth: AuthService;
let logs: LogSink;
let stable: string;
const secrets = new Set([PRIMARY]);

beforeAll(async () => {
  ws = await createWorkspace();
  const digestKey = readKeyFile(path.join(ws.dir, 'data', 'postern.key'));
  store = await openTestStore(ws, 'proxy');
  writer = await openTestStore(ws, 'writer');
  logs = createLogSink();
  writes = new WriteQueue(writer, { log: logs.logger });
  auth = new AuthService({ store, writes, digestKey, primaryChecker: inlinePrimaryChecker(), throttle: noThrottle, log: logs.logger });
  const accounts = new AccountService(store, digestKey);
  await accounts.addAccount('alice', PRIMARY, { mode: 'password', secret: PRIMARY });
  stable = (await accounts.createPassword('alice', PRIMARY, { label: 'stable' })).password;
  secrets.add(stable);
});

afterAll(async () => {
  await auth?.close();
  await writes?.close();
  await writer?.close();
  await store?.close();
  ws?.cleanup();
  if (logs) assertNoSecrets(logs.lines, secrets, 'auth logs');
});

const login = (password: string, clientAddress = '127.0.0.1') => auth.authenticate({ login: 'alice', password, protocol: 'imap', clientAddress });

async function cliNewPassword(label: string): Promise<{ id: string; password: string }> {
  const r = await ws.run(['password', 'new', 'alice', '--label', label, '--password-stdin', '--json'], { input: PRIMARY + '\n' });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const out = JSON.parse(r.stdout) as { id: string; password: string };
  secrets.add(out.password);
  return out;
}

it('CLI subprocesses create and revoke in a loop while this process authenticates: no busy errors, revokes bite at once', async () => {
  let running = true;
  const counts = { accepted: 0, failed: 0 };
  // The proxy side: a valid login and a failing one (which writes a history event) back to back.
  const proxy = (async () => {
    let n = 0;
    while (running) {
      const ok = await login(stable, `127.0.0.${(n % 200) + 1}`);
      expect(ok.kind).toBe('accepted');
      counts.accepted++;
      const bad = await login('zzzz-zzzz-zzzz-zzzz');
      expect(bad.kind).toBe('failed');
      counts.failed++;
      n++;
      await new Promise((r) => setImmediate(r));
    }
  })();

  try {
    for (let i = 0; i < ROUNDS; i++) {
      const made = await cliNewPassword(`loop ${i}`);
      expect((await login(made.password)).kind).toBe('accepted');
      const revoke = await ws.run(['password', 'revoke', 'alice', made.id]);
      expect(revoke.stderr).toBe('');
      expect(revoke.code).toBe(0);
      // The very next login after the revoking process has exited is refused.
      expect((await login(made.password)).kind).toBe('failed');
    }
  } finally {
    running = false;
    await proxy;
  }
  await writes.idle();
  expect(writes.stats().dropped).toBe(0);
  expect(counts.accepted).toBeGreaterThan(ROUNDS);
  expect(counts.failed).toBeGreaterThan(ROUNDS);
  const storeTrouble = logs.entries().filter((e) => typeof e.event === 'string' && (e.event).startsWith('store.'));
  expect(storeTrouble).toEqual([]);
  const failures = (await store.events.listForAccount((await store.accounts.findByLogin('alice'))!.id, 100_000)).filter((e) => e.type === 'login.failed');
  expect(failures.length).toBe(counts.failed + ROUNDS);
  const list = await ws.run(['password', 'list', 'alice', '--json']);
  const rows = JSON.parse(list.stdout) as Array<{ label: string; status: string; revokedReason: string | null }>;
  expect(rows.filter((r) => r.label.startsWith('loop ')).map((r) => r.revokedReason)).toEqual(Array(ROUNDS).fill('admin'));
}, 120_000); // a dozen node processes on a busy two-core machine

it('a revoke by the CLI signs out a live session promptly (the watch polls every 250 ms)', async () => {
  const made = await cliNewPassword('live session');
  const accepted = await login(made.password);
  expect(accepted.kind).toBe('accepted');
  if (accepted.kind !== 'accepted') return;
  const fired = new Promise<string>((resolve) => auth.watchRevocation(accepted.passwordId, resolve));
  const revoke = await ws.run(['password', 'revoke', 'alice', made.id]);
  expect(revoke.code).toBe(0);
  const reason = await Promise.race([fired, new Promise<string>((_, reject) => setTimeout(() => reject(new Error('revocation not seen within 2 s')), 2000))]);
  expect(reason).toBe('admin');
});
