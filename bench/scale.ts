/**
 * Scale section (issue 15): what one idle session and one login cost postern itself. Three
 * processes, so each figure is one process's own: postern (a child, its descriptor limit raised
 * with prlimit), a minimal TLS IMAP upstream (a child: greeting, AUTHENTICATE/LOGIN OK, IDLE,
 * LOGOUT, nothing else, so only postern's cost counts) and the clients (this process).
 *
 * - RSS and V8 heap per idle session: TLS on both sides, logged in, in IDLE, at 1k and 5k (10k
 *   when every descriptor limit allows), the difference from postern before the first session,
 *   after two full GCs, divided by the sessions.
 * - postern CPU per login (connect, TLS, LOGIN, upstream TLS + LOGIN, LOGOUT; user + system of the
 *   postern process over sequential logins); "direct" is the upstream's own CPU per login.
 * - the revocation poll's cost at 1k and 10k watched passwords (bench/revocation.ts's method),
 *   and revoke → BYE p50/p99 at the client, end to end, with the idle sessions open.
 * Certificates are ECDSA P-256 (openssl), as a current ACME certificate is: with the test
 * harness's RSA-2048 certificate the server-side signature alone costs ~1 ms of a login.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { percentile, fmtMs, type BenchRow } from './table.js';

const STEPS = [1_000, 5_000, 10_000];
const LOGINS = 300;
const LOGIN_WARMUP = 30;
const PASSWORDS = 20;
const REVOKES = 10;
const CLIENT_ADDRESSES = 50;
const OPEN_CONCURRENCY = 40;
/** Descriptors asked for postern: two per relayed session, and some. */
const POSTERN_NOFILE = 2 * STEPS.at(-1)! + 4_096;
const SELF = fileURLToPath(import.meta.url);

type Reply = Record<string, unknown> & { id: number };

/** A child speaking request/reply over the IPC channel. */
class Child {
  private next = 0;
  private readonly waiting = new Map<number, (r: Reply) => void>();
  constructor(readonly proc: ChildProcess) {
    proc.on('message', (m: Reply) => this.waiting.get(m.id)?.(m));
  }
  ask<T = Reply>(message: Record<string, unknown>): Promise<T> {
    const id = ++this.next;
    return new Promise((resolve, reject) => {
      const onExit = (code: number) => reject(new Error(`bench child exited with ${code} during ${String(message.op)}`));
      this.proc.once('exit', onExit);
      this.waiting.set(id, (r) => {
        this.proc.off('exit', onExit);
        this.waiting.delete(id);
        if (typeof r.error === 'string') reject(new Error(r.error));
        else resolve(r as T);
      });
      this.proc.send({ ...message, id });
    });
  }
}

function spawnChild(role: string, env: Record<string, string>): Child {
  const proc = fork(SELF, [role], { execArgv: ['--expose-gc', '--import', 'tsx'], env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Child(proc);
}

/** Raises a child's descriptor limit (prlimit(1), Linux); returns the limit it has. */
function raiseNofile(pid: number, wanted: number): number {
  try {
    execFileSync('prlimit', [`--pid=${pid}`, `--nofile=${wanted}:${wanted}`], { stdio: 'ignore' });
  } catch {
    // Not allowed (no CAP_SYS_RESOURCE above the hard limit): the sessions stop at what it has.
  }
  const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
  return Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1] ?? 1024);
}

function ecdsaCert(dir: string): { cert: string; key: string; pem: string } {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30',
    '-keyout', key, '-out', cert, '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key, pem: readFileSync(cert, 'utf8') };
}

