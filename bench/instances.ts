/**
 * Instances section (issue 14): what PostgreSQL costs a login, what a second instance on the same
 * database costs, and how fast a revoke reaches sessions spread over two instances. The scale
 * section's processes (bench/children.ts): the minimal TLS IMAP upstream, postern instances each
 * in a process of its own running dist/ with serve's logger (bench/scale-postern.ts; one process
 * per instance, `workers: 1`), the clients here; and a real PostgreSQL (test/helpers/postgres.ts).
 *
 * - login latency: sequential complete logins (connect, TLS, LOGIN, upstream TLS + LOGIN, LOGOUT
 *   answered) to the upstream alone ("direct"), one postern on SQLite and one on PostgreSQL,
 *   interleaved in rounds so load changes hit all alike;
 * - logins per second, CONCURRENCY clients: one instance on PostgreSQL against two on the same
 *   database with the clients taking the two ports in turn. Everything shares the machine's
 *   cores, so the ratio shows what a second instance costs, not how instances scale;
 * - revoke → BYE: SESSIONS idle sessions over the two PostgreSQL instances, passwords revoked by
 *   the real CLI (`postern password revoke`, then `revoke-all`) in a process of its own, the news
 *   travelling by LISTEN/NOTIFY; against the same on one SQLite instance (its 250 ms poll).
 *   Measured from the revoke's timestamp in the row (the CLI's clock, just before its
 *   transaction) to the BYE line at the client: one machine, one clock.
 *
 * Skipped as any section is: name the others (`npm run bench -- auth imap`) or `-instances`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { PASSWORD_CHANGES_CHANNEL } from '../src/store/postgres/change-feed.js';
import { runBinary } from '../test/helpers/cli.js';
import { startPostgres } from '../test/helpers/postgres.js';
import { ecdsaCert, spawnChild, type Child } from './children.js';
import { byes, epochNow, loginLogout, openSessions, revokeToBye, type Endpoint, type Session } from './imap-clients.js';
import { fmtMs, percentile, type BenchRow } from './table.js';

const LATENCY_LOGINS = 300;
const LATENCY_ROUNDS = 3;
const WARMUP = 30;
const RATE_LOGINS = 400;
const RATE_ROUNDS = 2;
const CONCURRENCY = 24;
const PASSWORDS = 10;
const SESSIONS = 200;
const REVOKES = 5;

interface Started {
  port: number;
  passwords: string[];
  publicIds: string[];
  keyFile: string;
  configFile: string;
}

/** A postern instance the clients reach, and how to revoke on its database. */
interface Instance extends Endpoint {
  proc: Child;
  publicIds: readonly string[];
  configFile: string;
}

