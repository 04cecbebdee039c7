/**
 * The ops every scale-section child answers alike (memory, CPU, profile window, exit), so that
 * scale-postern, scale-relay and scale-upstream measure themselves the same way.
 */
import { startProfile, stopProfile } from './profiler.js';

export type Handler = (m: Record<string, unknown>) => Promise<Record<string, unknown>>;

/** A full collection first (children run with --expose-gc), so that memory is what is kept. */
export const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

/** The reply to a shared op, or undefined when `m.op` is the role's own. */
export async function commonOp(m: Record<string, unknown>): Promise<Record<string, unknown> | undefined> {
  switch (m.op) {
    case 'memory': {
      gc();
      gc();
      const u = process.memoryUsage();
      return { rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, external: u.external + u.arrayBuffers };
    }
    case 'cpu': {
      const u = process.cpuUsage();
      return { cpu: (u.user + u.system) / 1000 };
    }
    case 'profile-start':
      await startProfile();
      return {};
    case 'profile-stop':
      await stopProfile(String(m.file));
      return {};
    case 'exit':
      setImmediate(() => process.exit(0));
      return {};
    default:
      return undefined;
  }
}

export function unknownOp(m: Record<string, unknown>): never {
  throw new Error(`unknown op ${String(m.op)}`);
}
