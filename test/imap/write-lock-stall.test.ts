// Attack: freeze the whole proxy by holding SQLite's write lock (issue 9, item 4). better-sqlite3
// is synchronous, so a write that waits for the lock waits on the event loop: with another process
// holding a write transaction, each failed login (which records a history event) used to stall every
// relayed session and the revocation watcher for up to the 5 s busy timeout. Pins, against a real
// Dovecot, while a separate process holds BEGIN IMMEDIATE for 10 s:
// - relayed NOOPs on an established session keep their round trips under 50 ms (the bound;
//   98 % of them, the rest under 500 ms, for a loaded CI machine),
//   measured by a client on its own thread, so that a stalled proxy cannot stall the stopwatch;
// - failed logins (wrong password, primary password, unknown user) and a good login are answered
//   on time, not ~5 s later, so reads on the login path do not wait for the writer either;
// - nothing is written while the lock is held, and after its release every queued record lands;
// - a revoke committed right after the release signs the live session out (`* BYE`) within 1 s.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PRIMARY_PASSWORD_REFUSED_TEXT } from '../../src/auth/types.js';
import { stopChild } from '../helpers/child.js';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import type { LineClient } from '../helpers/line-client.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { engine } from '../helpers/test-database.js';
import { imapConfig, quoted, rawTls, sleep } from './support.js';

const ALICE = { name: 'alice', password: 'alice-real-Secret-8' };
const LOCK_MS = 10_000;
const NOOP_BOUND_MS = 50;
/** Ten times below one wait for the lock (the 5 s busy timeout). */
const NOOP_STRAGGLER_BOUND_MS = 500;
/** Far below the 5 s busy timeout a blocked write used to cost; generous for a loaded machine. */
const ANSWER_BOUND_MS = 2_000;

let dovecot: DovecotServer;
let postern: PosternHarness;

beforeAll(async () => {
  dovecot = await startDovecot({ users: [ALICE] });
  postern = await startPostern({ config: { imap: imapConfig(dovecot, 'tls') }, secrets: [ALICE.password] });
  await postern.addUser('alice', ALICE.password);
});

afterAll(async () => {
  await postern?.stop();
  await dovecot?.stop();
});

/**
 * Another process on the same database, as an admin command or anyone with the file would be:
 * `lock` takes the write lock and keeps it, `release-and-revoke <id>` rolls back and at once
 * revokes a password through the same AccountService the CLI uses.
 */
async function startLockHolder(): Promise<{ send(command: string): Promise<string>; stop(): Promise<void> }> {
  const script = `
    import { createInterface } from 'node:readline';
    import { openStore, sqliteDb } from './src/store/index.js';
    import { AccountService } from './src/accounts/service.js';
    import { readKeyFile } from './src/crypto/keys.js';
    const store = openStore(process.argv[1]);
    const accounts = new AccountService(store, readKeyFile(process.argv[2]));
    console.log('ready');
    for await (const line of createInterface({ input: process.stdin })) {
      const [command, arg] = line.split(' ');
      if (command === 'lock') {
        sqliteDb(store).exec('BEGIN IMMEDIATE');
        console.log('locked');
      } else if (command === 'release-and-revoke') {
        sqliteDb(store).exec('ROLLBACK');
        await accounts.revokePassword('alice', arg);
        console.log('revoked');
      }
    }
    await store.close();`;
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, postern.dbPath, postern.keyFile], { cwd: process.cwd() });
  child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const { value, done } = await lines.next();
    if (done) throw new Error('the lock holder exited');
    return value;
  };
  expect(await next()).toBe('ready');
  return {
    async send(command) {
      child.stdin.write(`${command}\n`);
      return next();
    },
    async stop() {
      child.stdin.end();
      await stopChild(child);
    },
  };
}

/**
 * An IMAP session on a worker thread (its own event loop): logs in, selects INBOX, then on `run`
 * sends one NOOP every `paceMs` for `durationMs` and reports each round trip; reports a BYE with
 * the wall-clock time it arrived.
 */
