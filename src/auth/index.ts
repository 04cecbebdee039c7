/** Builds the authentication service from config: the one place its parts are chosen. */
import { availableParallelism } from 'node:os';
import type { ResolvedConfig } from '../config/load.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/index.js';
import type { Store } from '../store/index.js';
import type { WriteQueue } from '../store/write-queue.js';
import { primaryCheckPool } from './primary-check-pool.js';
import { PenaltyThrottle } from './penalty-throttle.js';
import { SharedThrottle } from './shared-throttle.js';
import { AuthService } from './service.js';
import type { TokenManager } from '../oauth2/token-manager.js';

export { AuthService } from './service.js';
export * from './types.js';

/** What the service reports to (metrics), logs in upstream with besides passwords (OAuth2 tokens), and shares with sibling processes. */
export interface AuthServiceExtras {
  metrics?: Metrics;
  tokens?: TokenManager | null;
  /** Processes serving from this machine: the default primary-check pool is the cores shared among them. */
  processes?: number;
  /** Key of the shared throttle's wrong-password digests: the same in every worker of one `serve`. */
  throttleRepeatKey?: Buffer;
}

export function createAuthService(config: ResolvedConfig, store: Store, writes: WriteQueue, digestKey: Buffer, log: Logger, options: AuthServiceExtras = {}): AuthService {
  const { metrics, tokens = null } = options;
  const authLog = log.child({ component: 'auth' });
  // The throttle first: it parses auth.trustedNetworks (the schema has validated them; a direct
  // caller may not have), and a bad entry must not leak a worker pool.
  // The in-process layer logs nothing: the shared layer, whose counts include it, logs each block once.
  const local = new PenaltyThrottle({ ...config.auth.throttle, trustedNetworks: config.auth.trustedNetworks });
  const throttle = new SharedThrottle(local, store.throttle, writes, {
    ...config.auth.throttle, trustedNetworks: config.auth.trustedNetworks, repeatKey: options.throttleRepeatKey, log: authLog, onBlock: () => metrics?.throttleBlocked(),
  });
  const primaryChecker = primaryCheckPool({ workers: config.auth.bcryptWorkers || Math.max(1, Math.ceil(availableParallelism() / (options.processes ?? 1))) });
  metrics?.sampleQueueDepth(() => primaryChecker.queued);
  return new AuthService({
    store,
    writes,
    digestKey,
    primaryChecker,
    ...(metrics ? { metrics } : {}),
    throttle,
    log: authLog,
    master: config.master && config.masterPassword ? { user: config.master.user, password: config.masterPassword } : null,
    primaryPasswordHint: config.auth.primaryPasswordHint,
    tokens,
  });
}
