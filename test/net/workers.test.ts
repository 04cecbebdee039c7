/**
 * `serve` with two worker processes (config `workers: 2`), through the real binary, in front of a
 * real Dovecot. Pinned:
 *  - the start-up lines are printed once, whatever the number of workers;
 *  - connections land on both workers (each line a worker writes names it: `worker`);
 *  - a revoke by the CLI (another process) ends the sessions on every worker within a second:
 *    each worker has its own revocation watcher;
 *  - guess spreading attack: failures from one address spread over the workers are counted as
 *    one (the shared throttle): the address is blocked after exactly `blockAfterFailures`, as
 *    with one process, and the correct password from it is refused from then on;
 *  - a killed worker is replaced (logged), and new connections work on both workers again;
 *  - SIGHUP reaches every worker: every new handshake, on either worker, shows the new certificate;
 *  - SIGTERM stops the primary and every worker, status 0;
 *  - a port already taken: status 1 and the one line of a single process, no worker left behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AccountService } from '../../src/accounts/service.js';
import { readKeyFile } from '../../src/crypto/keys.js';
import { generateSelfSigned } from '../../src/net/certs.js';
import { BIN, createWorkspace, type Workspace } from '../helpers/cli.js';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { connectLineClient, type LineClient } from '../helpers/line-client.js';
import { assertNoSecrets } from '../helpers/log-sink.js';
import { openTestStore } from '../helpers/test-database.js';
import { quoted } from '../imap/support.js';

const ALICE = { name: 'alice', password: 'alice-real-Secret-1' };
const BLOCK_AFTER = 6;
const WRONG = (i: number) => `wrong-password-${i}`;

let dovecot: DovecotServer;
let ws: Workspace;
let serve: ChildProcess;
let stdout = '';
let stderr = '';
let exited: Promise<number | null>;
const secrets: string[] = [ALICE.password];
const passwords: Array<{ password: string; publicId: string }> = [];

type Line = Record<string, unknown>;
const lines = (): Line[] => stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);
const events = (event: string): Line[] => lines().filter((l) => l.event === event);

async function waitFor(predicate: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!predicate()) {
    if (serve.exitCode !== null) throw new Error(`serve exited (${serve.exitCode}) waiting for ${what}: ${stderr}`);
    if (Date.now() > until) throw new Error(`no ${what} in: ${stdout.slice(-3000)} ${stderr}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const port = () => events('listener.started').find((e) => e.listener === 'imap.implicitTls')!.port as number;
const certPem = () => readFileSync(path.join(ws.dir, 'certs', 'postern.crt'), 'utf8');

/** Worker processes of the running serve: children of its pid (read from /proc). */
function workerPids(): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === serve.pid) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

async function client(localAddress = '127.0.0.1'): Promise<LineClient> {
  const c = await connectLineClient({ host: '127.0.0.1', port: port(), tls: { ca: certPem(), servername: 'localhost', localAddress } as tls.ConnectionOptions });
  await c.readLine();
  return c;
}

/** LOGIN on a fresh connection; the tagged answer. */
async function login(password: string, localAddress?: string): Promise<{ c: LineClient; answer: string }> {
  const c = await client(localAddress);
  c.write(`a LOGIN ${quoted(ALICE.name)} ${quoted(password)}\r\n`);
  const answer = (await c.readUntil((l) => l.startsWith('a '), 10_000)).at(-1)!;
  return { c, answer };
}

