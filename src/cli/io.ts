/**
 * What a command may touch of the outside world, injected so that every command runs the same in
 * a unit test (PassThrough streams, a fake env) and in the real binary (process streams).
 * Nothing in src/cli writes to process.stdout or reads process.env directly.
 */
import type { Readable, Writable } from 'node:stream';

/** A stdin that may be a terminal (tty.ReadStream has setRawMode; pipes and files do not). */
export type CliInput = Readable & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };

/** Where `serve` listens for SIGHUP/SIGTERM/SIGINT (process in production, an emitter in tests). */
export interface SignalSource {
  on(signal: NodeJS.Signals, listener: () => void): unknown;
  off(signal: NodeJS.Signals, listener: () => void): unknown;
}

export interface CliIo {
  stdin: CliInput;
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
  /** True when stdin is a terminal: secrets are then prompted for without echo. */
  isTTY: boolean;
  signals: SignalSource;
  clock: () => number;
  /** Ends the process at once; only for a second stop signal while a graceful stop hangs. */
  exit: (code: number) => void;
}

export function processIo(): CliIo {
  return {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    isTTY: process.stdin.isTTY === true,
    signals: process,
    clock: Date.now,
    exit: (code) => process.exit(code),
  };
}