const NOOP_CLIENT = `
  const { parentPort, workerData: w } = require('node:worker_threads');
  const tls = require('node:tls');
  const socket = tls.connect({ host: '127.0.0.1', port: w.port, ca: w.ca, servername: 'localhost' });
  let buffer = '';
  let waiter = null;
  const lines = [];
  socket.on('data', (chunk) => {
    buffer += chunk.toString('latin1');
    let end;
    while ((end = buffer.indexOf('\\r\\n')) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (line.startsWith('* BYE')) {
        sawBye = true;
        parentPort.postMessage({ bye: line, at: Date.now() });
      }
      lines.push(line);
    }
    if (waiter) waiter();
  });
  // After a revocation's BYE postern resets the connection (issue 9 item 7): that reset is the cut, not a failure.
  let sawBye = false;
  socket.on('error', (err) => {
    if (sawBye && err.code === 'ECONNRESET') return;
    parentPort.postMessage({ error: err.message });
  });
  socket.on('close', () => parentPort.postMessage({ closed: true }));
  const until = async (tag) => {
    for (;;) {
      const i = lines.findIndex((l) => l.startsWith(tag));
      if (i >= 0) return lines.splice(0, i + 1).at(-1);
      await new Promise((resolve) => (waiter = resolve));
    }
  };
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  (async () => {
    await until('* OK');
    socket.write('a LOGIN alice "' + w.password + '"\\r\\n');
    const login = await until('a ');
    socket.write('b SELECT INBOX\\r\\n');
    await until('b ');
    parentPort.postMessage({ login });
    await new Promise((resolve) => parentPort.once('message', resolve));
    const rtts = [];
    const stop = Date.now() + w.durationMs;
    for (let i = 0; Date.now() < stop; i++) {
      const started = performance.now();
      socket.write('n' + i + ' NOOP\\r\\n');
      await until('n' + i + ' ');
      rtts.push(performance.now() - started);
      await sleep(w.paceMs);
    }
    parentPort.postMessage({ rtts });
  })().catch((err) => parentPort.postMessage({ error: String(err) }));
`;

interface NoopClient {
  /** Runs the NOOPs for `durationMs`; resolves their round trips (ms). */
  run(): Promise<number[]>;
  /** The BYE line and when it arrived (Date.now()). */
  bye: Promise<{ line: string; at: number }>;
  closed: Promise<void>;
  stop(): Promise<void>;
}

