/** What every route of the account page is given (built once in src/portal/index.ts). */
import type { AccountService } from '../accounts/service.js';
import type { AuthService } from '../auth/service.js';
import type { ResolvedConfig } from '../config/load.js';
import type { Logger } from '../log.js';
import type { BoundAddress } from '../net/service.js';
import type { PasskeyService } from '../second-factor/passkeys.js';
import type { SecondFactorService } from '../second-factor/service.js';
import type { Store } from '../store/index.js';
import type { OAuth2Client } from '../oauth2/client.js';
import type { ConnectFlows } from './connect-flows.js';
import type { TlsMaterial } from '../net/tls-material.js';
import type { ProfileDownloads } from '../onboarding/profile-download.js';
import type { Pages } from './render.js';
import type { PortalSessions } from './sessions.js';
import type { ProviderCheck } from './provider-change.js';
import type { SelfEnrol } from './self-enrol.js';

export interface PortalContext {
  config: ResolvedConfig;
  store: Store;
  auth: Pick<AuthService, 'signInWithPrimary' | 'acceptedByProvider'>;
  accounts: AccountService;
  factors: SecondFactorService;
  passkeys: PasskeyService;
  sessions: PortalSessions;
  pages: Pages;
  log: Logger;
  recentAuthMs: number;
  /** Stage 3: a refused sign-in of a REJECTED account, checked with the provider (provider-change.ts). */
  providerCheck: ProviderCheck;
  /** Self-enrolment of an unknown login the provider accepts (self-enrol.ts); null: off. */
  selfEnrol: SelfEnrol | null;
  listeners: () => readonly BoundAddress[];
  /** The page's own address from the config (portal.publicUrl, else first hostname + bound port). */
  pageUrl: () => string;
  /** "Connect your account": the configured providers and the requests started (connect-flows.ts). */
  oauth2Clients: ReadonlyMap<string, OAuth2Client>;
  connectFlows: ConnectFlows;
  clock: () => number;
  /** One-time Apple profile downloads after Generate; null when `portal.appleProfile` is off. */
  profiles: ProfileDownloads | null;
  /** Postern's certificate and key: the profile is signed with them (current after SIGHUP). */
  tls: TlsMaterial;
}
