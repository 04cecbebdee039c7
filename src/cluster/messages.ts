/**
 * What the supervising process and its workers say to each other over the cluster's IPC channel
 * (a private socket pair: the resolved config, master password included, travels here rather than
 * in argv or the environment, where other local users or a crash report could read it).
 */
import type { ResolvedConfig } from '../config/load.js';
import type { BoundAddress } from '../net/service.js';

export type ToWorker =
  /** Start serving: the config the primary validated, so every worker (a replacement too) runs the same one. */
  | { type: 'postern:start'; config: ResolvedConfig; worker: number; workers: number; throttleRepeatKey: string }
  | { type: 'postern:reload-tls' }
  | { type: 'postern:stop' };

export type FromWorker =
  /**
   * The worker listens now: messages that reach a process before it has a 'message' listener are
   * lost (an ES module entry loads asynchronously), so the primary sends `start` only on this.
   */
  | { type: 'postern:ready' }
  | { type: 'postern:listening'; addresses: BoundAddress[] }
  /** Start-up failed: the line and status `serve` would have ended with in one process. */
  | { type: 'postern:failed'; exitCode: number; message: string };

export function isMessage<T extends { type: string }>(value: unknown): value is T {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string'
    && (value as { type: string }).type.startsWith('postern:');
}
