/**
 * Auth section: what the authentication service costs, and what a flood of wrong passwords does
 * to everything else in the process. One run, one table:
 *
 * - successful verifications per second (the hot path: one SQLite query, HKDF, two AES-GCM opens),
 *   next to the floor of its primitives alone (bench/auth-verify.ts);
 * - failed verifications per second, the primary-password check (scrypt N=2^15, keyed) on the main thread vs in the worker pool;
 * - event-loop delay (perf_hooks.monitorEventLoopDelay) while 500 wrong-password logins arrive at
 *   once, the check on the main thread vs in the pool, with the round-trip time of a live imapflow
 *   session relayed through postern's IMAP proxy to a real Dovecot measured meanwhile (NOOP).
 *
 * For this section "direct" means the check on the main thread (inlinePrimaryChecker) and "via
 * postern" the worker pool postern uses — except the idle NOOP row, where direct is Dovecot itself.
 * BENCH_AUTH=verify runs only the success rows (seconds instead of minutes).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { ImapFlow } from 'imapflow';
import pino from 'pino';
import { primaryCheckPool } from '../src/auth/primary-check-pool.js';
import { PenaltyThrottle } from '../src/auth/penalty-throttle.js';
import { SharedThrottle } from '../src/auth/shared-throttle.js';
import { inlinePrimaryChecker, type PrimaryChecker } from '../src/auth/primary-checker.js';
import { AuthService } from '../src/auth/service.js';
import { readKeyFile } from '../src/crypto/keys.js';
import { createLogger } from '../src/log.js';
import { startDovecot } from '../test/helpers/dovecot.js';
import { startPostern, type PosternHarness } from '../test/helpers/postern.js';
import { verificationRows } from './auth-verify.js';
import { fmtMs, percentile, type BenchRow } from './table.js';

const FAILED_POOL = 100;
const FAILED_INLINE = 40;
const FLOOD = 500;
const IDLE_NOOPS = 200;
const NOOP_PACE_MS = 20;

export async function run(): Promise<BenchRow[]> {
  const upstreamUser = { name: 'benchauth', password: 'bench-auth-real-Secret-1' };
  const primary = 'bench-auth-primary-Secret-2';
  const dovecot = await startDovecot({ users: [upstreamUser] });
  let postern: PosternHarness | undefined;
  const pool = primaryCheckPool({ workers: 0 });
  try {
    postern = await startPostern({
      config: { log: { level: 'warn' }, imap: { implicitTls: { port: 0 }, upstream: { host: dovecot.host, port: dovecot.imapsPort, security: 'tls', caFile: dovecot.caFile } } },
      secrets: [upstreamUser.password],
    });
    await postern.addUser('bench', primary, { mode: 'password', user: upstreamUser.name, secret: upstreamUser.password });
    const { password } = await postern.newPassword('bench', primary, { label: 'bench' });
    const auth = (checker: PrimaryChecker) => serviceOn(postern!, checker);
    const pooled = auth(pool);
    const inline = auth(inlinePrimaryChecker());

    const success = await verificationRows(pooled, postern.app.store, readKeyFile(postern.keyFile), 'bench', password);
    if (process.env.BENCH_AUTH === 'verify') return success;
    const inlineFailRate = await failedPerSecond(inline, FAILED_INLINE);
    const poolFailRate = await failedPerSecond(pooled, FAILED_POOL);

    const direct = imapClient('127.0.0.2', dovecot.imapsPort, dovecot.caPem, upstreamUser.name, upstreamUser.password);
    const relayed = imapClient('127.0.0.1', postern.port('imap.implicitTls'), postern.caPem, 'bench', password);
    await direct.connect();
    await relayed.connect();
    const idleDirect = await noopTimes(direct, IDLE_NOOPS);
    const idleRelayed = await noopTimes(relayed, IDLE_NOOPS);
    await direct.logout();

    const floodInline = await underFlood(inline, relayed);
    const floodPool = await underFlood(pooled, relayed);
    await relayed.logout();

    const pair = (xs: number[]) => `${fmtMs(percentile(xs, 50))} / ${fmtMs(percentile(xs, 99))}`;
    const triple = (xs: number[]) => `${pair(xs)} / ${fmtMs(xs.at(-1) ?? NaN)}`;
    const loop = (d: { p50: number; p99: number }) => `${fmtMs(d.p50)} / ${fmtMs(d.p99)}`;
    const rate = (r: number) => `${Math.round(r).toLocaleString('en')}/s`;
    return [
      ...success,
      { section: 'auth', measure: 'failed verifications (keyed scrypt N=2^15)', direct: rate(inlineFailRate), postern: rate(poolFailRate), note: `direct = main thread (n=${FAILED_INLINE}); postern = pool of ${pool.threads} workers (n=${FAILED_POOL})` },
      { section: 'auth', measure: 'IMAP NOOP RTT p50 / p99, idle', direct: pair(idleDirect), postern: pair(idleRelayed), note: `imapflow, n=${IDLE_NOOPS}; direct = Dovecot itself` },
      { section: 'auth', measure: `event-loop delay p50 / p99, ${FLOOD} wrong logins`, direct: loop(floodInline.loopDelay), postern: loop(floodPool.loopDelay), note: 'monitorEventLoopDelay; direct = check on main thread, postern = pool' },
      { section: 'auth', measure: 'relayed IMAP NOOP RTT p50 / p99 / max, same flood', direct: triple(floodInline.noops), postern: triple(floodPool.noops), note: `imapflow → postern → Dovecot, one NOOP per ${NOOP_PACE_MS} ms; n=${floodInline.noops.length} / ${floodPool.noops.length}` },
      { section: 'auth', measure: `time to answer all ${FLOOD} wrong logins`, direct: fmtSeconds(floodInline.totalMs), postern: fmtSeconds(floodPool.totalMs), note: 'no throttle delays (bench config); same CPU work either way' },
    ];
  } finally {
    await pool.close();
    await postern?.stop();
    await dovecot.stop();
  }
}

/**
 * A second AuthService on postern's database and key, with the checker under test and no delays;
 * its throttle is composed as createAuthService composes it (the shared counts over the in-process layer).
 */