export async function run(): Promise<BenchRow[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-bench-scale-'));
  const certs = ecdsaCert(dir);
  const upstream = spawnChild('upstream', { BENCH_CERT: certs.cert, BENCH_KEY: certs.key });
  const postern = spawnChild('postern', { BENCH_CERT: certs.cert, BENCH_KEY: certs.key });
  try {
    const ownLimit = Number(/^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 1024);
    const upstreamLimit = raiseNofile(upstream.proc.pid!, STEPS.at(-1)! + 1_024);
    const posternLimit = raiseNofile(postern.proc.pid!, POSTERN_NOFILE);
    const { port: upstreamPort } = await upstream.ask<{ port: number }>({ op: 'listen' });
    const started = await postern.ask<{ port: number; passwords: string[] }>({ op: 'start', upstreamPort });
    const target = { port: started.port, ca: certs.pem };
    const rows: BenchRow[] = [];

    const cpu = await cpuPerLogin(postern, upstream, target, started.passwords[0]!);
    rows.push({ section: 'scale', measure: `postern CPU per login (n=${LOGINS}, sequential)`, direct: fmtUs(cpu.upstream), postern: fmtUs(cpu.postern),
      note: `user+system of the process; connect, TLS, LOGIN, upstream TLS + LOGIN, LOGOUT; direct = the minimal upstream's own; ${cpu.resumedShare} of upstream handshakes resumed` });
    // Logins per second with 1 and 2 workers: the `workers` section (bench/workers.ts).

    const room = Math.min(ownLimit - 256, upstreamLimit - 256, Math.floor((posternLimit - 256) / 2));
    const sessions: Session[] = [];
    const base = await postern.ask<Memory>({ op: 'memory' });
    for (const step of STEPS) {
      if (step > room) {
        rows.push({ section: 'scale', measure: `idle sessions, ${step.toLocaleString('en')}`, direct: '—', postern: 'skipped', note: `descriptor limits allow ~${room} (clients ${ownLimit}, upstream ${upstreamLimit}, postern ${posternLimit}; 2 per session)` });
        continue;
      }
      await openSessions(sessions, step - sessions.length, target, started.passwords);
      const now = await postern.ask<Memory>({ op: 'memory' });
      const per = (a: number, b: number) => `${((a - b) / step / 1024).toFixed(1)} KiB`;
      rows.push({ section: 'scale', measure: `RSS / V8 heap per idle session, ${step.toLocaleString('en')}`, direct: '—', postern: `${per(now.rss, base.rss)} / ${per(now.heapUsed, base.heapUsed)}`,
        note: `TLS both sides, IDLE; RSS ${mib(now.rss)} (idle ${mib(base.rss)}), external+arrayBuffers ${per(now.external, base.external)}; target ≤ 32 KiB` });
    }

    const poll = await postern.ask<{ costs: Array<{ watched: number; us: number }> }>({ op: 'poll-cost' });
    for (const { watched, us } of poll.costs) {
      rows.push({ section: 'scale', measure: `revocation poll, nothing changed, ${watched.toLocaleString('en')} watched`, direct: '—', postern: `${us.toFixed(2)} µs`, note: 'per 250 ms poll (bench/revocation.ts method)' });
    }
    const byes = await revokeToBye(postern, sessions, started.passwords);
    rows.push({ section: 'scale', measure: `revoke → BYE p50 / p99, ${sessions.length.toLocaleString('en')} sessions open`, direct: '—', postern: `${fmtMs(percentile(byes, 50))} / ${fmtMs(percentile(byes, 99))}`,
      note: `n=${byes.length}: ${REVOKES} revokes of 1 of ${PASSWORDS} passwords each, commit → BYE line at the client` });
    for (const s of sessions) s.socket.destroy();
    return rows;
  } finally {
    await postern.ask({ op: 'stop' }).catch(() => undefined);
    postern.proc.kill();
    upstream.proc.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Memory {
  rss: number;
  heapUsed: number;
  external: number;
}

interface Session {
  socket: tls.TLSSocket;
  password: number;
  bye: Promise<number>;
}

interface Target {
  port: number;
  ca: string;
}

/** Lines from a socket, awaited one predicate at a time. */
function lineReader(socket: tls.TLSSocket): (until: (line: string) => boolean) => Promise<string> {
  let buffer = '';
  let waiter: { until: (l: string) => boolean; resolve: (l: string) => void } | undefined;
  const lines: string[] = [];
  const pump = () => {
    while (waiter && lines.length) {
      const line = lines.shift()!;
      if (waiter.until(line)) {
        const w = waiter;
        waiter = undefined;
        w.resolve(line);
      }
    }
  };
  socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('latin1');
    let i: number;
    while ((i = buffer.indexOf('\r\n')) >= 0) {
      lines.push(buffer.slice(0, i));
      buffer = buffer.slice(i + 2);
    }
    pump();
  });
  return (until) => new Promise((resolve) => {
    waiter = { until, resolve };
    pump();
  });
}