export async function run(): Promise<BenchRow[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-bench-instances-'));
  const certs = ecdsaCert(dir);
  const env = { BENCH_CERT: certs.cert, BENCH_KEY: certs.key };
  const pg = await startPostgres();
  const upstream = spawnChild('upstream', env);
  const children = [spawnChild('postern', env), spawnChild('postern', env), spawnChild('postern', env)] as const;
  try {
    const { port: upstreamPort } = await upstream.ask<{ port: number }>({ op: 'listen' });
    const url = await pg.createDatabase('postern_bench');
    const instance = (proc: Child, s: Started, from: Started = s): Instance => ({ proc, port: s.port, ca: certs.pem, passwords: from.passwords, publicIds: from.publicIds, configFile: from.configFile });
    const [started, first] = await Promise.all([
      children[0].ask<Started>({ op: 'start', upstreamPort, passwords: PASSWORDS }),
      children[1].ask<Started>({ op: 'start', upstreamPort, passwords: PASSWORDS, databaseUrl: url }),
    ]);
    const sqlite = instance(children[0], started);
    const second = await children[2].ask<Started>({ op: 'start', upstreamPort, passwords: 0, databaseUrl: url, keyFile: first.keyFile });
    const pgA = instance(children[1], first);
    const pgB = instance(children[2], second, first);
    const direct: Endpoint = { port: upstreamPort, ca: certs.pem, passwords: ['x'] };
    const rows: BenchRow[] = [];

    const lat = await loginLatencies([direct, sqlite, pgA]);
    const summary = (xs: number[]) => `${fmtMs(percentile(xs, 50))} / ${fmtMs(percentile(xs, 99))} / ${fmtMs(mean(xs))}`;
    const latencyNote = `connect, TLS, LOGIN, upstream TLS + LOGIN, LOGOUT; ${LATENCY_ROUNDS} interleaved rounds; direct = the upstream alone`;
    rows.push({ section: 'instances', measure: `login latency p50 / p99 / mean, SQLite (n=${LATENCY_LOGINS}, sequential)`, direct: summary(lat[0]!), postern: summary(lat[1]!), note: latencyNote });
    rows.push({ section: 'instances', measure: `login latency p50 / p99 / mean, PostgreSQL (n=${LATENCY_LOGINS}, sequential)`, direct: summary(lat[0]!), postern: summary(lat[2]!),
      note: `same upstream, same run; PostgreSQL − SQLite p50 = ${fmtMs(percentile(lat[2]!, 50) - percentile(lat[1]!, 50))}` });

    const [upstreamRate, sqliteRate, oneRate, twoRate] = await loginRates([[direct], [sqlite], [pgA], [pgA, pgB]]);
    const rate = (r: number) => `${Math.round(r).toLocaleString('en')}/s`;
    rows.push({ section: 'instances', measure: `logins per second, 1 instance on PostgreSQL (n=${RATE_LOGINS * RATE_ROUNDS}, ${CONCURRENCY} at a time)`, direct: rate(upstreamRate!), postern: rate(oneRate!),
      note: `direct = the upstream alone; 1 instance on SQLite ${rate(sqliteRate!)}` });
    rows.push({ section: 'instances', measure: `logins per second, 2 instances on one PostgreSQL (n=${RATE_LOGINS * RATE_ROUNDS}, ${CONCURRENCY} at a time)`, direct: rate(upstreamRate!), postern: rate(twoRate!),
      note: `×${(twoRate! / oneRate!).toFixed(2)} of 1 instance; clients take the two ports in turn; both instances, PostgreSQL, the upstream and the clients share the machine's cores, so this shows a second instance's overhead, not scale` });

    const viaNotify = await revocation([pgA, pgB], url);
    const viaPoll = await revocation([sqlite]);
    const pair = (xs: number[]) => `${fmtMs(percentile(xs, 50))} / ${fmtMs(percentile(xs, 99))}`;
    rows.push({ section: 'instances', measure: `revoke → BYE p50 / p99, ${SESSIONS} sessions, 1 instance on SQLite`, direct: '—', postern: pair(viaPoll.one),
      note: `n=${viaPoll.one.length}: ${REVOKES} × \`postern password revoke\` (its own process) of 1 of ${PASSWORDS} passwords; seen by the 250 ms poll; revoke's timestamp in the row → BYE line at the client` });
    rows.push({ section: 'instances', measure: `revoke → BYE p50 / p99, ${SESSIONS} sessions over 2 instances on PostgreSQL`, direct: '—', postern: pair(viaNotify.one),
      note: `n=${viaNotify.one.length}: the same revokes, on the shared database; LISTEN/NOTIFY from the CLI's transaction to both instances; revoked_at → NOTIFY at a listener of the bench's own p50 ${fmtMs(percentile(viaNotify.notified, 50))} (n=${viaNotify.notified.length}, revoke-all included): the CLI's transaction, the rest is the instances'` });
    rows.push({ section: 'instances', measure: `revoke-all → BYE p50 / p99, the other ${viaPoll.all.length} sessions, 1 instance on SQLite`, direct: '—', postern: pair(viaPoll.all),
      note: `one \`postern password revoke-all\` (${PASSWORDS - REVOKES} passwords): one event, so every session waits the same poll phase` });
    rows.push({ section: 'instances', measure: `revoke-all → BYE p50 / p99, the other ${viaNotify.all.length} sessions over 2 instances on PostgreSQL`, direct: '—', postern: pair(viaNotify.all),
      note: `one \`postern password revoke-all\` (${PASSWORDS - REVOKES} passwords), LISTEN/NOTIFY; each instance signs out its half` });
    return rows;
  } finally {
    await Promise.all(children.map((c) => c.ask({ op: 'stop' }).catch(() => undefined)));
    await Promise.all([...children.map((c) => c.exit()), pg.stop()]);
    upstream.proc.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Sequential login latencies (ms, sorted) per target, the targets interleaved in rounds. */
async function loginLatencies(targets: readonly Endpoint[]): Promise<number[][]> {
  for (const target of targets) for (let i = 0; i < WARMUP; i++) await loginLogout(target, i);
  const latencies = targets.map((): number[] => []);
  for (let round = 0; round < LATENCY_ROUNDS; round++) {
    for (const [t, target] of targets.entries()) {
      for (let i = 0; i < LATENCY_LOGINS / LATENCY_ROUNDS; i++) {
        const started = performance.now();
        await loginLogout(target, i);
        latencies[t]!.push(performance.now() - started);
      }
    }
  }
  return latencies.map((xs) => xs.sort((a, b) => a - b));
}

/** Logins per second for each group of endpoints, CONCURRENCY clients taking the group's ports in turn; groups interleaved in rounds. */
async function loginRates(groups: ReadonlyArray<readonly Endpoint[]>): Promise<number[]> {
  const elapsed = groups.map(() => 0);
  for (const group of groups) for (let i = 0; i < WARMUP; i++) await loginLogout(group[i % group.length]!, i);
  for (let round = 0; round < RATE_ROUNDS; round++) {
    for (const [g, group] of groups.entries()) {
      let next = 0;
      const started = performance.now();
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        for (let i = next++; i < RATE_LOGINS; i = next++) await loginLogout(group[i % group.length]!, i);
      }));
      elapsed[g]! += performance.now() - started;
    }
  }
  return elapsed.map((ms) => (RATE_LOGINS * RATE_ROUNDS) / (ms / 1000));
}

