/**
 * A real PostgreSQL (Debian's `postgresql`) for the tests: `initdb` into a temp dir, `pg_ctl`-style
 * start of `postgres` on a free loopback port, trust authentication on 127.0.0.1 only, stopped and
 * removed by stop(). PostgreSQL refuses to run as root, so when the tests run as root (CI, this
 * sandbox) the server runs as the `postgres` system user the package creates, in a data directory
 * handed to it.
 *
 * restart() stops the server and starts it again on the same port and data (the "database went
 * away and came back" tests); kill() ends it with SIGKILL, as a crash would.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, readdirSync, writeFileSync, appendFileSync, mkdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { hasExited, once, stopChild } from './child.js';
import { freePort } from './free-port.js';
import { makeTempDir, removeTempDir } from './tmp.js';

const run = promisify(execFile);

export interface PostgresServer {
  port: number;
  /** A superuser URL for a fresh database; see createDatabase for one per test. */
  url: string;
  /** Creates an empty database and returns its URL (each test file gets its own). */
  createDatabase(name?: string): Promise<string>;
  /** Stops the server (fast shutdown) and starts it again on the same port and data directory. */
  restart(): Promise<void>;
  /** Stops the server without starting it again (start() brings it back). */
  stopServer(): Promise<void>;
  start(): Promise<void>;
  /** SIGKILL, as a crash: connections drop without a goodbye. start() recovers it. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** The newest installed PostgreSQL's bin directory (Debian keeps them under /usr/lib/postgresql/N/bin). */
export function findPostgresBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'postgres'))).sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) throw new Error('PostgreSQL is not installed (Debian package postgresql); run scripts/install-test-deps.sh');
  return path.join(root, versions[0]!, 'bin');
}

let databases = 0;

export async function startPostgres(): Promise<PostgresServer> {
  const bin = findPostgresBin();
  const dir = await makeTempDir('postern-pg-');
  const data = path.join(dir, 'data');
  const sockets = path.join(dir, 'run');
  mkdirSync(data, { mode: 0o700 });
  mkdirSync(sockets, { mode: 0o700 });
  const asRoot = userInfo().uid === 0;
  let ids: { uid: number; gid: number } | undefined;
  if (asRoot) {
    const { stdout: uid } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    ids = { uid: Number(uid.trim()), gid: Number(gid.trim()) };
    for (const d of [dir, data, sockets]) chownSync(d, ids.uid, ids.gid);
  }
  const superuser = asRoot ? 'postgres' : userInfo().username;
  await run(path.join(bin, 'initdb'), ['-D', data, '-U', superuser, '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync'], ids ?? {});
  // Loopback only; no socket in /var/run (not writable, and another cluster may live there).
  appendFileSync(path.join(data, 'postgresql.conf'), [
    "listen_addresses = '127.0.0.1'",
    `unix_socket_directories = '${sockets}'`,
    // fsync off: a test never survives an OS crash, and a killed server's writes are in the page
    // cache. Not synchronous_commit = off: a commit would then sit in shared memory until the WAL
    // writer's next round, and kill() (SIGKILL) would lose committed transactions — the tables a
    // test just created included — which no real server does.
    'fsync = off',
    'full_page_writes = off',
    'max_connections = 200',
    "log_min_messages = warning",
    '',
  ].join('\n'));
  writeFileSync(path.join(data, 'pg_hba.conf'), 'host all all 127.0.0.1/32 trust\nlocal all all trust\n');
  if (ids) chownSync(path.join(data, 'pg_hba.conf'), ids.uid, ids.gid);
  const port = await freePort();
  let child: ChildProcess | undefined;
  let stderr = '';

  const start = async () => {
    stderr = '';
    child = spawn(path.join(bin, 'postgres'), ['-D', data, '-p', String(port), '-k', sockets], {
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(ids ?? {}),
    });
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (hasExited(child)) throw new Error(`postgres exited at start: ${stderr}`);
      const ready = await run(path.join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-U', superuser, '-d', 'postgres'])
        .then(() => true, () => false);
      if (ready) return;
      if (Date.now() > deadline) throw new Error(`postgres did not become ready: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const stopServer = async () => {
    if (!child || hasExited(child)) return;
    // SIGINT = "fast" shutdown: disconnect clients, stop; stopChild's SIGTERM would wait for them.
    const exited = new Promise<void>((resolve) => child!.once('exit', () => resolve()));
    child.kill('SIGINT');
    await exited;
  };
  try {
    await start();
  } catch (err) {
    if (child) await stopChild(child);
    await removeTempDir(dir);
    throw err;
  }
  const baseUrl = `postgres://${superuser}@127.0.0.1:${port}`;
  return {
    port,
    url: `${baseUrl}/postgres`,
    async createDatabase(name = `postern_${process.pid}_${++databases}`) {
      await run(path.join(bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', superuser, name]);
      return `${baseUrl}/${name}`;
    },
    start,
    stopServer,
    async restart() {
      await stopServer();
      await start();
    },
    async kill() {
      if (!child || hasExited(child)) return;
      const exited = new Promise<void>((resolve) => child!.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await exited;
      // Its backends outlive a SIGKILLed postmaster for a moment; they exit when they notice.
      await new Promise((r) => setTimeout(r, 200));
    },
    stop: once(async () => {
      await stopServer();
      await removeTempDir(dir);
    }),
  };
}