function serviceOn(postern: PosternHarness, checker: PrimaryChecker): AuthService {
  const policy = { baseDelayMs: 0, maxDelayMs: 0, blockAfterFailures: 1_000_000, blockMs: 0, windowMs: 60_000 };
  return new AuthService({
    store: postern.app.store,
    writes: postern.app.writes,
    digestKey: readKeyFile(postern.keyFile),
    primaryChecker: checker,
    throttle: new SharedThrottle(new PenaltyThrottle(policy), postern.app.store.throttle, postern.app.writes, policy),
    // A real pino logger writing real lines, to /dev/null: logging is part of the cost.
    log: createLogger({ destination: pino.destination({ dest: '/dev/null', sync: false }) }),
  });
}

/** One wrong-password login, half of them for a real account, from its own address. */
async function wrongLogin(auth: AuthService, i: number): Promise<void> {
  const login = i % 2 ? 'bench' : `nobody${i}`;
  const outcome = await auth.authenticate({ login, password: `wrong-password-${i}`, protocol: 'imap', clientAddress: `10.${(i >> 8) & 255}.${i & 255}.1` });
  if (outcome.kind !== 'failed') throw new Error(`expected failed, got ${outcome.kind}`);
}

function wrongLogins(auth: AuthService, n: number): Promise<unknown[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => wrongLogin(auth, i)));
}

async function failedPerSecond(auth: AuthService, n: number): Promise<number> {
  await wrongLogins(auth, 20);
  const started = performance.now();
  await wrongLogins(auth, n);
  return n / ((performance.now() - started) / 1000);
}

function imapClient(host: string, port: number, ca: string, user: string, pass: string): ImapFlow {
  const client = new ImapFlow({ host, port, secure: true, servername: 'localhost', tls: { ca, servername: 'localhost' }, auth: { user, pass }, logger: false });
  client.on('error', () => undefined);
  return client;
}

async function noopTimes(client: ImapFlow, n: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    await client.noop();
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b);
}

/**
 * 500 wrong-password logins arrive back to back, each in its own turn of the event loop (as reads
 * from 500 client sockets would), all in flight together. Meanwhile the relayed session sends a
 * NOOP every 20 ms (paced, so the probe itself does not load the loop) and the loop is sampled.
 */
async function underFlood(auth: AuthService, relayed: ImapFlow): Promise<{ loopDelay: { p50: number; p99: number }; noops: number[]; totalMs: number }> {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  const noops: number[] = [];
  let flooding = true;
  const pinger = (async () => {
    while (flooding) {
      const started = performance.now();
      await relayed.noop();
      noops.push(performance.now() - started);
      await new Promise((r) => setTimeout(r, NOOP_PACE_MS));
    }
  })();
  await new Promise((r) => setTimeout(r, 50));
  histogram.enable();
  const started = performance.now();
  const inFlight: Array<Promise<void>> = [];
  await new Promise<void>((resolve) => {
    const arrive = (i: number) => {
      if (i === FLOOD) return resolve();
      inFlight.push(wrongLogin(auth, i));
      setImmediate(() => arrive(i + 1));
    };
    arrive(0);
  });
  await Promise.all(inFlight);
  const totalMs = performance.now() - started;
  histogram.disable();
  flooding = false;
  await pinger;
  // Nanoseconds in the histogram.
  const loopDelay = { p50: histogram.percentile(50) / 1e6, p99: histogram.percentile(99) / 1e6 };
  return { loopDelay, noops: noops.sort((a, b) => a - b), totalMs };
}

function fmtSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