/**
 * SESSIONS idle sessions split over `instances` (every password on each), REVOKES passwords
 * revoked one by one by the CLI, then the rest by one revoke-all; BYE latencies of each (ms,
 * sorted). With `listen` (the PostgreSQL URL), a listener of the bench's own on the instances'
 * channel says when each revoke's NOTIFY arrived: what of the latency is the CLI's transaction
 * and the delivery, and what is the instances' own.
 */
async function revocation(instances: readonly Instance[], listen?: string): Promise<{ one: number[]; all: number[]; notified: number[] }> {
  const owner = instances[0]!;
  const sessions: Session[] = [];
  const listener = listen ? await notifications(listen) : null;
  const notified: number[] = [];
  const revoke = async (args: string[], password: number) => {
    listener?.reset();
    await cli(owner, args);
    const at = await revokedAt(owner, password);
    const heard = listener?.first();
    if (heard !== undefined) notified.push(heard - at);
    return at;
  };
  try {
    for (const instance of instances) await openSessions(sessions, SESSIONS / instances.length, instance);
    const one = await revokeToBye(sessions, REVOKES, (password) => revoke(['password', 'revoke', 'bench', owner.publicIds[password]!], password));
    const rest = sessions.filter((s) => s.password >= REVOKES);
    const at = await revoke(['password', 'revoke-all', 'bench'], REVOKES);
    const all = (await byes(rest)).map((t) => t - at).sort((a, b) => a - b);
    return { one, all, notified: notified.sort((a, b) => a - b) };
  } finally {
    for (const s of sessions) s.socket.destroy();
    await listener?.close();
  }
}

/** LISTEN on the channel postern's instances listen on: when the first notification since reset() arrived. */
async function notifications(url: string): Promise<{ reset(): void; first(): number | undefined; close(): Promise<void> }> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  await client.query(`LISTEN ${client.escapeIdentifier(PASSWORD_CHANGES_CHANNEL)}`);
  let first: number | undefined;
  client.on('notification', () => (first ??= epochNow()));
  return { reset: () => (first = undefined), first: () => first, close: () => client.end() };
}

/** The real binary (dist/) on the instance's config: a process of its own, as an admin runs it. */
async function cli(instance: Instance, args: readonly string[]): Promise<void> {
  const result = await runBinary(['-c', instance.configFile, ...args]);
  if (result.code !== 0) throw new Error(`postern ${args.join(' ')} failed: ${result.stderr}`);
}

/** When the CLI revoked the password: the row's revoked_at (epoch ms), read back. */
async function revokedAt(instance: Instance, password: number): Promise<number> {
  const { at } = await instance.proc.ask<{ at: number | null }>({ op: 'revoked-at', publicId: instance.publicIds[password] });
  if (at === null) throw new Error(`password ${password} is not revoked`);
  return Number(at);
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