function connect(target: Target, i: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: target.port, ca: target.ca, servername: 'localhost', localAddress: `127.0.2.${(i % CLIENT_ADDRESSES) + 1}` } as tls.ConnectionOptions);
    socket.once('error', reject);
    socket.once('secureConnect', () => resolve(socket));
  });
}

async function login(target: Target, i: number, password: string): Promise<{ socket: tls.TLSSocket; read: ReturnType<typeof lineReader> }> {
  const socket = await connect(target, i);
  const read = lineReader(socket);
  await read((l) => l.startsWith('* OK'));
  socket.write(`a LOGIN bench ${password}\r\n`);
  const answer = await read((l) => l.startsWith('a '));
  if (!answer.startsWith('a OK')) throw new Error(`login failed: ${answer}`);
  return { socket, read };
}

async function cpuPerLogin(postern: Child, upstream: Child, target: Target, password: string): Promise<{ postern: number; upstream: number; resumedShare: string }> {
  const once = async (i: number) => {
    const { socket, read } = await login(target, i, password);
    socket.write('z LOGOUT\r\n');
    await read((l) => l.startsWith('z '));
    socket.destroy();
  };
  for (let i = 0; i < LOGIN_WARMUP; i++) await once(i);
  const p0 = await postern.ask<{ cpu: number }>({ op: 'cpu' });
  const u0 = await upstream.ask<{ cpu: number; handshakes: number; resumed: number }>({ op: 'cpu' });
  for (let i = 0; i < LOGINS; i++) await once(i);
  const p1 = await postern.ask<{ cpu: number }>({ op: 'cpu' });
  const u1 = await upstream.ask<{ cpu: number; handshakes: number; resumed: number }>({ op: 'cpu' });
  const handshakes = u1.handshakes - u0.handshakes;
  const resumed = u1.resumed - u0.resumed;
  return { postern: (p1.cpu - p0.cpu) / LOGINS, upstream: (u1.cpu - u0.cpu) / LOGINS, resumedShare: `${resumed}/${handshakes}` };
}

async function openSessions(into: Session[], count: number, target: Target, passwords: readonly string[]): Promise<void> {
  let next = into.length;
  const end = into.length + count;
  const worker = async () => {
    while (next < end) {
      const i = next++;
      const password = i % passwords.length;
      const { socket, read } = await login(target, i, passwords[password]!);
      socket.write('b IDLE\r\n');
      await read((l) => l.startsWith('+'));
      into.push({ socket, password, bye: read((l) => l.startsWith('* BYE')).then(() => performance.timeOrigin + performance.now()) });
    }
  };
  await Promise.all(Array.from({ length: OPEN_CONCURRENCY }, worker));
  // Let the handshakes' and logins' garbage settle before measuring.
  await new Promise((r) => setTimeout(r, 1_000));
}

async function revokeToBye(postern: Child, sessions: Session[], passwords: readonly string[]): Promise<number[]> {
  const latencies: number[] = [];
  for (let p = 0; p < Math.min(REVOKES, passwords.length); p++) {
    await new Promise((r) => setTimeout(r, Math.random() * 250));
    const { at } = await postern.ask<{ at: number }>({ op: 'revoke', password: p });
    const affected = sessions.filter((s) => s.password === p);
    const byes = await Promise.all(affected.map((s) => s.bye));
    for (const t of byes) latencies.push(t - at);
  }
  return latencies.sort((a, b) => a - b);
}

const fmtUs = (ms: number) => `${(ms * 1000).toFixed(0)} µs`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

/** The child roles: imported lazily so the parent loads neither postern nor the upstream. */
if (process.argv[2] === 'postern' || process.argv[2] === 'upstream') {
  const role = process.argv[2];
  void import(role === 'postern' ? './scale-postern.js' : './scale-upstream.js').then((m: { serve: (ask: (handler: (m: Reply) => Promise<Record<string, unknown>>) => void) => void }) => {
    m.serve((handler) => {
      process.on('message', (message: Reply) => {
        handler(message).then(
          (reply) => process.send!({ ...reply, id: message.id }),
          (err: unknown) => process.send!({ id: message.id, error: err instanceof Error ? err.stack ?? err.message : String(err) }),
        );
      });
    });
  });
}