beforeAll(async () => {
  dovecot = await startDovecot({ users: [ALICE] });
  ws = await createWorkspace({
    workers: 2,
    imap: {
      implicitTls: { host: '127.0.0.1', port: 0 },
      upstream: { host: dovecot.host, port: dovecot.imapsPort, security: 'tls', caFile: dovecot.caFile },
    },
    auth: { throttle: { baseDelayMs: 0, maxDelayMs: 0, blockAfterFailures: BLOCK_AFTER, blockMs: 600_000, windowMs: 600_000 } },
  });
  const store = await openTestStore(ws);
  const accounts = new AccountService(store, readKeyFile(path.join(ws.dir, 'data', 'postern.key')));
  await accounts.addAccount(ALICE.name, ALICE.password, { mode: 'password', secret: ALICE.password });
  for (let i = 0; i < 3; i++) passwords.push(await accounts.createPassword(ALICE.name, ALICE.password, { label: `device ${i}` }));
  await store.close();
  secrets.push(...passwords.map((p) => p.password));
  serve = spawn(process.execPath, [BIN, '-c', ws.configPath, 'serve'], { cwd: ws.dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, POSTERN_CONFIG: undefined } });
  serve.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  serve.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  exited = new Promise((resolve) => serve.on('close', (code) => resolve(code)));
  await waitFor(() => events('postern.started').length > 0, 'postern.started', 30_000);
}, 60_000);

afterAll(async () => {
  if (serve && serve.exitCode === null && serve.signalCode === null) {
    serve.kill('SIGKILL');
    for (const pid of workerPids()) process.kill(pid, 'SIGKILL');
  }
  ws?.cleanup();
  await dovecot?.stop();
  assertNoSecrets([stdout, stderr], [...secrets, ...Array.from({ length: 10 }, (_, i) => WRONG(i))], 'serve output');
});

it('prints the start-up lines once and runs two workers', () => {
  expect(events('listener.started').map((e) => e.listener)).toEqual(['imap.implicitTls']);
  expect(events('postern.started')).toHaveLength(1);
  expect(events('postern.started')[0]).toMatchObject({ workers: 2, listeners: 1 });
  expect(workerPids()).toHaveLength(2);
});

it('sessions land on both workers; a revoke by the CLI ends those on every worker within a second', async () => {
  const target = passwords[0]!;
  const sessions: LineClient[] = [];
  for (let i = 0; i < 4; i++) {
    const { c, answer } = await login(target.password);
    expect(answer).toMatch(/^a OK /);
    sessions.push(c);
  }
  await waitFor(() => events('session.started').length >= 4, 'four session.started');
  expect(new Set(events('session.started').map((e) => e.worker))).toEqual(new Set([1, 2]));

  const revoke = await ws.run(['password', 'revoke', ALICE.name, target.publicId]);
  expect(revoke.code, revoke.stderr).toBe(0);
  const committed = Date.now();
  const closedAt = await Promise.all(sessions.map((c) => c.closed.then(() => Date.now())));
  // Generous, not a benchmark: each worker polls every 250 ms.
  for (const at of closedAt) expect(at - committed).toBeLessThan(1_000);
  await waitFor(() => events('session.revoked').length >= 4, 'four session.revoked');
  expect(new Set(events('session.revoked').map((e) => e.worker))).toEqual(new Set([1, 2]));
}, 30_000);

it('guess spreading attack: failures spread over both workers block the address after blockAfterFailures, as in one process', async () => {
  const attacker = '127.0.0.5';
  const good = passwords[1]!.password;
  for (let i = 0; i < BLOCK_AFTER; i++) {
    const { c, answer } = await login(WRONG(i), attacker);
    expect(answer).toBe('a NO [AUTHENTICATIONFAILED] Authentication failed.');
    c.close();
  }
  const refused = () => events('auth.refused').filter((e) => e.ip === attacker);
  await waitFor(() => refused().length >= BLOCK_AFTER, 'the failures');
  // Spread: both workers saw some of them, neither enough on its own to block.
  expect(new Set(refused().map((e) => e.worker))).toEqual(new Set([1, 2]));
  expect(events('auth.blocked').filter((e) => e.ip === attacker)).toHaveLength(1);
  // Blocked on every worker: even the right password is refused, unchecked.
  for (let i = 0; i < 2; i++) {
    const { c, answer } = await login(good, attacker);
    expect(answer).toBe('a NO [AUTHENTICATIONFAILED] Authentication failed.');
    c.close();
  }
  await waitFor(() => refused().length >= BLOCK_AFTER + 2, 'the throttled refusals');
  expect(refused().map((e) => e.reason)).toEqual([...Array<string>(BLOCK_AFTER).fill('bad_password'), 'throttled', 'throttled']);
  expect(new Set(refused().slice(BLOCK_AFTER).map((e) => e.worker))).toEqual(new Set([1, 2]));
  // Another address is not affected.
  const { c, answer } = await login(good, '127.0.0.6');
  expect(answer).toMatch(/^a OK /);
  c.close();
}, 60_000);

