/**
 * Primary-password checks off the event loop. One check is a scrypt of 32 MiB (or, for a hash not
 * yet upgraded, a bcryptjs cost-10 compare): 50–250 ms of CPU, so a flood of wrong passwords
 * checked inline would stall every relayed session in the process. A piscina pool of worker
 * threads (one per core by default) runs them instead; the queue is bounded so that a flood costs
 * bounded memory and a bounded wait, not an ever-growing backlog.
 *
 * The worker is a plain .mjs file next to this module (copied into dist/ by the build script) and
 * is resolved relative to import.meta.url, so the pool works from the TS sources and from dist/.
 * Workers are sent a PrimaryCheckTask (src/crypto/primary-hash.ts): for current hashes the keyed
 * HMAC of the password, never the password itself; for legacy bcrypt hashes bcryptInput(password),
 * never more than 72 bytes. Either way a megabyte-long "password" costs the worker nothing extra.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { primaryCheckTask, type PrimaryCheckTask } from '../crypto/primary-hash.js';
import type { PrimaryChecker } from './primary-checker.js';

export const PRIMARY_CHECK_WORKER_URL = new URL('./primary-check-worker.mjs', import.meta.url);

export interface PrimaryCheckPoolOptions {
  /** Worker threads; 0 = one per core. */
  workers: number;
  /** Checks waiting for a worker beyond this are refused (compare rejects; the service answers `failed`). */
  maxQueue?: number;
}

export const DEFAULT_MAX_QUEUE = 1000;

export interface PrimaryCheckPool extends PrimaryChecker {
  readonly threads: number;
  /** Checks waiting for a free worker right now. */
  readonly queued: number;
}

export function primaryCheckPool(options: PrimaryCheckPoolOptions): PrimaryCheckPool {
  const threads = options.workers > 0 ? options.workers : availableParallelism();
  const pool = new Piscina<PrimaryCheckTask, boolean>({
    filename: PRIMARY_CHECK_WORKER_URL.href,
    minThreads: 1,
    maxThreads: threads,
    // Keep warm workers around for a while: the first check after a cold start pays the spawn.
    idleTimeout: 60_000,
    maxQueue: options.maxQueue ?? DEFAULT_MAX_QUEUE,
  });
  let closed = false;
  return {
    threads,
    get queued() {
      return pool.queueSize;
    },
    async compare(password, hash, serverKey) {
      if (closed) throw new Error('primary-check pool is closed');
      try {
        return await pool.run(primaryCheckTask(password, hash, serverKey));
      } catch (err) {
        // Piscina's own message ("Task queue is at limit") says nothing about the password.
        throw new Error('primary-check pool could not run the check', { cause: err });
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await pool.destroy();
    },
  };
}
