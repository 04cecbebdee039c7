/**
 * Workers section (issue 15, "use every core"): the real binary (`postern serve`, dist/) with
 * `workers: 1` and `workers: 2` in front of one real Dovecot, and what the shared throttle costs.
 *
 * - logins per second: N complete logins (connect → TLS → greeting → LOGIN → tagged OK, then the
 *   client hangs up), CONCURRENCY at a time, from this process. Client, postern and Dovecot share
 *   the machine's cores, so the ratio is what matters, not the absolute figure;
 * - the shared throttle per attempt: SharedThrottle (one read of the shared counts; a counted
 *   failure is one queued write) against the in-process PenaltyThrottle alone, on a real SQLite
 *   file, sequential, no bcrypt (it is the same either way). "direct" = in-process only.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AccountService } from '../src/accounts/service.js';
import { PenaltyThrottle } from '../src/auth/penalty-throttle.js';
import { SharedThrottle } from '../src/auth/shared-throttle.js';
import type { Throttle } from '../src/auth/throttle.js';
import { readKeyFile } from '../src/crypto/keys.js';
import { silentLogger } from '../src/log.js';
import { openStore } from '../src/store/index.js';
import { openWriterStore, WriteQueue } from '../src/store/write-queue.js';
import { BIN, createWorkspace, type Workspace } from '../test/helpers/cli.js';
import { startDovecot, type DovecotServer } from '../test/helpers/dovecot.js';
import { freePort } from '../test/helpers/free-port.js';
import { connectLineClient } from '../test/helpers/line-client.js';
import type { BenchRow } from './table.js';

const LOGINS = 600;
const CONCURRENCY = 16;
const THROTTLE_OPS = 20_000;
const THROTTLE = { baseDelayMs: 0, maxDelayMs: 0, blockAfterFailures: 1_000_000, blockMs: 0, windowMs: 15 * 60_000 };

export async function run(): Promise<BenchRow[]> {
  const user = { name: 'benchw', password: 'bench-workers-real-Secret-1' };
  const dovecot = await startDovecot({ users: [user] });
  try {
    const direct = await loginRate({ host: dovecot.host, port: dovecot.imapsPort, ca: dovecot.caPem, login: user.name, password: user.password });
    const one = await loginsPerSecond(dovecot, user, 1);
    const two = await loginsPerSecond(dovecot, user, 2);
    const cost = await throttleCost();
    const rate = (r: number) => `${Math.round(r).toLocaleString('en')}/s`;
    const us = (x: number) => `${x.toFixed(1)} µs`;
    return [
      { section: 'workers', measure: `logins per second, 1 worker (n=${LOGINS}, ${CONCURRENCY} at a time)`, direct: rate(direct), postern: rate(one), note: 'direct = Dovecot itself; real binary; client, postern, Dovecot share the cores' },
      { section: 'workers', measure: `logins per second, 2 workers (n=${LOGINS}, ${CONCURRENCY} at a time)`, direct: rate(direct), postern: rate(two), note: `×${(two / one).toFixed(2)} of 1 worker` },
      { section: 'workers', measure: 'throttle per success (before + succeeded)', direct: us(cost.local.success), postern: us(cost.shared.success), note: `direct = in-process only; postern = + shared counts read (n=${THROTTLE_OPS})` },
      { section: 'workers', measure: 'throttle per failure (before + failed + write)', direct: us(cost.local.failure), postern: us(cost.shared.failure), note: 'postern: read + queued upsert of 4 keys (address, account, pair, repeat digest), batched, writes included' },
    ];
  } finally {
    await dovecot.stop();
  }
}

async function loginsPerSecond(dovecot: DovecotServer, user: { name: string; password: string }, workers: number): Promise<number> {
  const port = await freePort();
  const ws: Workspace = await createWorkspace({
    workers,
    log: { level: 'warn' },
    auth: { throttle: THROTTLE },
    imap: { implicitTls: { host: '127.0.0.1', port }, upstream: { host: dovecot.host, port: dovecot.imapsPort, security: 'tls', caFile: dovecot.caFile } },
  });
  const store = openStore(path.join(ws.dir, 'data', 'postern.db'));
  const accounts = new AccountService(store, readKeyFile(path.join(ws.dir, 'data', 'postern.key')));
  await accounts.addAccount('bench', 'bench-workers-primary-Secret-2', { mode: 'password', user: user.name, secret: user.password });
  const { password } = await accounts.createPassword('bench', 'bench-workers-primary-Secret-2', { label: 'bench' });
  await store.close();
  // Log level warn (a login's info line is part of its cost, but the perf section measures that): wait for the port instead.
  const serve = spawn(process.execPath, [BIN, '-c', ws.configPath, 'serve'], { cwd: ws.dir, stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    await untilListening(port);
    return await loginRate({ host: '127.0.0.1', port, ca: readFileSync(path.join(ws.dir, 'certs', 'postern.crt'), 'utf8'), login: 'bench', password });
  } finally {
    const exited = new Promise((resolve) => serve.once('close', resolve));
    serve.kill('SIGTERM');
    await exited;
    ws.cleanup();
  }
}

/** LOGINS complete logins, CONCURRENCY at a time, after a warm-up; logins per second. */
async function loginRate(t: { host: string; port: number; ca: string; login: string; password: string }): Promise<number> {
  const once = async () => {
    const c = await connectLineClient({ host: t.host, port: t.port, tls: { ca: t.ca, servername: 'localhost' } });
    await c.readLine();
    c.write(`a LOGIN ${t.login} "${t.password}"\r\n`);
    const lines = await c.readUntil((l) => l.startsWith('a '), 10_000);
    if (!lines.at(-1)!.startsWith('a OK')) throw new Error(`login failed: ${lines.at(-1)}`);
    c.close();
  };
  for (let i = 0; i < 20; i++) await once();
  let left = LOGINS;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (left-- > 0) await once();
  }));
  return LOGINS / ((performance.now() - started) / 1000);
}

async function untilListening(port: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('serve never listened');
}

async function throttleCost(): Promise<{ local: { success: number; failure: number }; shared: { success: number; failure: number } }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-bench-throttle-'));
  const reader = openStore(path.join(dir, 'postern.db'));
  const writer = openWriterStore(path.join(dir, 'postern.db'));
  const writes = new WriteQueue(writer, { log: silentLogger(), maxQueued: 1_000_000 });
  try {
    const measure = async (make: () => Throttle) => {
      const success = await perOp(make(), async (t, i) => {
        const ip = `192.0.2.${i % 250}`;
        t.succeeded(ip, 'bench', await t.before(ip, 'bench'));
      });
      const failure = await perOp(make(), async (t, i) => {
        const ip = `10.${(i >> 8) & 255}.${i & 255}.1`;
        await t.before(ip, 'bench');
        await t.failed(ip, 'bench', `wrong-${i}`, true);
        if (i % 500 === 499) await writes.flushed();
      });
      await writes.flushed();
      return { success, failure };
    };
    const local = await measure(() => new PenaltyThrottle(THROTTLE));
    const shared = await measure(() => new SharedThrottle(new PenaltyThrottle(THROTTLE), reader.throttle, writes, THROTTLE));
    return { local, shared };
  } finally {
    await writes.close();
    await writer.close();
    await reader.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** µs per operation, the writes it queued included (flushed before the clock stops). */
async function perOp(throttle: Throttle, op: (t: Throttle, i: number) => Promise<void>): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < THROTTLE_OPS; i++) await op(throttle, i);
  return ((performance.now() - started) * 1000) / THROTTLE_OPS;
}