it('a killed worker is replaced and new connections work on both workers', async () => {
  const [victim] = workerPids();
  process.kill(victim!, 'SIGKILL');
  await waitFor(() => events('worker.replaced').length === 1, 'worker.replaced');
  expect(events('worker.exited')[0]).toMatchObject({ signal: 'SIGKILL' });
  const pids = workerPids();
  expect(pids).toHaveLength(2);
  expect(pids).not.toContain(victim);
  const before = events('session.started').length;
  for (let i = 0; i < 4; i++) {
    const { c, answer } = await login(passwords[2]!.password);
    expect(answer).toMatch(/^a OK /);
    c.close();
  }
  await waitFor(() => events('session.started').length >= before + 4, 'four more session.started');
  expect(new Set(events('session.started').slice(before).map((e) => e.worker))).toEqual(new Set([1, 2]));
}, 30_000);

it('SIGHUP reloads the certificate in every worker', async () => {
  const renewed = generateSelfSigned(['localhost', '127.0.0.1']);
  writeFileSync(path.join(ws.dir, 'certs', 'postern.crt'), renewed.certPem);
  writeFileSync(path.join(ws.dir, 'certs', 'postern.key'), renewed.keyPem);
  serve.kill('SIGHUP');
  await waitFor(() => events('tls.reloaded').length >= 2, 'tls.reloaded from both workers');
  expect(new Set(events('tls.reloaded').map((e) => e.worker))).toEqual(new Set([1, 2]));
  const expected = createHash('sha256').update(new X509Certificate(renewed.certPem).raw).digest('hex');
  for (let i = 0; i < 4; i++) expect(await fingerprint(port())).toBe(expected);
});

it('SIGTERM stops the primary and every worker with status 0', async () => {
  const pids = workerPids();
  serve.kill('SIGTERM');
  expect(await exited).toBe(0);
  expect(events('postern.stopped')).toHaveLength(1);
  expect(stderr).toBe('');
  for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
}, 20_000);

it('a port already taken: status 1 with the one line of a single process', async () => {
  const occupier = net.createServer((s) => s.destroy());
  await new Promise<void>((resolve) => occupier.listen(0, '127.0.0.1', resolve));
  const taken = (occupier.address() as net.AddressInfo).port;
  const other = await createWorkspace({ workers: 2, dav: { listener: { host: '127.0.0.1', port: taken }, caldavUpstream: 'https://127.0.0.1:9/' } });
  try {
    const r = await other.run(['serve'], { timeoutMs: 30_000 });
    expect(r.stderr).toBe(`postern: dav.listener: cannot listen on 127.0.0.1:${taken}: address already in use\n`);
    expect(r.code).toBe(1);
    expect(r.stdout).not.toMatch(/listener\.started|worker\.exited/);
  } finally {
    other.cleanup();
    await new Promise<void>((resolve) => occupier.close(() => resolve()));
  }
}, 40_000);

function fingerprint(p: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: p, rejectUnauthorized: false }, () => {
      const raw = socket.getPeerCertificate().raw;
      socket.destroy();
      resolve(createHash('sha256').update(raw).digest('hex'));
    });
    socket.on('error', reject);
  });
}
