/**
 * bcrypt off the event loop. bcryptjs is pure JavaScript: one cost-10 compare is ~50–100 ms of CPU,
 * so a flood of wrong passwords checked inline would stall every relayed session in the process.
 * A piscina pool of worker threads (one per core by default) runs the compares instead; the queue
 * is bounded so that a flood costs bounded memory and a bounded wait, not an ever-growing backlog.
 *
 * The worker is a plain .mjs file next to this module (copied into dist/ by the build script) and
 * is resolved relative to import.meta.url, so the pool works from the TS sources and from dist/.
 * Workers are sent bcryptInput(password) (src/crypto/primary-hash.ts), never more than 72 bytes:
 * the input the stored hash was made from, so a megabyte-long "password" costs nothing extra.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { bcryptInput } from '../crypto/primary-hash.js';
import type { PrimaryChecker } from './primary-checker.js';

export const BCRYPT_WORKER_URL = new URL('./bcrypt-worker.mjs', import.meta.url);

export interface BcryptPoolOptions {
  /** Worker threads; 0 = one per core. */
  workers: number;
  /** Compares waiting for a worker beyond this are refused (compare rejects; the service answers `failed`). */
  maxQueue?: number;
}

export const DEFAULT_MAX_QUEUE = 1000;

export interface BcryptPool extends PrimaryChecker {
  readonly threads: number;
  /** Compares waiting for a free worker right now. */
  readonly queued: number;
}

export function bcryptPool(options: BcryptPoolOptions): BcryptPool {
  const threads = options.workers > 0 ? options.workers : availableParallelism();
  const pool = new Piscina<{ password: string; hash: string }, boolean>({
    filename: BCRYPT_WORKER_URL.href,
    minThreads: 1,
    maxThreads: threads,
    // Keep warm workers around for a while: the first compare after a cold start pays the spawn.
    idleTimeout: 60_000,
    maxQueue: options.maxQueue ?? DEFAULT_MAX_QUEUE,
  });
  let closed = false;
  return {
    threads,
    get queued() {
      return pool.queueSize;
    },
    async compare(password, hash) {
      if (closed) throw new Error('bcrypt pool is closed');
      try {
        return await pool.run({ password: bcryptInput(password), hash });
      } catch (err) {
        // Piscina's own message ("Task queue is at limit") says nothing about the password.
        throw new Error('bcrypt pool could not run the compare', { cause: err });
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await pool.destroy();
    },
  };
}
