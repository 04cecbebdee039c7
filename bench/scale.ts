/**
 * Scale section (issue 15): what one idle session and one login cost postern itself, next to the
 * floors Node sets. Four processes, so each figure is one process's own: postern (a child, its
 * descriptor limit raised with prlimit), a bare Node TLS relay (a child: accept TLS, connect TLS to
 * the same upstream, pipe both ways, nothing else; bench/scale-relay.ts), a minimal TLS IMAP
 * upstream (a child: greeting, AUTHENTICATE/LOGIN OK, IDLE, LOGOUT, nothing else) and the clients
 * (this process). The same clients log in to each of the three in turn: the upstream alone (one
 * Node TLS leg per session), the bare relay (two legs, Node's floor for any proxy) and postern.
 *
 * - RSS and V8 heap per idle session: TLS on both sides, logged in, in IDLE, at 1k and 5k and the
 *   largest step every descriptor limit allows (labelled with its real count), the difference from
 *   the process before the first session, after two full GCs, divided by the sessions.
 * - CPU per login (connect, TLS, LOGIN, upstream TLS + LOGIN, LOGOUT; user + system of the process
 *   over sequential logins), the three targets interleaved in rounds so load changes hit all alike.
 * - an upstream TLS handshake's client-side CPU, full against resumed, in the bare relay's process
 *   (Node alone: whether resuming toward the upstream, as postern does, is worth its setSession).
 * - the revocation poll's cost at 1k and 10k watched passwords (bench/revocation.ts's method),
 *   and revoke → BYE p50/p99 at the client, end to end, with postern's idle sessions open.
 * Certificates are ECDSA P-256 (openssl), as a current ACME certificate is: with the test
 * harness's RSA-2048 certificate the server-side signature alone costs ~1 ms of a login.
 *
 * Knobs (environment): BENCH_SCALE_STEPS (e.g. `1000`, or `none` for the login figures only),
 * BENCH_CPU_PROF=<prefix> (CPU profiles of postern and of the bare relay over the login rounds,
 * sampled every 100 µs: <prefix>-postern.cpuprofile, <prefix>-relay.cpuprofile), BENCH_HEAP_SNAPSHOT=<dir> (postern
 * writes a heap snapshot before its first session and at each step: bench/heap-diff.ts reads them).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ecdsaCert, spawnChild, type Child } from './children.js';
import { loginLogout, openSessions, revokeToBye, type Endpoint, type Session } from './imap-clients.js';
import { percentile, fmtMs, type BenchRow } from './table.js';

/** Descriptors each process is asked to have: the hard limit here is 20,000. */
const NOFILE = 20_000;
const STEP_GRAIN = 500;
const LOGINS = 300;
const LOGIN_ROUNDS = 3;
const LOGIN_WARMUP = 30;
const HANDSHAKES = 300;
const PASSWORDS = 20;
const REVOKES = 10;

/** Raises a child's descriptor limit (prlimit(1), Linux); returns the limit it has. */
function raiseNofile(pid: number, wanted: number): number {
  try {
    execFileSync('prlimit', [`--pid=${pid}`, `--nofile=${wanted}:${wanted}`], { stdio: 'ignore' });
  } catch {
    // Not allowed (no CAP_SYS_RESOURCE above the hard limit): the sessions stop at what it has.
  }
  return nofileOf(pid);
}

function nofileOf(pid: number | 'self'): number {
  const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
  return Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1] ?? 1024);
}

/** 1k, 5k, then the largest step the descriptor limits allow (two per relayed session in a proxy). */
function steps(room: number): number[] {
  const env = process.env.BENCH_SCALE_STEPS;
  if (env === 'none') return [];
  const wanted = env ? env.split(',').map(Number) : [1_000, 5_000, 10_000];
  const fit = Math.floor(room / STEP_GRAIN) * STEP_GRAIN;
  return [...new Set(wanted.map((n) => Math.min(n, fit)))];
}