async function startNoopClient(password: string, durationMs: number): Promise<NoopClient> {
  const worker = new Worker(NOOP_CLIENT, { eval: true, workerData: { port: postern.port('imap.implicitTls'), ca: postern.caPem, password, durationMs, paceMs: 20 } });
  const messages: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  worker.on('message', (m: Record<string, unknown>) => {
    messages.push(m);
    for (const w of waiters.splice(0)) w();
  });
  worker.on('error', (err) => messages.push({ error: err.message }));
  const next = async (key: string, timeoutMs = 30_000): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const failed = messages.find((m) => 'error' in m);
      if (failed) throw new Error(`NOOP client: ${String(failed.error)}`);
      const found = messages.find((m) => key in m);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`NOOP client: no ${key} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  };
  expect((await next('login')).login).toMatch(/^a OK /);
  const bye = next('bye').then((m) => ({ line: m.bye as string, at: m.at as number }));
  const closed = next('closed').then(() => undefined);
  bye.catch(() => undefined);
  closed.catch(() => undefined);
  return {
    async run() {
      worker.postMessage('run');
      return (await next('rtts')).rtts as number[];
    },
    bye,
    closed,
    stop: async () => void (await worker.terminate()),
  };
}

/** One LOGIN on a fresh connection; resolves the tagged answer and how long it took. */
async function timedLogin(login: string, password: string): Promise<{ line: string; ms: number; client: LineClient }> {
  const client = await rawTls(postern);
  const started = performance.now();
  client.write(`x LOGIN ${quoted(login)} ${quoted(password)}\r\n`);
  const lines = await client.readUntil((l) => l.startsWith('x '), 15_000);
  return { line: lines.at(-1)!, ms: performance.now() - started, client };
}

async function eventsSince(since: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const e of await postern.accounts.history('alice')) if (e.at >= since) counts[e.type] = (counts[e.type] ?? 0) + 1;
  return counts;
}

// SQLite only: the attack is on SQLite's file lock (PostgreSQL's writers never wait on the event loop).
describe.runIf(engine === 'sqlite')('attack: holding the SQLite write lock to freeze the proxy', () => {
  it('while another process holds the write lock for 10 s, relayed NOOPs stay under 50 ms, logins are answered on time, every queued record lands after, and a revoke right after signs the session out within 1 s', async () => {
    const session = await postern.newPassword('alice', ALICE.password, { label: 'relayed session' });
    const underLock = await postern.newPassword('alice', ALICE.password, { label: 'login under the lock' });
    const client = await startNoopClient(session.password, LOCK_MS);
    await expect.poll(async () => (await eventsSince(0))['password.used'] ?? 0).toBe(1); // the session's own use record, before the lock

    const holder = await startLockHolder();
    try {
      expect(await holder.send('lock')).toBe('locked');
      const lockedAt = Date.now();
      // The lock is really held: a writer that does not wait is refused.
      const probe = new Database(postern.dbPath, { timeout: 0 });
      expect(() => probe.exec('BEGIN IMMEDIATE')).toThrow(/locked/);
      probe.close();

      const until = lockedAt + LOCK_MS;
      const relayed = client.run();

      const sent = { failed: 0, primary: 0 };
      const answers: Array<{ kind: string; ms: number }> = [];
      const attempts = (async () => {
        for (let i = 0; Date.now() < until - 1_000; i++) {
          const kind = ['primary', 'wrong', 'unknown', 'good'][i % 4]!;
          const attempt = kind === 'wrong' ? timedLogin('alice', 'abcd-efgh-ijkl-mnop')
            : kind === 'primary' ? timedLogin('alice', ALICE.password)
            : kind === 'unknown' ? timedLogin('mallory', 'abcd-efgh-ijkl-mnop')
            : timedLogin('alice', underLock.password);
          const { line, ms, client: c } = await attempt;
          c.close();
          answers.push({ kind, ms });
          // The primary password gets its sentence on a clean record only (the first try here).
          if (kind === 'good') expect(line).toMatch(/^x OK /);
          else if (kind === 'primary' && i === 0) expect(line).toBe(`x NO [AUTHENTICATIONFAILED] ${PRIMARY_PASSWORD_REFUSED_TEXT}`);
          else expect(line).toBe('x NO [AUTHENTICATIONFAILED] Authentication failed.');
          if (kind === 'wrong') sent.failed++;
          if (kind === 'primary') sent.primary++;
          await sleep(500); // paced: each failure costs a bcrypt on a worker, and the machine has two cores
        }
      })();
      const [rtts] = await Promise.all([relayed, attempts]);

      // The bound holds for 98 % of round trips; the slowest few may be a client or postern
      // descheduled on a loaded 2-core CI machine, which is why they only have to stay far below the
      // 5 s a write waiting for the lock used to cost (the old code fails both bounds and the count).
      const slowest = [...rtts].sort((a, b) => b - a);
      const detail = `NOOP round trips (ms), slowest first: ${slowest.slice(0, 8).map(Math.round).join(', ')} of ${rtts.length}`;
      expect(slowest[Math.floor(rtts.length * 0.02)]!, detail).toBeLessThan(NOOP_BOUND_MS);
      expect(slowest[0]!, detail).toBeLessThan(NOOP_STRAGGLER_BOUND_MS);
      expect(rtts.length).toBeGreaterThan(100); // about one per 20 ms, all through the 10 s
      // Every kind of login was tried under the lock at least once (a loaded machine fits only a few).
      expect(new Set(answers.map((a) => a.kind)).size).toBe(4);
      for (const a of answers) expect(a.ms, `${a.kind} login answered`).toBeLessThan(ANSWER_BOUND_MS);
      // Nothing got past the lock: the records wait in postern.
      expect(await eventsSince(lockedAt)).toEqual({});

      expect(await holder.send(`release-and-revoke ${session.publicId}`)).toBe('revoked');
      const revokedAt = Date.now();
      const bye = await client.bye;
      expect(bye.at - revokedAt).toBeLessThan(1_000);
      expect(bye.line).toBe('* BYE This app-specific password has been revoked; signing out.');
      await client.closed;

      // Every record made under the lock lands: one per failure, one use (once a minute per password).
      await expect.poll(() => eventsSince(lockedAt), { timeout: 5_000 }).toEqual({
        'login.failed': sent.failed,
        'primary.refused': sent.primary,
        'password.used': 1,
        'password.revoked': 1,
      });
      expect(postern.logs.events('store.write_dropped')).toEqual([]);
    } finally {
      await holder.stop();
      await client.stop();
    }
  }, 60_000);
});
