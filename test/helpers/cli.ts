/**
 * Runs the postern CLI two ways: as the real binary (`node bin/postern.js`, i.e. dist/, so
 * `npm run build` must have run — `npm test`'s pretest does it) in a subprocess, and in-process
 * through runCli with injected streams (for terminals, signals and captured logs). A workspace is
 * a temp folder with its own config, key file, database (an SQLite file there, or a database of
 * its own on the run's PostgreSQL: test-database.ts) and certificate, made by `postern init`.
 */
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { runCli, type CliOptions } from '../../src/cli/program.js';
import type { CliInput, CliIo } from '../../src/cli/io.js';
import { releaseTestDatabase, testDatabaseConfig } from './test-database.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'bin', 'postern.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to stdin, then stdin is closed. */
  input?: string;
  env?: Record<string, string | undefined>;
  cwd?: string;
  timeoutMs?: number;
}

/** Spawns `node bin/postern.js <args>` and collects its output. */
export function runBinary(args: readonly string[], options: RunOptions = {}): Promise<CliResult> {
  if (!existsSync(path.join(ROOT, 'dist', 'main.js'))) {
    throw new Error('dist/main.js is missing: run "npm run build" (npm test does it in pretest)');
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, POSTERN_CONFIG: undefined, POSTERN_MASTER_PASSWORD: undefined, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on('error', () => {}); // the command may exit before reading stdin
    child.stdin.end(options.input ?? '');
  });
}

/** A terminal-like stdin: isTTY, setRawMode, and keystrokes the test types. */
export class FakeTty extends PassThrough {
  readonly isTTY = true;
  rawMode = false;
  setRawMode(mode: boolean): this {
    this.rawMode = mode;
    return this;
  }
  /** Types text once the command is waiting in raw mode (as a user at a prompt would). */
  async type(text: string): Promise<void> {
    for (let i = 0; i < 200 && !this.rawMode; i++) await new Promise((r) => setTimeout(r, 5));
    if (!this.rawMode) throw new Error('the command never put the terminal in raw mode');
    this.write(text);
    for (let i = 0; i < 200 && this.rawMode; i++) await new Promise((r) => setTimeout(r, 5));
  }
}

export interface InProcessOptions extends CliOptions {
  input?: string;
  tty?: FakeTty;
  env?: Record<string, string | undefined>;
  signals?: EventEmitter;
  clock?: () => number;
}

export interface InProcessRun {
  done: Promise<CliResult>;
  stdout: () => string;
  stderr: () => string;
}

/** Runs runCli in this process with captured streams. */
export function startInProcess(args: readonly string[], options: InProcessOptions = {}): InProcessRun {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  let stdin: CliInput;
  if (options.tty) stdin = options.tty;
  else {
    const pipe = new PassThrough();
    pipe.end(options.input ?? '');
    stdin = pipe;
  }
  const io: CliIo = {
    stdin, stdout, stderr,
    env: { ...options.env },
    isTTY: options.tty !== undefined,
    signals: options.signals ?? new EventEmitter(),
    clock: options.clock ?? Date.now,
    exit: (code) => {
      throw new Error(`the command tried to exit the process with status ${code}`);
    },
  };
  const done = runCli(args, io, options).then(async (code) => {
    await new Promise((r) => setImmediate(r));
    return { code, signal: null, stdout: out, stderr: err };
  });
  return { done, stdout: () => out, stderr: () => err };
}

export function runInProcess(args: readonly string[], options: InProcessOptions = {}): Promise<CliResult> {
  return startInProcess(args, options).done;
}

export interface Workspace {
  dir: string;
  configPath: string;
  /** The raw `database` section of its config: `{ path }` (SQLite) or `{ url }` (PostgreSQL). */
  database: { path: string } | { url: string };
  /** The binary, with `-c <config>` prepended. */
  run(args: readonly string[], options?: RunOptions): Promise<CliResult>;
  /** runCli in-process, with `-c <config>` prepended. */
  runHere(args: readonly string[], options?: InProcessOptions): Promise<CliResult>;
  startHere(args: readonly string[], options?: InProcessOptions): InProcessRun;
  cleanup(): void;
}

/**
 * A temp folder with a config (absolute paths into the folder, merged with `config`) on which
 * `postern init` has run in-process (with `env`, e.g. POSTERN_MASTER_PASSWORD).
 */
export async function createWorkspace(config: Record<string, unknown> = {}, env: Record<string, string> = {}): Promise<Workspace> {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-cli-'));
  const configPath = path.join(dir, 'postern.yaml');
  // A test that names its own database keeps it; otherwise the run's engine.
  const ownDatabase = config.database as { path: string } | { url: string } | undefined;
  const database = ownDatabase ?? await testDatabaseConfig(path.join(dir, 'data', 'postern.db'));
  const base = {
    // One process: `serve` in-process (startHere) cannot fork workers, and the suite starts many.
    workers: 1,
    database,
    keyFile: path.join(dir, 'data', 'postern.key'),
    tls: { cert: path.join(dir, 'certs', 'postern.crt'), key: path.join(dir, 'certs', 'postern.key') },
    log: { level: 'info' },
  };
  writeFileSync(configPath, stringify({ ...base, ...config }));
  const ws: Workspace = {
    dir,
    configPath,
    database,
    run: (args, options) => runBinary(['-c', configPath, ...args], { cwd: dir, ...options }),
    runHere: (args, options) => runInProcess(['-c', configPath, ...args], options),
    startHere: (args, options) => startInProcess(['-c', configPath, ...args], options),
    cleanup: () => {
      rmSync(dir, { recursive: true, force: true });
      // Not awaited (cleanup is synchronous for its many callers): the drop is best effort, the
      // global teardown removes the server and every database on it.
      if (ownDatabase === undefined) void releaseTestDatabase(database);
    },
  };
  const init = await ws.runHere(['init'], { env });
  if (init.code !== 0) {
    ws.cleanup();
    throw new Error(`postern init failed: ${init.stderr}`);
  }
  return ws;
}
