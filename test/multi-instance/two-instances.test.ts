/**
 * The multi-instance deployment (issue 14): two `postern serve` processes on one real PostgreSQL,
 * behind a real HAProxy (round robin, PROXY protocol v2), in front of a real Dovecot. Pinned:
 *  - sessions land on both instances, and each records the client's address, not HAProxy's;
 *  - a revoke by the CLI (a third process, on the same database) ends the sessions on both
 *    instances within a second (LISTEN/NOTIFY from the revoking transaction);
 *  - guess spreading attack: wrong passwords spread over both instances block the address after
 *    exactly `blockAfterFailures`, as with one instance (the throttle's counts are in the database);
 *  - PostgreSQL stopped: live sessions continue, a new login gets a temporary failure (never
 *    "wrong password"); PostgreSQL back: logins work again, and a revoke after the restart still
 *    ends a session within a second;
 *  - `kill -9` of one instance: new connections succeed through the other, nothing is lost.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AccountService } from '../../src/accounts/service.js';
import { readKeyFile } from '../../src/crypto/keys.js';
import { openPostgresStore } from '../../src/store/postgres/index.js';
import { BIN, createWorkspace, type Workspace } from '../helpers/cli.js';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startHaproxy, type HaproxyServer } from '../helpers/haproxy.js';
import { connectLineClient, type LineClient } from '../helpers/line-client.js';
import { assertNoSecrets } from '../helpers/log-sink.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { quoted } from '../imap/support.js';

const ALICE = { name: 'alice', password: 'alice-real-Secret-1' };
const BLOCK_AFTER = 6;
const WRONG = (i: number) => `wrong-password-${i}`;

type Line = Record<string, unknown>;

interface Instance {
  name: string;
  child: ChildProcess;
  stdout: string;
  stderr: string;
  lines(): Line[];
  events(event: string): Line[];
  port(): number;
}

let pgServer: PostgresServer;
let dbUrl: string;
let dovecot: DovecotServer;
let ws: Workspace;
let haproxy: HaproxyServer;
const instances: Instance[] = [];
const secrets: string[] = [ALICE.password];
const passwords: Array<{ password: string; publicId: string }> = [];

function startInstance(name: string): Instance {
  const child = spawn(process.execPath, [BIN, '-c', ws.configPath, 'serve'], { cwd: ws.dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, POSTERN_CONFIG: undefined } });
  const instance: Instance = {
    name, child, stdout: '', stderr: '',
    lines: () => instance.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line),
    events: (event) => instance.lines().filter((l) => l.event === event),
    port: () => instance.events('listener.started').find((e) => e.listener === 'imap.implicitTls')!.port as number,
  };
  child.stdout.setEncoding('utf8').on('data', (d: string) => (instance.stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (instance.stderr += d));
  return instance;
}

async function waitFor(predicate: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > until) throw new Error(`no ${what}; ${instances.map((i) => `${i.name}: ${i.stdout.slice(-1500)} ${i.stderr}`).join(' | ')}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Both instances' lines of one event, in the order they were written (pino's `time`). */
const all = (event: string): Line[] => instances.flatMap((i) => i.events(event).map((e): Line => ({ ...e, instance: i.name })))
  .sort((x, y) => String(x.time).localeCompare(String(y.time)));
const certPem = () => readFileSync(path.join(ws.dir, 'certs', 'postern.crt'), 'utf8');

async function client(localAddress: string): Promise<LineClient> {
  const c = await connectLineClient({ host: '127.0.0.1', port: haproxy.port('imap'), tls: { ca: certPem(), servername: 'localhost', localAddress } as tls.ConnectionOptions });
  await c.readLine();
  return c;
}

async function login(password: string, localAddress: string): Promise<{ c: LineClient; answer: string }> {
  const c = await client(localAddress);
  c.write(`a LOGIN ${quoted(ALICE.name)} ${quoted(password)}\r\n`);
  const answer = (await c.readUntil((l) => l.startsWith('a '), 10_000)).at(-1)!;
  return { c, answer };
}

/**
 * Logins in `loops` parallel loops until stopped: load on both instances (HAProxy takes turns).
 * Every answer is kept with its time; a client that could not even get one records an error.
 */
