/** Builds the authentication service from config: the one place its parts are chosen. */
import type { ResolvedConfig } from '../config/load.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/index.js';
import type { Store } from '../store/index.js';
import type { WriteQueue } from '../store/write-queue.js';
import { primaryCheckPool } from './primary-check-pool.js';
import { PenaltyThrottle } from './penalty-throttle.js';
import { AuthService } from './service.js';
import type { TokenManager } from '../oauth2/token-manager.js';

export { AuthService } from './service.js';
export * from './types.js';

/** What the service reports to (metrics) and logs in upstream with besides passwords (OAuth2 tokens). */
export interface AuthServiceExtras {
  metrics?: Metrics;
  tokens?: TokenManager | null;
}

export function createAuthService(config: ResolvedConfig, store: Store, writes: WriteQueue, digestKey: Buffer, log: Logger, { metrics, tokens = null }: AuthServiceExtras = {}): AuthService {
  const authLog = log.child({ component: 'auth' });
  // The throttle first: it parses auth.trustedNetworks (the schema has validated them; a direct
  // caller may not have), and a bad entry must not leak a worker pool.
  const throttle = new PenaltyThrottle({ ...config.auth.throttle, trustedNetworks: config.auth.trustedNetworks, log: authLog, onBlock: () => metrics?.throttleBlocked() });
  const primaryChecker = primaryCheckPool({ workers: config.auth.bcryptWorkers });
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
