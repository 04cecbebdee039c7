/**
 * Postern out of file descriptors (issue 15), a real postern in a child process whose limit is
 * lowered with prlimit(1) to leave exactly one descriptor free. Invariants:
 *  - a login whose upstream connect fails with EMFILE is answered "too busy, try later"
 *    (IMAP `NO [UNAVAILABLE]`), not "the mail server cannot be reached", and is not logged as
 *    an upstream fault;
 *  - a connection that would leave fewer than the reserve is refused at once with IMAP's
 *    `* BYE [UNAVAILABLE]`, while a descriptor is still there to answer on (past the limit libuv
 *    would close it unanswered: net/descriptors.ts);
 *  - however many are refused, one `net.descriptors_exhausted` line (rate-limited, with a count);
 *  - once descriptors are free again, logins work.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, afterAll, expect, it } from 'vitest';
import { connectLineClient, type LineClient } from '../helpers/line-client.js';
import { engine } from '../helpers/test-database.js';
import { fakeImapConfig, startFakeUpstream, type FakeUpstream } from '../imap/fake-upstream.js';

// SQLite only: the test sets the child's limit so that exactly one descriptor is free, which needs a
// still set of open descriptors; a PostgreSQL pool opens and closes its sockets on its own schedule
// (idle timeout, reconnects), so the count would not hold. The reserve logic is engine-independent.
const itCountingDescriptors = it.runIf(engine === 'sqlite');

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'support', 'postern-child.ts');

let upstream: FakeUpstream;
beforeAll(async () => {
  upstream = await startFakeUpstream();
});
afterAll(() => upstream?.stop());

interface Child {
  proc: ChildProcess;
  ask<T>(op: string, extra?: Record<string, unknown>): Promise<T>;
}

const children: Child[] = [];
const clients: LineClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const child of children.splice(0)) {
    await child.ask('stop').catch(() => undefined);
    child.proc.kill();
  }
});

async function startChild(): Promise<Child & { port: number; password: string; caPem: string }> {
  const proc = fork(CHILD, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let next = 0;
  const waiting = new Map<number, (m: Record<string, unknown>) => void>();
  proc.on('message', (m: Record<string, unknown>) => waiting.get(m.id as number)?.(m));
  const reply = (id: number) => new Promise<Record<string, unknown>>((resolve) => waiting.set(id, resolve));
  const ready = reply(0);
  const child: Child = {
    proc,
    async ask<T>(op: string, extra: Record<string, unknown> = {}) {
      const id = ++next;
      const answer = reply(id);
      proc.send({ id, op, ...extra });
      const m = await answer;
      if (typeof m.error === 'string') throw new Error(m.error);
      return m as T;
    },
  };
  children.push(child);
  await ready;
  const started = await child.ask<{ ports: Record<string, number>; password: string; caPem: string }>('start', {
    config: { log: { level: 'info' }, imap: fakeImapConfig(upstream, { limits: { preConnectTotal: 0 } }) },
  });
  return { ...child, port: started.ports['imap.implicitTls']!, password: started.password, caPem: started.caPem };
}

/** Sets the child's descriptor limit so that exactly `free` numbers below it are unused (the kernel hands out the lowest). */
async function leaveFree(pid: number, free: number): Promise<void> {
  // Start-up connections (the IMAP upstream probe) close on their own: wait until the set is still.
  let open = new Set<number>();
  for (let stable = 0; stable < 3; ) {
    await new Promise((r) => setTimeout(r, 200));
    const now = new Set(readdirSync(`/proc/${pid}/fd`).map(Number));
    stable = now.size === open.size && [...now].every((fd) => open.has(fd)) ? stable + 1 : 0;
    open = now;
  }
  let limit = 0;
  for (let unused = 0; unused < free || open.has(limit); limit++) if (!open.has(limit)) unused++;
  execFileSync('prlimit', [`--pid=${pid}`, `--nofile=${limit}:`]);
}

function raise(pid: number): void {
  execFileSync('prlimit', [`--pid=${pid}`, '--nofile=4096:']);
}

async function connect(child: { port: number; caPem: string }): Promise<LineClient> {
  const client = await connectLineClient({ host: '127.0.0.1', port: child.port, tls: { ca: child.caPem, servername: 'localhost' } });
  clients.push(client);
  return client;
}

async function login(client: LineClient, password: string): Promise<string> {
  client.write(`a LOGIN alice ${password}\r\n`);
  return (await client.readUntil((l) => l.startsWith('a '))).at(-1)!;
}

itCountingDescriptors('a connection that would leave too few descriptors is told the server is too busy while there is one to answer on', async () => {
  const child = await startChild();
  // Descriptors are left, but fewer than the reserve: refused at the greeting, in IMAP's words.
  await leaveFree(child.proc.pid!, 20);
  for (let i = 0; i < 3; i++) {
    const client = await connect(child);
    expect(await client.readLine()).toBe('* BYE [UNAVAILABLE] The server is too busy right now; please try again later.');
  }
  const { lines } = await child.ask<{ lines: Array<Record<string, unknown>> }>('events', { event: 'net.descriptors_exhausted' });
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatchObject({ stage: 'accept', code: 'budget', count: 1 });

  raise(child.proc.pid!);
  await new Promise((r) => setTimeout(r, 1_100)); // the limit is read again once a second
  const client = await connect(child);
  expect(await client.readLine()).toMatch(/^\* OK/);
  expect(await login(client, child.password)).toMatch(/^a OK/);
});

itCountingDescriptors('a login whose upstream connect fails with EMFILE is told the server is too busy, not that the mail server is unreachable', async () => {
  const child = await startChild();
  // Something else holds descriptors past the reserve: the estimate lets the client in, the
  // kernel gives its socket the last descriptor, and the upstream connect gets EMFILE.
  await child.ask('hold', { count: 300 });
  await leaveFree(child.proc.pid!, 1);
  const client = await connect(child);
  expect(await client.readLine()).toMatch(/^\* OK/);
  expect(await login(client, child.password)).toBe('a NO [UNAVAILABLE] The server is too busy right now; please try again later.');

  const { lines } = await child.ask<{ lines: Array<Record<string, unknown>> }>('events', { event: 'net.descriptors_exhausted' });
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatchObject({ stage: 'upstream', code: 'EMFILE', count: 1 });
  const faults = await child.ask<{ lines: Array<Record<string, unknown>> }>('events', { event: 'upstream.fault' });
  expect(faults.lines.filter((l) => l.stage !== 'probe')).toEqual([]);

  raise(child.proc.pid!);
  const again = await connect(child);
  await again.readLine();
  expect(await login(again, child.password)).toMatch(/^a OK/);
});