function loginLoad(password: string, localAddress: string, loops: number): { answers: Array<{ at: number; answer: string }>; stop(): Promise<void> } {
  let running = true;
  const answers: Array<{ at: number; answer: string }> = [];
  const done = Promise.all(Array.from({ length: loops }, async () => {
    while (running) {
      try {
        const { c, answer } = await login(password, localAddress);
        answers.push({ at: Date.now(), answer });
        c.close();
      } catch (err) {
        answers.push({ at: Date.now(), answer: `no answer: ${(err as Error).message}` });
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }));
  return { answers, stop: async () => { running = false; await done; } };
}

beforeAll(async () => {
  pgServer = await startPostgres();
  dbUrl = await pgServer.createDatabase();
  dovecot = await startDovecot({ users: [ALICE] });
  ws = await createWorkspace({
    database: { url: dbUrl },
    imap: {
      implicitTls: { host: '127.0.0.1', port: 0, proxyProtocol: { from: ['127.0.0.1'] } },
      upstream: { host: dovecot.host, port: dovecot.imapsPort, security: 'tls', caFile: dovecot.caFile },
    },
    auth: { throttle: { baseDelayMs: 0, maxDelayMs: 0, blockAfterFailures: BLOCK_AFTER, blockMs: 600_000, windowMs: 600_000 } },
  });
  const store = await openPostgresStore(dbUrl);
  try {
    const accounts = new AccountService(store, readKeyFile(path.join(ws.dir, 'data', 'postern.key')));
    await accounts.addAccount(ALICE.name, ALICE.password, { mode: 'password', secret: ALICE.password });
    for (let i = 0; i < 4; i++) passwords.push(await accounts.createPassword(ALICE.name, ALICE.password, { label: `device ${i}` }));
  } finally {
    await store.close();
  }
  secrets.push(...passwords.map((p) => p.password));
  instances.push(startInstance('a'), startInstance('b'));
  await waitFor(() => instances.every((i) => i.events('postern.started').length > 0), 'postern.started on both instances', 30_000);
  haproxy = await startHaproxy([{ name: 'imap', backendPort: 0, backendPorts: instances.map((i) => i.port()), proxy: 'v2' }]);
  // Both servers up in HAProxy's view (rise 2 × inter 300 ms) before the first client.
  await new Promise((r) => setTimeout(r, 1_000));
}, 90_000);

afterAll(async () => {
  for (const i of instances) if (i.child.exitCode === null && i.child.signalCode === null) i.child.kill('SIGKILL');
  await haproxy?.stop();
  ws?.cleanup();
  await dovecot?.stop();
  await pgServer?.stop();
  assertNoSecrets(instances.flatMap((i) => [i.stdout, i.stderr]), [...secrets, dbUrl, ...Array.from({ length: 10 }, (_, i) => WRONG(i))], 'serve output');
});

it('sessions land on both instances, with the client address; a CLI revoke ends those on both within a second', async () => {
  const target = passwords[0]!;
  const sessions: LineClient[] = [];
  for (let i = 0; i < 4; i++) {
    const { c, answer } = await login(target.password, '127.0.0.2');
    expect(answer).toMatch(/^a OK /);
    sessions.push(c);
  }
  await waitFor(() => all('session.started').length >= 4, 'four session.started');
  expect(new Set(all('session.started').map((e) => e.instance))).toEqual(new Set(['a', 'b']));
  // The address PROXY v2 carried, not HAProxy's 127.0.0.1.
  expect(new Set(all('session.started').map((e) => e.ip))).toEqual(new Set(['127.0.0.2']));

  const revoke = await ws.run(['password', 'revoke', ALICE.name, target.publicId]);
  expect(revoke.code, revoke.stderr).toBe(0);
  const committed = Date.now();
  const closedAt = await Promise.all(sessions.map((c) => c.closed.then(() => Date.now())));
  for (const at of closedAt) expect(at - committed).toBeLessThan(1_000);
  await waitFor(() => all('session.revoked').length >= 4, 'four session.revoked');
  expect(new Set(all('session.revoked').map((e) => e.instance))).toEqual(new Set(['a', 'b']));
}, 60_000);

it('guess spreading attack: failures spread over both instances block the address after blockAfterFailures', async () => {
  const attacker = '127.0.0.5';
  for (let i = 0; i < BLOCK_AFTER; i++) {
    const { c, answer } = await login(WRONG(i), attacker);
    expect(answer).toBe('a NO [AUTHENTICATIONFAILED] Authentication failed.');
    c.close();
  }
  const refused = () => all('auth.refused').filter((e) => e.ip === attacker);
  await waitFor(() => refused().length >= BLOCK_AFTER, 'the failures');
  expect(new Set(refused().map((e) => e.instance))).toEqual(new Set(['a', 'b']));
  expect(all('auth.blocked').filter((e) => e.ip === attacker)).toHaveLength(1);
  // Blocked on both instances: the right password is refused unchecked.
  for (let i = 0; i < 2; i++) {
    const { c, answer } = await login(passwords[1]!.password, attacker);
    expect(answer).toBe('a NO [AUTHENTICATIONFAILED] Authentication failed.');
    c.close();
  }
  await waitFor(() => refused().length >= BLOCK_AFTER + 2, 'the throttled refusals');
  expect(refused().slice(BLOCK_AFTER).map((e) => e.reason)).toEqual(['throttled', 'throttled']);
  expect(new Set(refused().slice(BLOCK_AFTER).map((e) => e.instance))).toEqual(new Set(['a', 'b']));
}, 60_000);

it('PostgreSQL restarted under load: live sessions continue, new logins fail temporarily (never "wrong password"); back: both instances log in again and a revoke still bites within a second', async () => {
  const live = await login(passwords[2]!.password, '127.0.0.3');
  expect(live.answer).toMatch(/^a OK /);
  // Load through both instances for the whole outage and recovery, from an address of its own.
  const load = loginLoad(passwords[2]!.password, '127.0.0.6', 4);
  const sessionsOf = (i: Instance) => i.events('session.started').filter((e) => e.passwordId === passwords[2]!.publicId).length;
  let back: number;
  let startedBeforeBack: number[];
  try {
    await waitFor(() => load.answers.filter((a) => /^a OK /.test(a.answer)).length >= 4, 'logins under load before the stop');
    await pgServer.stopServer();
    try {
      live.c.write('b NOOP\r\n');
      expect((await live.c.readUntil((l) => l.startsWith('b '), 10_000)).at(-1)).toMatch(/^b OK /);
      for (let i = 0; i < 2; i++) {
        const { c, answer } = await login(passwords[2]!.password, '127.0.0.3');
        expect(answer).toMatch(/^a NO \[UNAVAILABLE\] /);
        c.close();
      }
      // The load met the outage too before the server comes back.
      await waitFor(() => load.answers.some((a) => a.answer.startsWith('a NO [UNAVAILABLE] ')), 'the load refused temporarily');
    } finally {
      await pgServer.start();
    }
    back = Date.now();
    startedBeforeBack = instances.map(sessionsOf);
    // Recovered: the load's logins succeed again, on both instances (each logs new sessions).
    await waitFor(() => load.answers.filter((a) => a.at > back && /^a OK /.test(a.answer)).length >= 8, 'logins under load after the restart', 20_000);
    await waitFor(() => instances.every((i, n) => sessionsOf(i) > startedBeforeBack[n]!), 'new sessions on both instances', 20_000);
  } finally {
    await load.stop();
  }
  // A database outage is never a wrong password (a client would discard its saved password) nor a dropped client.
  const kinds = new Set(load.answers.map((a) => a.answer.replace(/^(a OK|a NO \[UNAVAILABLE\]).*$/, '$1')));
  expect([...kinds].sort()).toEqual(['a NO [UNAVAILABLE]', 'a OK']);
  const again = await login(passwords[2]!.password, '127.0.0.3');
  expect(again.answer).toMatch(/^a OK /);
  // Both change feeds have reconnected (each logs its return) before the revoke is timed.
  await waitFor(() => all('store.change_feed_restored').length >= 2, 'both change feeds back', 20_000);
  const revoke = await ws.run(['password', 'revoke', ALICE.name, passwords[2]!.publicId]);
  expect(revoke.code, revoke.stderr).toBe(0);
  const committed = Date.now();
  const closedAt = await Promise.all([live.c, again.c].map((c) => c.closed.then(() => Date.now())));
  for (const at of closedAt) expect(at - committed).toBeLessThan(1_000);
}, 120_000);

it('kill -9 of one instance: new connections succeed through the other', async () => {
  const [victim, survivor] = instances;
  victim!.child.kill('SIGKILL');
  await new Promise<void>((resolve) => victim!.child.once('exit', () => resolve()));
  // Counted by this test's password alone, so lines of earlier tests still in the pipe do not count.
  const mine = () => survivor!.events('session.started').filter((e) => e.passwordId === passwords[3]!.publicId).length;
  for (let i = 0; i < 4; i++) {
    const { c, answer } = await login(passwords[3]!.password, '127.0.0.4');
    expect(answer).toMatch(/^a OK /);
    c.close();
  }
  // The survivor's log lines reach this process through a pipe, after the client already has its answer.
  await waitFor(() => mine() >= 4, 'the survivor logs four sessions');
  expect(mine()).toBe(4);
  // Nothing lost: the survivor's use of the password reaches the shared database (its queued write).
  const store = await openPostgresStore(dbUrl);
  try {
    const until = Date.now() + 5_000;
    let used = (await store.passwords.findByPublicId(passwords[3]!.publicId))!;
    while (used.lastUsedAddress !== '127.0.0.4' && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      used = (await store.passwords.findByPublicId(passwords[3]!.publicId))!;
    }
    expect(used).toMatchObject({ revokedAt: null, lastUsedProtocol: 'imap', lastUsedAddress: '127.0.0.4' });
  } finally {
    await store.close();
  }
}, 60_000);
