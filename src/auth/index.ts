/** Builds the authentication service from config: the one place its parts are chosen. */
import type { ResolvedConfig } from '../config/load.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/index.js';
import { inlinePrimaryChecker } from './primary-checker.js';
import { AuthService } from './service.js';
import { noThrottle } from './throttle.js';

export { AuthService } from './service.js';
export * from './types.js';

export function createAuthService(config: ResolvedConfig, store: Store, digestKey: Buffer, log: Logger): AuthService {
  return new AuthService({
    store,
    digestKey,
    primaryChecker: inlinePrimaryChecker(),
    throttle: noThrottle,
    log: log.child({ component: 'auth' }),
    master: config.master && config.masterPassword ? { user: config.master.user, password: config.masterPassword } : null,
    primaryPasswordHint: config.auth.primaryPasswordHint,
  });
}