/** One of the three things the clients log in to: the upstream alone, the bare relay, postern. */
interface Target extends Endpoint {
  name: 'upstream' | 'relay' | 'baseline' | 'postern';
  proc: Child;
}

export async function run(): Promise<BenchRow[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-bench-scale-'));
  const certs = ecdsaCert(dir);
  const env = { BENCH_CERT: certs.cert, BENCH_KEY: certs.key };
  const cpuProf = process.env.BENCH_CPU_PROF;
  const snapshots = process.env.BENCH_HEAP_SNAPSHOT;
  const upstream = spawnChild('upstream', env);
  const relay = spawnChild('relay', env);
  const postern = spawnChild('postern', env);
  const baselineDist = process.env.BENCH_POSTERN_BASELINE;
  const baseline = baselineDist ? spawnChild('postern', { ...env, BENCH_POSTERN_DIST: baselineDist }) : null;
  try {
    const limits = { clients: nofileOf('self'), upstream: raiseNofile(upstream.proc.pid!, NOFILE), relay: raiseNofile(relay.proc.pid!, NOFILE), postern: raiseNofile(postern.proc.pid!, NOFILE) };
    if (baseline) raiseNofile(baseline.proc.pid!, NOFILE);
    const { port: upstreamPort } = await upstream.ask<{ port: number }>({ op: 'listen' });
    const { port: relayPort } = await relay.ask<{ port: number }>({ op: 'listen', upstreamPort });
    const started = await postern.ask<{ port: number; passwords: string[] }>({ op: 'start', upstreamPort, passwords: PASSWORDS });
    const targets: Target[] = [
      { name: 'upstream', proc: upstream, port: upstreamPort, ca: certs.pem, passwords: ['x'] },
      { name: 'relay', proc: relay, port: relayPort, ca: certs.pem, passwords: ['x'] },
    ];
    if (baseline) {
      const b = await baseline.ask<{ port: number; passwords: string[] }>({ op: 'start', upstreamPort, passwords: PASSWORDS });
      targets.push({ name: 'baseline', proc: baseline, port: b.port, ca: certs.pem, passwords: b.passwords });
    }
    // Last: its sessions stay open for the revocation figures.
    targets.push({ name: 'postern', proc: postern, port: started.port, ca: certs.pem, passwords: started.passwords });
    const vsBaseline = (f: (name: Target['name']) => string) => (baseline ? `; baseline build (${baselineDist}) ${f('baseline')}` : '');
    const rows: BenchRow[] = [];

    const cpu = await cpuPerLogin(targets, upstream, cpuProf);
    rows.push({ section: 'scale', measure: `CPU per login: upstream alone / bare Node relay (n=${LOGINS}, sequential)`, direct: `${fmtUs(cpu.upstream.own)} / ${fmtUs(cpu.relay.own)}`, postern: fmtUs(cpu.postern.own),
      note: `user+system of each process; connect, TLS, LOGIN, (upstream TLS + LOGIN,) LOGOUT; ${LOGIN_ROUNDS} interleaved rounds; postern − relay = ${fmtUs(cpu.postern.own - cpu.relay.own)}; upstream's own behind relay / postern ${fmtUs(cpu.relay.upstream)} / ${fmtUs(cpu.postern.upstream)}; upstream handshakes resumed: relay ${cpu.relay.resumed}, postern ${cpu.postern.resumed}${vsBaseline((n) => fmtUs(cpu[n]!.own))}` });
    const hs = await relay.ask<{ full: number; resumed: number; reused: number }>({ op: 'handshake-cpu', n: HANDSHAKES, rounds: LOGIN_ROUNDS });
    rows.push({ section: 'scale', measure: `upstream TLS handshake, client side: full / resumed (n=${HANDSHAKES} each)`, direct: '—', postern: `${fmtUs(hs.full)} / ${fmtUs(hs.resumed)}`,
      note: `CPU of a bare Node client per handshake toward the upstream (bench/scale-relay.ts), ECDSA P-256, TLS 1.3; full includes Node's name check, resumed the session's parse (setSession); resumed ${hs.reused}/${HANDSHAKES}` });
    // Logins per second with 1 and 2 workers: the `workers` section (bench/workers.ts).

    const room = Math.min(limits.clients - 256, limits.upstream - 256, Math.floor((Math.min(limits.relay, limits.postern) - 256) / 2));
    const stepList = steps(room);
    const memory: Record<Target['name'], Array<{ step: number; base: Memory; now: Memory }>> = { upstream: [], relay: [], baseline: [], postern: [] };
    let sessions: Session[] = [];
    for (const target of targets) {
      for (const s of sessions) s.socket.destroy();
      sessions = [];
      await new Promise((r) => setTimeout(r, 1_000));
      const base = await target.proc.ask<Memory>({ op: 'memory' });
      if (snapshots && target.name === 'postern') await postern.ask({ op: 'heap-snapshot', file: path.join(snapshots, 'postern-0.heapsnapshot') });
      for (const step of stepList) {
        await openSessions(sessions, step - sessions.length, target);
        const now = await target.proc.ask<Memory>({ op: 'memory' });
        memory[target.name].push({ step, base, now });
        if (snapshots && target.name === 'postern') await postern.ask({ op: 'heap-snapshot', file: path.join(snapshots, `postern-${step}.heapsnapshot`) });
      }
    }
    const wanted = process.env.BENCH_SCALE_STEPS ?? '1000,5000,10000';
    if (wanted !== 'none' && stepList.at(-1)! < Math.max(...wanted.split(',').map(Number))) {
      rows.push({ section: 'scale', measure: 'idle sessions, largest step', direct: '—', postern: stepList.at(-1)!.toLocaleString('en'),
        note: `descriptor limits: clients ${limits.clients}, upstream ${limits.upstream}, relay ${limits.relay}, postern ${limits.postern}; 2 per relayed session (hard limit, prlimit cannot raise it without CAP_SYS_RESOURCE)` });
    }
    stepList.forEach((step, i) => {
      const [u, r, p] = [memory.upstream[i]!, memory.relay[i]!, memory.postern[i]!];
      const per = (m: { base: Memory; now: Memory }, k: keyof Memory) => (m.now[k] - m.base[k]) / step / 1024;
      const native = (m: { base: Memory; now: Memory }) => per(m, 'rss') - per(m, 'heapTotal') - per(m, 'external');
      rows.push({ section: 'scale', measure: `RSS per idle session, ${step.toLocaleString('en')}: upstream alone / bare relay`, direct: `${kib(per(u, 'rss'))} / ${kib(per(r, 'rss'))}`, postern: kib(per(p, 'rss')),
        note: `TLS both sides, IDLE; postern − relay = ${kib(per(p, 'rss') - per(r, 'rss'))}; postern RSS ${mib(p.now.rss)} (before ${mib(p.base.rss)}); target ≤ 32 KiB${vsBaseline(() => kib(per(memory.baseline[i]!, 'rss')))}` });
      rows.push({ section: 'scale', measure: `V8 heap used / native per idle session, ${step.toLocaleString('en')}`, direct: `${kib(per(r, 'heapUsed'))} / ${kib(native(r))}`, postern: `${kib(per(p, 'heapUsed'))} / ${kib(native(p))}`,
        note: `direct = bare relay; native = RSS − V8 heap committed − external+arrayBuffers (postern: heap committed ${kib(per(p, 'heapTotal'))}, external ${kib(per(p, 'external'))}; upstream alone: heap ${kib(per(u, 'heapUsed'))}, native ${kib(native(u))})${vsBaseline(() => `${kib(per(memory.baseline[i]!, 'heapUsed'))} / ${kib(native(memory.baseline[i]!))}`)}` });
    });

    const poll = await postern.ask<{ costs: Array<{ watched: number; us: number }> }>({ op: 'poll-cost' });
    for (const { watched, us } of poll.costs) {
      rows.push({ section: 'scale', measure: `revocation poll, nothing changed, ${watched.toLocaleString('en')} watched`, direct: '—', postern: `${us.toFixed(2)} µs`, note: 'per 250 ms poll (bench/revocation.ts method)' });
    }
    if (sessions.length) {
      const byes = await revokeToBye(sessions, Math.min(REVOKES, PASSWORDS), async (password) => (await postern.ask<{ at: number }>({ op: 'revoke', password })).at);
      rows.push({ section: 'scale', measure: `revoke → BYE p50 / p99, ${sessions.length.toLocaleString('en')} sessions open`, direct: '—', postern: `${fmtMs(percentile(byes, 50))} / ${fmtMs(percentile(byes, 99))}`,
        note: `n=${byes.length}: ${REVOKES} revokes of 1 of ${PASSWORDS} passwords each, commit → BYE line at the client` });
    }
    for (const s of sessions) s.socket.destroy();
    return rows;
  } finally {
    await postern.ask({ op: 'stop' }).catch(() => undefined);
    await baseline?.ask({ op: 'stop' }).catch(() => undefined);
    await Promise.all([postern.exit(), relay.exit(), baseline?.exit()]);
    upstream.proc.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Memory {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
}

interface LoginCpu {
  /** The target process's CPU per login, ms. */
  own: number;
  /** The upstream's CPU per login meanwhile, ms (the target's own when the target is the upstream). */
  upstream: number;
  /** Upstream handshakes resumed / made meanwhile. */
  resumed: string;
}

/** Sequential logins to each target, in interleaved rounds; CPU per login of each process. */
async function cpuPerLogin(targets: readonly Target[], upstream: Child, profile?: string): Promise<Partial<Record<Target['name'], LoginCpu>> & Record<'upstream' | 'relay' | 'postern', LoginCpu>> {
  type Cpu = { cpu: number; handshakes?: number; resumed?: number };
  const sums = new Map(targets.map((t) => [t.name, { own: 0, upstream: 0, handshakes: 0, resumed: 0 }]));
  for (const target of targets) for (let i = 0; i < LOGIN_WARMUP; i++) await loginLogout(target, i);
  const profiled = targets.filter((t) => t.name === 'postern' || t.name === 'relay');
  if (profile) for (const t of profiled) await t.proc.ask({ op: 'profile-start' });
  for (let round = 0; round < LOGIN_ROUNDS; round++) {
    for (const target of targets) {
      const t0 = await target.proc.ask<Cpu>({ op: 'cpu' });
      const u0 = await upstream.ask<Cpu>({ op: 'cpu' });
      for (let i = 0; i < LOGINS / LOGIN_ROUNDS; i++) await loginLogout(target, i);
      const t1 = await target.proc.ask<Cpu>({ op: 'cpu' });
      const u1 = await upstream.ask<Cpu>({ op: 'cpu' });
      const sum = sums.get(target.name)!;
      sum.own += t1.cpu - t0.cpu;
      sum.upstream += u1.cpu - u0.cpu;
      sum.handshakes += u1.handshakes! - u0.handshakes!;
      sum.resumed += u1.resumed! - u0.resumed!;
    }
  }
  if (profile) for (const t of profiled) await t.proc.ask({ op: 'profile-stop', file: `${profile}-${t.name}.cpuprofile` });
  const result = {} as Record<Target['name'], LoginCpu>;
  for (const [name, sum] of sums) result[name] = { own: sum.own / LOGINS, upstream: sum.upstream / LOGINS, resumed: `${sum.resumed}/${sum.handshakes}` };
  return result;
}

const fmtUs = (ms: number) => `${(ms * 1000).toFixed(0)} µs`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const kib = (k: number) => `${k.toFixed(1)} KiB`;
